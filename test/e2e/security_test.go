package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

const tokenConfig = `
store: {backend: memory}
server: {authz_token: authz-secret, als_token: als-secret, admin_token: admin-secret}
`

// TestListenersAndAdminNeedTheirTokens: someone who reaches the ports
// without the tokens Envoy sends gets no decision, writes no access-log
// row (so feeds no scoring), cannot read or change bans, and cannot ban a
// network wider than the configured minimum even with the token.
func TestListenersAndAdminNeedTheirTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	p := startAuthz(t, tokenConfig)
	env := envoysim.New(p.authzConn, nil, nil, "edge-tokens")
	check := env.CheckRequest(&envoysim.Request{Client: "192.0.2.200", Method: "GET", Path: "/",
		Headers: map[string]string{"user-agent": browserUA}}, envoysim.NewRequestID())

	ctx := ctxFor(t, 10*time.Second)
	authz := authv3.NewAuthorizationClient(p.authzConn)
	if _, err := authz.Check(ctx, check); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Check without the token: %v, want Unauthenticated", err)
	}
	withToken := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer authz-secret")
	if resp, err := authz.Check(withToken, check); err != nil || resp.GetOkResponse() == nil {
		t.Errorf("Check with the token: %v %v", resp, err)
	}

	als := alsv3.NewAccessLogServiceClient(p.alsConn)
	for name, c := range map[string]context.Context{
		"no token":        ctx,
		"the authz token": metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer authz-secret"),
	} {
		st, err := als.StreamAccessLogs(c)
		if err == nil {
			_ = st.Send(&alsv3.StreamAccessLogsMessage{})
			_, err = st.CloseAndRecv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("access-log stream with %s: %v, want Unauthenticated", name, err)
		}
	}

	admin := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+p.admin+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	tests := []struct {
		name, method, path, token, body string
		want                            int
		wantBody                        string
	}{
		{"list without token", "GET", "/v1/bans", "", "", 401, "unauthorized"},
		{"ban without token", "POST", "/v1/bans", "", `{"ip":"192.0.2.1"}`, 401, ""},
		{"ban everyone", "POST", "/v1/bans", "admin-secret", `{"ip":"::/0"}`, 400, "prefix_too_wide"},
		{"ban all IPv4", "POST", "/v1/bans", "admin-secret", `{"ip":"0.0.0.0/0"}`, 400, "prefix_too_wide"},
		{"ban a /8", "POST", "/v1/bans", "admin-secret", `{"ip":"10.0.0.0/8"}`, 400, "prefix_too_wide"},
		{"ban a mapped ::/96", "POST", "/v1/bans", "admin-secret", `{"ip":"::ffff:0:0/96"}`, 400, "prefix_too_wide"},
		{"ban a host", "POST", "/v1/bans", "admin-secret", `{"ip":"192.0.2.201"}`, 201, "192.0.2.201"},
		{"list with token", "GET", "/v1/bans", "admin-secret", "", 200, "192.0.2.201"},
	}
	for _, tc := range tests {
		if code, body := admin(tc.method, tc.path, tc.token, tc.body); code != tc.want || !strings.Contains(body, tc.wantBody) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, body, tc.want, tc.wantBody)
		}
	}
}

const floodConfig = `
store: {backend: memory, memory: {max_bans: 64}}
quota:
  plans:
    anonymous: {"/api/items": {per_minute: 2}}
`

// Two attacks on what must not be flushed or multiplied: rotating
// addresses inside one IPv6 /64 for fresh anonymous quota, and a flood of
// instantly banned clients from distinct /64s to evict an operator's ban.
func TestCountersAndBansCannotBeFlushed(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	p := startAuthz(t, floodConfig+"server: {admin_token: admin-secret}\n")
	env := envoysim.New(p.authzConn, nil, func(*envoysim.Request) (int, time.Duration) { return 200, 0 }, "edge-flood")
	ctx := ctxFor(t, 60*time.Second)
	do := func(r *envoysim.Request) envoysim.Result {
		t.Helper()
		res, err := env.Do(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Quota: three addresses of one /64 share the anonymous quota.
	for i, ip := range []string{"2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:1:ffff::3"} {
		res := do(get(ip, "/api/items", browserUA))
		if allowed := i < 2; res.Allowed != allowed {
			t.Fatalf("request %d from %s: allowed=%v (%s), want %v", i+1, ip, res.Allowed, res.Reason, allowed)
		}
	}

	// Bans: an operator bans a host, then 500 empty-user-agent clients
	// from distinct /64s are banned instantly, far more than max_bans.
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+p.admin+"/v1/bans", strings.NewReader(`{"ip":"192.0.2.250","ttl":"1h"}`))
	req.Header.Set("Authorization", "Bearer admin-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("manual ban: %v %v", resp, err)
	}
	resp.Body.Close()
	for i := range 500 {
		do(get(fmt.Sprintf("2001:db8:%x:%x::1", 100+i/256, i%256), "/", ""))
	}
	if res := do(get("192.0.2.250", "/", browserUA)); res.Allowed || res.Reason != "behavior.banned" {
		t.Fatalf("the operator's ban was flushed by the flood: allowed=%v reason %q", res.Allowed, res.Reason)
	}
	if got := metric(t, p, "smartlayer_store_ban_evictions_total", `kind="ban"`); got == 0 {
		t.Errorf("a full ban table evicted nothing that it counted (%v)", got)
	}
}
