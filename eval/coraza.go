package eval

import (
	"fmt"
	"runtime/debug"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"
)

// corazaDirectives: Coraza's recommended configuration (request body
// access, JSON and XML body processors), CRS's example setup (paranoia
// level 1, anomaly scoring with inbound threshold 5), all CRS rules, and
// the engine switched from DetectionOnly to On.
const corazaDirectives = `
Include @coraza.conf-recommended
Include @crs-setup.conf.example
Include @owasp_crs/*.conf
SecRuleEngine On
`

// Coraza is Coraza v3 with the OWASP CRS v4 at paranoia level 1.
type Coraza struct {
	waf coraza.WAF
}

// NewCoraza compiles the rule set (a few seconds).
func NewCoraza() (*Coraza, error) {
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().
		WithRootFS(coreruleset.FS).
		WithDirectives(corazaDirectives))
	if err != nil {
		return nil, fmt.Errorf("coraza: %w", err)
	}
	return &Coraza{waf: waf}, nil
}

// Check runs the request phases (headers, then body) and reports Blocked
// when either interrupts; Rules lists every rule that matched.
func (c *Coraza) Check(r *Request) Verdict {
	tx := c.waf.NewTransaction()
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()
	tx.ProcessConnection(ClientIP, 40000, "127.0.0.1", 80)
	version := r.Version
	if version == "" {
		version = "HTTP/1.1"
	}
	tx.ProcessURI(r.URI, r.Method, version)
	for _, h := range r.Headers {
		tx.AddRequestHeader(h.Name, h.Value)
		if strings.EqualFold(h.Name, "host") {
			tx.SetServerName(h.Value)
		}
	}
	var it *types.Interruption
	var err error
	if it = tx.ProcessRequestHeaders(); it == nil {
		if len(r.Body) > 0 {
			it, _, err = tx.WriteRequestBody(r.Body)
		}
		if it == nil && err == nil {
			it, err = tx.ProcessRequestBody()
		}
	}
	v := Verdict{}
	for _, m := range tx.MatchedRules() {
		v.Rules = append(v.Rules, m.Rule().ID())
	}
	switch {
	case it != nil:
		v.Class, v.Reason = Blocked, fmt.Sprintf("rule %d", it.RuleID)
	case err != nil:
		v.Class, v.Reason = Error, err.Error()
	}
	return v
}

var corazaVersion, crsVersion = depVersions()

// depVersions reads the pinned versions from the build info (go.mod).
func depVersions() (cz, crs string) {
	cz, crs = "coraza (version unknown)", "(version unknown)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return cz, crs
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/corazawaf/coraza/v3":
			cz = "Coraza " + d.Version
		case "github.com/corazawaf/coraza-coreruleset/v4":
			crs = d.Version
		}
	}
	return cz, crs
}
