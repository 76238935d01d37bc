// Package eval measures smartlayer's payload detection side by side with
// Coraza v3 + OWASP CRS v4 on CRS's own go-ftw regression tests and on a
// benign corpus. It is a separate module so Coraza never enters the
// product's go.mod; everything it uses from the product goes through
// smartlayer.go.
package eval

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The go-ftw test file format (only the fields the harness reads):
//
//	rule_id: 942100
//	tests:
//	  - test_id: 1
//	    stages:
//	      - input: {method, uri, version, headers, data, encoded_request, autocomplete_headers}
//	        output: {log: {expect_ids, no_expect_ids}, status}
type ftwFile struct {
	RuleID int       `yaml:"rule_id"`
	Tests  []ftwTest `yaml:"tests"`
}

type ftwTest struct {
	TestID int        `yaml:"test_id"`
	Desc   string     `yaml:"desc"`
	Stages []ftwStage `yaml:"stages"`
}

type ftwStage struct {
	Input  ftwInput  `yaml:"input"`
	Output ftwOutput `yaml:"output"`
}

type ftwInput struct {
	Method         *string           `yaml:"method"`
	URI            *string           `yaml:"uri"`
	Version        *string           `yaml:"version"`
	Headers        map[string]string `yaml:"headers"`
	Data           *string           `yaml:"data"`
	EncodedRequest string            `yaml:"encoded_request"`
	// AutocompleteHeaders defaults to true: go-ftw then adds a form
	// content type (when there is data) and encodes the data's values.
	AutocompleteHeaders *bool `yaml:"autocomplete_headers"`
}

type ftwOutput struct {
	Log struct {
		ExpectIDs   []int `yaml:"expect_ids"`
		NoExpectIDs []int `yaml:"no_expect_ids"`
	} `yaml:"log"`
	Status int `yaml:"status"`
}

// Expectation says what a test checks about its file's rule.
type Expectation int

const (
	// Other: the test asserts something else (a status, another rule).
	Other Expectation = iota
	// Attack: the rule must match.
	Attack
	// MustNotMatch: the rule must not match (a false-positive check).
	MustNotMatch
)

func (e Expectation) String() string {
	switch e {
	case Attack:
		return "attack"
	case MustNotMatch:
		return "must-not-match"
	}
	return "other"
}

// Header is one request header as sent (name case kept).
type Header struct{ Name, Value string }

// Request is an HTTP request as a client put it on the wire.
type Request struct {
	Method  string
	URI     string // path and query, as sent (may be absolute)
	Version string
	Headers []Header
	Body    []byte
}

// Get returns the first value of the header name (case-insensitive).
func (r *Request) Get(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func (r *Request) has(name string) bool {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// Case is one go-ftw test, reduced to the request of its deciding stage.
type Case struct {
	RuleID int
	TestID int
	Desc   string
	// Family is the rule file number ("942"); PL the rule's paranoia level
	// (0 when unknown).
	Family string
	PL     int
	Expect Expectation
	Req    Request
}

// ID is "942100-3".
func (c *Case) ID() string { return fmt.Sprintf("%d-%d", c.RuleID, c.TestID) }

// LoadCases reads every go-ftw YAML file under dir in fsys whose rule file
// number is in families (all when families is empty). pls maps rule ids to
// paranoia levels.
func LoadCases(fsys fs.FS, families map[string]bool, pls map[int]int) ([]Case, error) {
	var out []Case
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || path.Ext(p) != ".yaml" {
			return nil
		}
		fam := familyOf(path.Base(p))
		if len(families) > 0 && !families[fam] {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		cs, err := ParseFTW(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for i := range cs {
			cs[i].PL = pls[cs[i].RuleID]
		}
		out = append(out, cs...)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].RuleID != out[j].RuleID {
			return out[i].RuleID < out[j].RuleID
		}
		return out[i].TestID < out[j].TestID
	})
	return out, err
}

// familyOf returns the first three digits of a test file or rule id name.
func familyOf(name string) string {
	if len(name) >= 3 {
		return name[:3]
	}
	return name
}

// ParseFTW parses one go-ftw test file. Each test becomes one Case built
// from its last stage that says something about the file's rule (earlier
// stages of multi-stage tests only prepare state).
func ParseFTW(b []byte) ([]Case, error) {
	var f ftwFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.RuleID == 0 {
		return nil, fmt.Errorf("no rule_id")
	}
	out := make([]Case, 0, len(f.Tests))
	for i, t := range f.Tests {
		if len(t.Stages) == 0 {
			continue
		}
		id := t.TestID
		if id == 0 {
			id = i + 1
		}
		st := t.Stages[len(t.Stages)-1]
		exp := Other
		for _, s := range t.Stages {
			if e := expectation(&s.Output, f.RuleID); e != Other {
				st, exp = s, e
			}
		}
		req, err := BuildRequest(&st.Input)
		if err != nil {
			return nil, fmt.Errorf("test %d: %w", id, err)
		}
		out = append(out, Case{
			RuleID: f.RuleID, TestID: id, Desc: t.Desc,
			Family: familyOf(strconv.Itoa(f.RuleID)), Expect: exp, Req: req,
		})
	}
	return out, nil
}

func expectation(o *ftwOutput, rule int) Expectation {
	for _, id := range o.Log.ExpectIDs {
		if id == rule {
			return Attack
		}
	}
	for _, id := range o.Log.NoExpectIDs {
		if id == rule {
			return MustNotMatch
		}
	}
	return Other
}

// BuildRequest turns a go-ftw input into the request go-ftw would send,
// following go-ftw's documented defaults: method GET, uri "/", version
// HTTP/1.1; with autocomplete_headers (the default) a body gets
// "Content-Type: application/x-www-form-urlencoded" when it has none, its
// keys and values are URL-encoded when it is form data that is not
// encoded already, and Content-Length and "Connection: close" are added.
// encoded_request is a base64 raw request sent as is.
func BuildRequest(in *ftwInput) (Request, error) {
	if in.EncodedRequest != "" {
		raw, err := base64.StdEncoding.DecodeString(in.EncodedRequest)
		if err != nil {
			return Request{}, fmt.Errorf("encoded_request: %w", err)
		}
		return ParseRaw(raw), nil
	}
	r := Request{Method: deref(in.Method, "GET"), URI: deref(in.URI, "/"), Version: deref(in.Version, "HTTP/1.1")}
	names := make([]string, 0, len(in.Headers))
	for k := range in.Headers {
		names = append(names, k)
	}
	sort.Strings(names) // YAML maps have no order; make it deterministic
	for _, k := range names {
		r.Headers = append(r.Headers, Header{k, in.Headers[k]})
	}
	if in.Data != nil {
		r.Body = []byte(*in.Data)
	}
	auto := in.AutocompleteHeaders == nil || *in.AutocompleteHeaders
	if !auto {
		return r, nil
	}
	if len(r.Body) > 0 {
		if !r.has("Content-Type") {
			r.Headers = append(r.Headers, Header{"Content-Type", "application/x-www-form-urlencoded"})
		}
		if r.Get("Content-Type") == "application/x-www-form-urlencoded" {
			r.Body = encodeForm(r.Body)
		}
	}
	if !r.has("Connection") {
		r.Headers = append(r.Headers, Header{"Connection", "close"})
	}
	if len(r.Body) > 0 || methodWithBody(r.Method) {
		r.Headers = append(r.Headers, Header{"Content-Length", strconv.Itoa(len(r.Body))})
	}
	return r, nil
}

func methodWithBody(m string) bool {
	switch m {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// encodeForm URL-encodes the names and values of "a=b&c=d" data unless the
// data already looks encoded (decoding it changes it), as go-ftw does.
func encodeForm(data []byte) []byte {
	s := string(data)
	if dec, err := url.QueryUnescape(s); err != nil || dec != s {
		return data
	}
	parts := strings.Split(s, "&")
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			parts[i] = url.QueryEscape(p)
			continue
		}
		parts[i] = url.QueryEscape(k) + "=" + url.QueryEscape(v)
	}
	return []byte(strings.Join(parts, "&"))
}

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// ParseRaw splits a raw HTTP/1 request into line, headers and body,
// leniently: these requests are often malformed on purpose.
func ParseRaw(raw []byte) Request {
	var r Request
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		head, body, _ = bytes.Cut(raw, []byte("\n\n"))
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	f := strings.SplitN(lines[0], " ", 3)
	r.Method = f[0]
	if len(f) > 1 {
		r.URI = f[1]
	}
	if len(f) > 2 {
		r.Version = f[2]
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		r.Headers = append(r.Headers, Header{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	if n, err := strconv.Atoi(r.Get("Content-Length")); err == nil && n >= 0 && n < len(body) {
		body = body[:n]
	}
	r.Body = body
	return r
}
