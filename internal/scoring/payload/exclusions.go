package payload

import (
	"fmt"
	"strings"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
	"github.com/smartlayer/smartlayer/internal/setting"
)

// Policy denials that are not detector findings; exclusions name them as
// rules too ("partial_body", "undecodable_charset").
const (
	policyPartialBody = "partial_body"
	policyCharset     = "undecodable_charset"
)

// exclusion is a compiled payload.exclusions entry.
type exclusion struct {
	route  string // normalised, without the trailing '*'
	prefix bool
	fields []pattern // empty: every field
	rules  []string  // normalised to detector names or full rule names; empty: every rule
}

type pattern struct {
	s      string
	prefix bool
}

func (p pattern) match(s string) bool {
	if p.prefix {
		return strings.HasPrefix(s, p.s)
	}
	return s == p.s
}

// routeNorm is how exclusion routes and request paths are compared: the
// quota's default spelling (case-insensitive, trailing slash ignored).
var routeNorm = pathnorm.Options{}

func validateExclusions(p *setting.Problems, list []Exclusion) {
	for i, e := range list {
		key := fmt.Sprintf("exclusions[%d]", i)
		if !strings.HasPrefix(e.Route, "/") {
			p.Add(key+".route", e.Route, "must be a path starting with / (a trailing * matches a prefix)")
		} else if strings.Contains(strings.TrimSuffix(e.Route, "*"), "*") {
			p.Add(key+".route", e.Route, "may hold '*' only at its end")
		}
		for j, f := range e.Fields {
			if f == "" || strings.Contains(strings.TrimSuffix(f, "*"), "*") {
				p.Add(fmt.Sprintf("%s.fields[%d]", key, j), f, "must be a finding location (body:$.html, query:q, header:referer), '*' only at its end")
			}
		}
		for j, r := range e.Rules {
			if !knownRule(r) {
				p.Add(fmt.Sprintf("%s.rules[%d]", key, j), r, "must be a detector (%s), its reason (payload.xss) or a rule name (payload.xss.…)", strings.Join(ruleNames(), ", "))
			}
		}
		if len(e.Fields) == 0 && len(e.Rules) == 0 && e.Route == "/*" {
			p.Add(key, nil, "would switch payload inspection off everywhere; use payload.mode: off")
		}
	}
}

func ruleNames() []string {
	out := append([]string(nil), detectorNames[:]...)
	return append(out, policyPartialBody, policyCharset)
}

// knownRule accepts a detector name, its reason, or a rule name under it.
func knownRule(r string) bool {
	n := strings.TrimPrefix(r, "payload.")
	for _, d := range ruleNames() {
		if n == d || (r != n && strings.HasPrefix(n, d+".")) {
			return true
		}
	}
	// Rule names are grouped by family, not always by detector name
	// ("payload.cmdi.…" under shell_injection): accept any payload.x.y.
	return r != n && strings.Count(n, ".") >= 1 && !strings.ContainsAny(n, " *")
}

func compileExclusions(list []Exclusion) []exclusion {
	out := make([]exclusion, 0, len(list))
	for _, e := range list {
		c := exclusion{route: e.Route}
		if strings.HasSuffix(c.route, "*") {
			c.prefix = true
			c.route = strings.TrimSuffix(c.route, "*")
		}
		trailing := strings.HasSuffix(c.route, "/")
		c.route = pathnorm.Normalize(c.route, routeNorm)
		if c.prefix && trailing && c.route != "/" {
			c.route += "/" // "/cms/pages/*" covers "/cms/pages/x", not "/cms/pagesx"
		}
		for _, f := range e.Fields {
			c.fields = append(c.fields, pattern{s: strings.TrimSuffix(f, "*"), prefix: strings.HasSuffix(f, "*")})
		}
		for _, r := range e.Rules {
			c.rules = append(c.rules, strings.TrimPrefix(r, "payload."))
		}
		out = append(out, c)
	}
	return out
}

// forPath returns the exclusions that apply to a request path (nil when
// none does, which is the common case and costs nothing later).
func forPath(list []exclusion, path string) []exclusion {
	if len(list) == 0 {
		return nil
	}
	p := pathnorm.Normalize(path, routeNorm)
	var out []exclusion
	for _, e := range list {
		switch {
		case !e.prefix && p == e.route,
			e.prefix && strings.HasPrefix(p, e.route),
			e.prefix && strings.HasSuffix(e.route, "/") && p == strings.TrimSuffix(e.route, "/"):
			out = append(out, e)
		}
	}
	return out
}

// excluded reports whether a finding by detector (with rule) at loc is
// waived by one of the request's exclusions.
func excluded(list []exclusion, loc, detector, rule string) bool {
	for _, e := range list {
		if len(e.fields) > 0 {
			ok := false
			for _, f := range e.fields {
				if f.match(loc) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		}
		if len(e.rules) == 0 {
			return true
		}
		r := strings.TrimPrefix(rule, "payload.")
		for _, want := range e.rules {
			if want == detector || want == r || strings.HasPrefix(r, want+".") {
				return true
			}
		}
	}
	return false
}

// liveConfig is one applied configuration with its exclusions compiled.
type liveConfig struct {
	cfg  Config
	excl []exclusion
	// hdr caches header values clean under this configuration; nil when
	// off. A new configuration starts with an empty one.
	hdr *headerCache
}

func newLive(cfg Config) *liveConfig {
	return &liveConfig{cfg: cfg, excl: compileExclusions(cfg.Exclusions), hdr: newHeaderCache(cfg.HeaderCacheSize)}
}

// SetConfig applies a new configuration to later Inspect calls (hot
// reload): thresholds, caps, headers, payload.partial_body and
// payload.exclusions. payload.llm.* (queue, workers, cache, mode) keep the
// values New was given; they need a restart.
func (v *Validator) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("payload config: %w", err)
	}
	v.live.Store(newLive(cfg))
	return nil
}
