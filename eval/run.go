package eval

import (
	"context"
	"fmt"
	"strings"
)

// Families are the CRS rule files whose attack classes smartlayer's
// payload validator claims, with short names for the tables.
var Families = []struct{ ID, Name string }{
	{"921", "protocol/CRLF"},
	{"930", "LFI"},
	{"931", "RFI/SSRF"},
	{"932", "RCE/shell"},
	{"933", "PHP"},
	{"934", "generic (SSTI, Node…)"},
	{"941", "XSS"},
	{"942", "SQLi"},
	{"943", "session fixation"},
	{"944", "Java/Log4Shell"},
}

// FamilyName returns the short name of family id.
func FamilyName(id string) string {
	for _, f := range Families {
		if f.ID == id {
			return f.Name
		}
	}
	return id
}

// Engines are the two detectors under test.
type Engines struct {
	SL *Smartlayer
	CZ *Coraza
}

// NewEngines builds both; allHeaders is NewSmartlayer's.
func NewEngines(allHeaders bool) (*Engines, error) {
	sl, err := NewSmartlayer(allHeaders)
	if err != nil {
		return nil, err
	}
	cz, err := NewCoraza()
	if err != nil {
		return nil, err
	}
	return &Engines{SL: sl, CZ: cz}, nil
}

// Outcome is both engines' verdicts on one request.
type Outcome struct {
	SL, CZ Verdict
}

// Check sends r to both engines.
func (e *Engines) Check(ctx context.Context, r *Request, requestID string) (Outcome, error) {
	sl, err := e.SL.Check(ctx, CheckRequest(r, requestID))
	if err != nil {
		return Outcome{}, fmt.Errorf("smartlayer %s: %w", requestID, err)
	}
	return Outcome{SL: sl, CZ: e.CZ.Check(r)}, nil
}

// CaseResult is one CRS test's outcome.
type CaseResult struct {
	Case *Case
	Outcome
}

// RunCases replays every case through both engines, in order.
func (e *Engines) RunCases(ctx context.Context, cases []Case) ([]CaseResult, error) {
	out := make([]CaseResult, 0, len(cases))
	for i := range cases {
		c := &cases[i]
		o, err := e.Check(ctx, &c.Req, "crs-"+c.ID())
		if err != nil {
			return out, err
		}
		out = append(out, CaseResult{Case: c, Outcome: o})
	}
	return out, nil
}

// Excerpt shows what a request carries, for the misses lists: the URI and
// the start of the body, quoted so control characters stay visible.
func Excerpt(r *Request, n int) string {
	s := r.Method + " " + r.URI
	if len(r.Body) > 0 {
		s += " body=" + string(r.Body)
	}
	for _, h := range r.Headers {
		if !boringHeader(h) {
			s += " " + h.Name + ": " + h.Value
		}
	}
	q := fmt.Sprintf("%q", s)
	q = q[1 : len(q)-1]
	if len(q) > n {
		q = q[:n] + "…"
	}
	return q
}

// boringHeader: the headers every go-ftw test sends, which carry no payload.
func boringHeader(h Header) bool {
	switch strings.ToLower(h.Name) {
	case "host", "accept", "connection", "content-length", "accept-encoding", "accept-language", "accept-charset":
		return true
	case "user-agent":
		return strings.HasPrefix(h.Value, "OWASP CRS test agent") || strings.HasPrefix(h.Value, "OWASP ModSecurity Core Rule Set")
	case "content-type":
		return h.Value == "application/x-www-form-urlencoded"
	}
	return false
}

// oneLine folds a multi-line description.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
