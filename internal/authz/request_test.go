package authz

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func testIdentity() *Identity {
	id := DefaultIdentity()
	id.MaxBodyBytes = 64
	return &id
}

// envoyCheck builds a CheckRequest the way Envoy's ext_authz filter does.
func envoyCheck(peer, method, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": method, ":path": path,
		"user-agent": "Mozilla/5.0", "x-request-id": "req-1"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: peer, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 41000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "envoy-id", Method: method, Path: path, Host: "api.example.com", Scheme: "https", Headers: h,
		}},
	}}
}

func TestToRequest(t *testing.T) {
	now := time.Unix(1700000000, 0)
	jwt := func(req *authv3.CheckRequest, claims map[string]any) *authv3.CheckRequest {
		payload, _ := structpb.NewStruct(map[string]any{"jwt_payload": claims})
		req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": payload}}
		return req
	}
	tests := map[string]struct {
		req                             *authv3.CheckRequest
		ip, user, plan, path, query, id string
		ok                              bool
		headerIdentity                  bool // identity.user_header/plan_header opted in
	}{
		"peer only": {req: envoyCheck("203.0.113.7", "GET", "/a?b=1", nil),
			ip: "203.0.113.7", plan: "anonymous", path: "/a", query: "b=1", id: "req-1", ok: true},
		"xff last entry with one trusted hop": {req: envoyCheck("10.0.0.2", "GET", "/", map[string]string{"x-forwarded-for": "1.1.1.1, 198.51.100.9"}),
			ip: "198.51.100.9", plan: "anonymous", path: "/", id: "req-1", ok: true},
		"garbage xff falls back to peer": {req: envoyCheck("10.0.0.2", "GET", "/", map[string]string{"x-forwarded-for": "1.1.1.1, not-an-ip"}),
			ip: "10.0.0.2", plan: "anonymous", path: "/", id: "req-1", ok: true},
		"ipv6 peer": {req: envoyCheck("2001:db8::1", "GET", "/", nil),
			ip: "2001:db8::1", plan: "anonymous", path: "/", id: "req-1", ok: true},
		"ipv4-mapped ipv6 unmapped": {req: envoyCheck("::ffff:192.0.2.5", "GET", "/", nil),
			ip: "192.0.2.5", plan: "anonymous", path: "/", id: "req-1", ok: true},
		"bracketed ipv6 in xff": {req: envoyCheck("10.0.0.2", "GET", "/", map[string]string{"x-forwarded-for": "[2001:db8::2]:443"}),
			ip: "2001:db8::2", plan: "anonymous", path: "/", id: "req-1", ok: true},
		"user and plan headers, opted in": {req: envoyCheck("192.0.2.1", "POST", "/api/generate/", map[string]string{"x-user-id": "u42", "x-user-plan": "premium"}),
			ip: "192.0.2.1", user: "u42", plan: "premium", path: "/api/generate/", id: "req-1", ok: true, headerIdentity: true},
		"client-sent identity headers ignored by default": {req: envoyCheck("192.0.2.1", "POST", "/api/generate/", map[string]string{"x-user-id": "u42", "x-user-plan": "premium"}),
			ip: "192.0.2.1", plan: "anonymous", path: "/api/generate/", id: "req-1", ok: true},
		"plan header without user is ignored": {req: envoyCheck("192.0.2.1", "GET", "/", map[string]string{"x-user-plan": "premium"}),
			ip: "192.0.2.1", plan: "anonymous", path: "/", id: "req-1", ok: true, headerIdentity: true},
		"jwt claims beat headers": {req: jwt(envoyCheck("192.0.2.1", "GET", "/", map[string]string{"x-user-id": "spoof", "x-user-plan": "premium"}), map[string]any{"sub": "alice", "plan": "free"}),
			ip: "192.0.2.1", user: "alice", plan: "free", path: "/", id: "req-1", ok: true, headerIdentity: true},
		"jwt without plan claim never takes the header": {req: jwt(envoyCheck("192.0.2.1", "GET", "/", map[string]string{"x-user-plan": "premium"}), map[string]any{"sub": "alice"}),
			ip: "192.0.2.1", user: "alice", plan: "anonymous", path: "/", id: "req-1", ok: true, headerIdentity: true},
		"numeric jwt sub": {req: jwt(envoyCheck("192.0.2.1", "GET", "/", nil), map[string]any{"sub": 12345.0, "plan": "free"}),
			ip: "192.0.2.1", user: "12345", plan: "free", path: "/", id: "req-1", ok: true},
		"no source address": {req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Path: "/x"}}}},
			ip: "", plan: "anonymous", path: "/x", ok: true},
		"empty request":     {req: &authv3.CheckRequest{}, plan: "anonymous", ok: false},
		"nil request":       {req: nil, plan: "anonymous", ok: false},
		"no http attribute": {req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, plan: "anonymous", ok: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := testIdentity()
			if tc.headerIdentity {
				id.UserHeader, id.PlanHeader = "x-user-id", "x-user-plan"
			}
			r, ok := toRequest(tc.req, id, now)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			gotIP := ""
			if r.ClientIP.IsValid() {
				gotIP = r.ClientIP.String()
			}
			if gotIP != tc.ip || r.User != tc.user || r.Plan != tc.plan || r.Path != tc.path || r.RawQuery != tc.query || r.ID != tc.id {
				t.Fatalf("got ip=%q user=%q plan=%q path=%q query=%q id=%q", gotIP, r.User, r.Plan, r.Path, r.RawQuery, r.ID)
			}
			if tc.ip == "" && r.ClientKey != unknownClient {
				t.Fatalf("client key = %q, want %q", r.ClientKey, unknownClient)
			}
			if !r.Time.Equal(now) {
				t.Fatalf("time = %v", r.Time)
			}
		})
	}
}

func TestClientIPTrustedHops(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	tests := map[string]struct {
		xff  string
		hops int
		want string
	}{
		"zero hops trusts nothing":        {"1.1.1.1, 2.2.2.2", 0, "10.0.0.1"},
		"one hop":                         {"1.1.1.1, 2.2.2.2", 1, "2.2.2.2"},
		"two hops":                        {"1.1.1.1, 2.2.2.2, 3.3.3.3", 2, "2.2.2.2"},
		"fewer entries than hops":         {"2.2.2.2", 3, "2.2.2.2"},
		"spaces and empty entries":        {" 1.1.1.1 ,, 2.2.2.2 ", 1, "2.2.2.2"},
		"empty selected entry falls back": {"1.1.1.1,,", 1, "10.0.0.1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := testIdentity()
			id.ClientIP.TrustedHops = tc.hops
			if got := clientIP(peer, tc.xff, id).String(); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestToRequestBodyAndHeaders(t *testing.T) {
	req := envoyCheck("192.0.2.1", "POST", "/p", map[string]string{"Content-Type": "application/json"})
	req.Attributes.Request.Http.RawBody = []byte(strings.Repeat("a", 100))
	r, _ := toRequest(req, testIdentity(), time.Now())
	if len(r.Body) != 64 || !r.BodyTruncated {
		t.Fatalf("body len %d truncated %v, want capped at 64", len(r.Body), r.BodyTruncated)
	}
	if r.ContentType() != "application/json" {
		t.Fatalf("header names must be lowercased: %v", r.Headers)
	}

	// header_map encoding (encode_raw_headers) with repeated headers.
	req = &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Path: "/q", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "Cookie", RawValue: []byte("a=1")}, {Key: "cookie", RawValue: []byte("b=2")}, {Key: "user-agent", Value: "ua"},
		}}}}}}
	r, _ = toRequest(req, testIdentity(), time.Now())
	if r.Headers["cookie"] != "a=1,b=2" || r.UserAgent() != "ua" {
		t.Fatalf("header_map: %v", r.Headers)
	}
	req.Attributes.Request.Http.Body = "text body"
	req.Attributes.Request.Http.Headers = map[string]string{partialBodyHeader: "true"}
	r, _ = toRequest(req, testIdentity(), time.Now())
	if string(r.Body) != "text body" || !r.BodyTruncated {
		t.Fatalf("body %q truncated %v", r.Body, r.BodyTruncated)
	}
}
