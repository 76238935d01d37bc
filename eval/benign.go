package eval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
)

// BenignValue is one value of the benign corpus.
type BenignValue struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// LoadBenign reads a JSON-lines corpus.
func LoadBenign(fsys fs.FS, name string) ([]BenignValue, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	var out []BenignValue
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v BenignValue
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// Positions a benign value is replayed in.
const (
	PosQuery = "query parameter"
	PosJSON  = "JSON body field"
	PosForm  = "form body"
	PosXML   = "XML body"
)

// Positions lists them in report order.
var Positions = []string{PosQuery, PosJSON, PosForm, PosXML}

// IsXML reports whether v is an XML document (replayed as an XML body too).
func (v *BenignValue) IsXML() bool { return strings.HasPrefix(v.Value, "<?xml") }

// BenignRequests places v where an API client would send it: a search
// query parameter, a JSON body field, a form field, and for XML documents
// the whole body.
func BenignRequests(v *BenignValue) map[string]Request {
	base := []Header{
		{"Host", "api.example.com"},
		{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		{"Accept", "application/json"},
	}
	with := func(extra ...Header) []Header { return append(append([]Header(nil), base...), extra...) }
	body := func(ct string, b []byte) Request {
		return Request{Method: "POST", URI: "/api/v1/comments", Version: "HTTP/1.1", Body: b,
			Headers: with(Header{"Content-Type", ct}, Header{"Content-Length", fmt.Sprint(len(b))})}
	}
	js, _ := json.Marshal(map[string]string{"comment": v.Value})
	out := map[string]Request{
		PosQuery: {Method: "GET", URI: "/api/v1/search?q=" + url.QueryEscape(v.Value) + "&page=1", Version: "HTTP/1.1", Headers: with()},
		PosJSON:  body("application/json", js),
		PosForm:  body("application/x-www-form-urlencoded", []byte("comment="+url.QueryEscape(v.Value)+"&notify=1")),
	}
	if v.IsXML() {
		ct := "application/xml"
		if strings.Contains(v.Value, "soap:Envelope") || strings.Contains(v.Value, "soapenv:Envelope") {
			ct = "text/xml; charset=utf-8"
		}
		r := body(ct, []byte(v.Value))
		r.URI = "/api/v1/import"
		out[PosXML] = r
	}
	return out
}

// BenignHit is one benign request an engine blocked or found borderline.
type BenignHit struct {
	Value    *BenignValue
	Position string
	Engine   string
	Verdict  Verdict
}

// BenignTally counts one position.
type BenignTally struct {
	Requests, SLBlocked, SLBorderline, CZBlocked int
}

// BenignReport is the benign part of the results.
type BenignReport struct {
	Values     int
	Kinds      map[string]int
	ByPos      map[string]*BenignTally
	ByKind     map[string]*BenignTally
	AnySL      int // values blocked by smartlayer in at least one position
	AnyCZ      int
	XMLValues  int
	XMLBlocked int // XML documents smartlayer blocked as an XML body
	Hits       []BenignHit
}

// RunBenign replays every value in every position through both engines.
func (e *Engines) RunBenign(ctx context.Context, vals []BenignValue) (*BenignReport, error) {
	rep := &BenignReport{Values: len(vals), Kinds: map[string]int{}, ByPos: map[string]*BenignTally{}, ByKind: map[string]*BenignTally{}}
	for _, p := range Positions {
		rep.ByPos[p] = &BenignTally{}
	}
	for i := range vals {
		v := &vals[i]
		rep.Kinds[v.Kind]++
		kt := rep.ByKind[v.Kind]
		if kt == nil {
			kt = &BenignTally{}
			rep.ByKind[v.Kind] = kt
		}
		reqs := BenignRequests(v)
		var anySL, anyCZ bool
		for _, pos := range Positions {
			r, ok := reqs[pos]
			if !ok {
				continue
			}
			o, err := e.Check(ctx, &r, fmt.Sprintf("benign-%d", i))
			if err != nil {
				return nil, err
			}
			for _, t := range []*BenignTally{rep.ByPos[pos], kt} {
				t.Requests++
				switch o.SL.Class {
				case Blocked:
					t.SLBlocked++
				case Borderline:
					t.SLBorderline++
				}
				if o.CZ.Class == Blocked {
					t.CZBlocked++
				}
			}
			if o.SL.Class == Blocked {
				anySL = true
				rep.Hits = append(rep.Hits, BenignHit{v, pos, "smartlayer", o.SL})
				if pos == PosXML {
					rep.XMLBlocked++
				}
			}
			if o.CZ.Class == Blocked {
				anyCZ = true
				rep.Hits = append(rep.Hits, BenignHit{v, pos, "coraza", o.CZ})
			}
		}
		if v.IsXML() {
			rep.XMLValues++
		}
		if anySL {
			rep.AnySL++
		}
		if anyCZ {
			rep.AnyCZ++
		}
	}
	return rep, nil
}

func (rep *BenignReport) markdown(b *strings.Builder) {
	b.WriteString("## Benign corpus (eval/benign/corpus.jsonl)\n\n")
	fmt.Fprintf(b, "%d values of %d kinds, each replayed as a query parameter, a JSON body field and a form field, and the %d XML documents also as an XML body. "+
		"Values blocked in at least one position: smartlayer %d (%s), Coraza %d (%s). "+
		"XML documents blocked as an XML body by smartlayer: %d of %d.\n\n",
		rep.Values, len(rep.Kinds), rep.XMLValues, rep.AnySL, pct(rep.AnySL, rep.Values), rep.AnyCZ, pct(rep.AnyCZ, rep.Values),
		rep.XMLBlocked, rep.XMLValues)
	head := "| %s | requests | smartlayer blocked | smartlayer borderline | Coraza blocked |\n|---|---:|---:|---:|---:|\n"
	fmt.Fprintf(b, head, "position")
	for _, p := range Positions {
		t := rep.ByPos[p]
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s |\n", p, t.Requests, pct(t.SLBlocked, t.Requests), pct(t.SLBorderline, t.Requests), pct(t.CZBlocked, t.Requests))
	}
	b.WriteString("\n")
	fmt.Fprintf(b, head, "kind (all positions)")
	kinds := make([]string, 0, len(rep.ByKind))
	for k := range rep.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t := rep.ByKind[k]
		fmt.Fprintf(b, "| %s (%d values) | %d | %s | %s | %s |\n", k, rep.Kinds[k], t.Requests, pct(t.SLBlocked, t.Requests), pct(t.SLBorderline, t.Requests), pct(t.CZBlocked, t.Requests))
	}
}

// WriteFP lists every blocked benign value.
func (rep *BenignReport) WriteFP(name string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# benign values blocked (%d requests): engine | position | kind | reason | value\n", len(rep.Hits))
	for _, h := range rep.Hits {
		reason := h.Verdict.Reason
		if h.Engine == "coraza" {
			reason = fmt.Sprint(detectionRules(h.Verdict.Rules))
		}
		q := fmt.Sprintf("%q", h.Value.Value)
		if len(q) > 300 {
			q = q[:300] + "…"
		}
		fmt.Fprintf(&b, "%s | %s | %s | %s | %s\n", h.Engine, h.Position, h.Value.Kind, reason, q)
	}
	return os.WriteFile(name, []byte(b.String()), 0o644)
}

// detectionRules drops CRS's setup, initialisation and scoring rules,
// keeping the request detection rules (911100–944999) that raised the score.
func detectionRules(ids []int) []int {
	var out []int
	for _, id := range ids {
		if id >= 911000 && id < 949000 && id%1000 >= 100 { // NNN0xx: paranoia-level skips
			out = append(out, id)
		}
	}
	return out
}
