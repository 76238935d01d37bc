package eval

import (
	"strings"
	"testing"
)

func TestCheckRequest(t *testing.T) {
	big := strings.Repeat("x", maxBodyBytes+10)
	tests := map[string]struct {
		req         Request
		path, host  string
		headers     map[string]string
		body        int
		partialBody string
	}{
		"headers lowercased, host as authority, query kept": {
			req: Request{Method: "GET", URI: "/get?a=1%27", Headers: []Header{
				{"Host", "localhost"}, {"User-Agent", "UA"}, {"X-Foo", "1"}, {"x-foo", "2"}}},
			path: "/get?a=1%27", host: "localhost",
			headers: map[string]string{":authority": "localhost", ":method": "GET", ":path": "/get?a=1%27",
				"user-agent": "UA", "x-foo": "1,2"},
		},
		"absolute URI and body": {
			req:  Request{Method: "POST", URI: "http://evil.example/p?q", Body: []byte("a=b")},
			path: "/p?q", host: "evil.example", body: 3, partialBody: "false",
			headers: map[string]string{":path": "/p?q", ":authority": "evil.example"},
		},
		"body cut at max_request_bytes": {
			req:  Request{Method: "POST", URI: "/", Body: []byte(big)},
			path: "/", host: "localhost", body: maxBodyBytes, partialBody: "true",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cr := CheckRequest(&tc.req, "id-1")
			h := cr.GetAttributes().GetRequest().GetHttp()
			if h.GetPath() != tc.path || h.GetHost() != tc.host {
				t.Errorf("path, host = %q, %q; want %q, %q", h.GetPath(), h.GetHost(), tc.path, tc.host)
			}
			for k, v := range tc.headers {
				if got := h.GetHeaders()[k]; got != v {
					t.Errorf("header %q = %q, want %q", k, got, v)
				}
			}
			if _, ok := h.GetHeaders()["host"]; ok {
				t.Error("host header kept; Envoy sends :authority")
			}
			if len(h.GetRawBody()) != tc.body {
				t.Errorf("raw_body %d bytes, want %d", len(h.GetRawBody()), tc.body)
			}
			if got := h.GetHeaders()["x-envoy-auth-partial-body"]; got != tc.partialBody {
				t.Errorf("partial body header %q, want %q", got, tc.partialBody)
			}
			if a := cr.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress(); a != ClientIP {
				t.Errorf("source %q", a)
			}
		})
	}
}

func TestBenignRequests(t *testing.T) {
	tests := map[string]struct {
		v         BenignValue
		positions int
	}{
		"plain value: query, JSON, form": {BenignValue{"name", "Mary O'Brien"}, 3},
		"XML document: also as body":     {BenignValue{"xml", "<?xml version=\"1.0\"?><a/>"}, 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rs := BenignRequests(&tc.v)
			if len(rs) != tc.positions {
				t.Fatalf("%d positions, want %d", len(rs), tc.positions)
			}
			if q := rs[PosQuery].URI; !strings.Contains(q, "q=") || strings.Contains(q, " ") {
				t.Errorf("query URI %q", q)
			}
			if x, ok := rs[PosXML]; ok && string(x.Body) != tc.v.Value {
				t.Errorf("XML body %q", x.Body)
			}
		})
	}
}
