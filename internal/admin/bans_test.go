package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
)

func newBehavior(t *testing.T) *scoring.Behavior {
	t.Helper()
	st, err := state.NewMemory(state.DefaultMemoryOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := scoring.NewBehavior(scoring.DefaultBehaviorConfig(), st, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type call struct {
	method, path, token, body string
	wantStatus                int
	wantBody                  string // substring
	wantClients               int    // for lists: how many bans (0: not checked)
}

func run(t *testing.T, h http.Handler, calls []call) {
	t.Helper()
	for i, c := range calls {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		r := httptest.NewRequest(c.method, c.path, body)
		if c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.wantStatus || !strings.Contains(w.Body.String(), c.wantBody) {
			t.Fatalf("call %d %s %s: %d %s; want %d containing %q", i, c.method, c.path, w.Code, w.Body.String(), c.wantStatus, c.wantBody)
		}
		if c.wantClients > 0 {
			if got := strings.Count(w.Body.String(), `"client":`); got != c.wantClients {
				t.Fatalf("call %d: %d bans in %s, want %d", i, got, w.Body.String(), c.wantClients)
			}
		}
	}
}

func TestBansHandler(t *testing.T) {
	const tok = "s3cret"
	tests := map[string]struct {
		token string
		calls []call
	}{
		"no token: list open, writes forbidden": {calls: []call{
			{method: "GET", path: "/v1/bans", wantStatus: 403, wantBody: "admin_token"},
			{method: "POST", path: "/v1/bans", body: `{"ip":"192.0.2.1"}`, wantStatus: 403, wantBody: "admin_token"},
			{method: "DELETE", path: "/v1/bans/192.0.2.1", wantStatus: 403, wantBody: "disabled"},
		}},
		"token required everywhere": {token: tok, calls: []call{
			{method: "GET", path: "/v1/bans", wantStatus: 401, wantBody: "unauthorized"},
			{method: "GET", path: "/v1/bans", token: "wrong", wantStatus: 401},
			{method: "POST", path: "/v1/bans", body: `{"ip":"192.0.2.1"}`, wantStatus: 401},
			{method: "DELETE", path: "/v1/bans/192.0.2.1", token: "s3cre", wantStatus: 401},
			{method: "GET", path: "/v1/bans", token: tok, wantStatus: 200},
		}},
		"add, list, delete": {token: tok, calls: []call{
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"::ffff:192.0.2.9","reason":"scraper","ttl":"30m"}`,
				wantStatus: 201, wantBody: `"client":"192.0.2.9","reason":"scraper"`},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"2001:db8::7"}`, wantStatus: 201, wantBody: `"client":"2001:db8::/64","reason":"manual"`},
			{method: "GET", path: "/v1/bans", token: tok, wantStatus: 200, wantBody: `"client":"192.0.2.9"`, wantClients: 2},
			{method: "GET", path: "/v1/bans?limit=1", token: tok, wantStatus: 200, wantClients: 1},
			{method: "DELETE", path: "/v1/bans/192.0.2.9", token: tok, wantStatus: 204},
			{method: "DELETE", path: "/v1/bans/192.0.2.9", token: tok, wantStatus: 404, wantBody: "no active ban"},
			{method: "DELETE", path: "/v1/bans/2001:db8::/64", token: tok, wantStatus: 204},
			{method: "GET", path: "/v1/bans", token: tok, wantStatus: 200, wantBody: `{"bans":[]}`},
		}},
		"networks: as wide as the minimum, 4-in-6 unmapped, listed as they match": {token: tok, calls: []call{
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"192.0.2.0/24"}`, wantStatus: 201, wantBody: `"client":"192.0.2.0/24"`},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"10.0.0.0/8"}`, wantStatus: 400,
				wantBody: `"error":"prefix_too_wide","message":"network too wide to ban: 10.0.0.0/8 is wider than /16 (behavior.min_ban_prefix_v4)"`},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"0.0.0.0/0"}`, wantStatus: 400, wantBody: "prefix_too_wide"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"::/0"}`, wantStatus: 400, wantBody: "behavior.min_ban_prefix_v6"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"2001:db8::/31"}`, wantStatus: 400, wantBody: "2001:db8::/31 is wider than /32"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"::ffff:10.0.0.0/104"}`, wantStatus: 400, wantBody: "10.0.0.0/8 is wider than /16"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"::ffff:0:0/96"}`, wantStatus: 400, wantBody: "0.0.0.0/0"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"2001:db8::/32"}`, wantStatus: 201, wantBody: `"client":"2001:db8::/32","reason":"manual"`},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"::ffff:10.1.2.3/112"}`, wantStatus: 201, wantBody: `"client":"10.1.0.0/16"`},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"2001:db8:1::5/96"}`, wantStatus: 201, wantBody: `"client":"2001:db8:1::/64"`},
			{method: "GET", path: "/v1/bans", token: tok, wantStatus: 200, wantBody: `"manual":true`, wantClients: 4},
			{method: "DELETE", path: "/v1/bans/2001:db8::/32", token: tok, wantStatus: 204},
			{method: "DELETE", path: "/v1/bans/::ffff:10.1.0.0/112", token: tok, wantStatus: 204},
			{method: "GET", path: "/v1/bans", token: tok, wantStatus: 200, wantClients: 2},
		}},
		"bad requests": {token: tok, calls: []call{
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"example.com"}`, wantStatus: 400, wantBody: "ip must be"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"192.0.2.1","ttl":"forever"}`, wantStatus: 400, wantBody: "ttl"},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"192.0.2.1","ttl":"-5m"}`, wantStatus: 400},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"192.0.2.1","extra":1}`, wantStatus: 400},
			{method: "POST", path: "/v1/bans", token: tok, body: `not json`, wantStatus: 400},
			{method: "POST", path: "/v1/bans", token: tok, body: `{"ip":"192.0.2.1","reason":"` + strings.Repeat("x", 201) + `"}`, wantStatus: 400},
			{method: "GET", path: "/v1/bans?limit=0", token: tok, wantStatus: 400},
			{method: "DELETE", path: "/v1/bans/not-an-ip", token: tok, wantStatus: 400},
			{method: "PUT", path: "/v1/bans", token: tok, wantStatus: 405},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			run(t, BansHandler(newBehavior(t), tc.token, nil), tc.calls)
		})
	}
}

func TestBansHandlerBanIsEnforced(t *testing.T) {
	b := newBehavior(t)
	h := BansHandler(b, "t", nil)
	run(t, h, []call{{method: "POST", path: "/v1/bans", token: "t", body: `{"ip":"198.51.100.3","ttl":"1h"}`, wantStatus: 201}})
	out, err := b.Check(context.Background(), &scoring.Request{Time: time.Now(), ClientKey: "198.51.100.3",
		Path: "/", Headers: map[string]string{"user-agent": "Mozilla/5.0"}})
	if err != nil || out.Reason != scoring.ReasonBanned {
		t.Fatalf("Check after POST = %+v, %v", out, err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/bans", nil)
	r.Header.Set("Authorization", "Bearer t")
	h.ServeHTTP(w, r)
	var list BanList
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Bans) != 1 {
		t.Fatalf("list %s: %v", w.Body, err)
	}
	if got := list.Bans[0].Expires.Sub(list.Bans[0].Created); got != time.Hour {
		t.Fatalf("ttl %s", got)
	}
}

type failing struct{}

var errDown = errors.New("redis: connection refused")

func (failing) ListBans(context.Context, time.Time, int) ([]scoring.Ban, error) { return nil, errDown }
func (failing) AddBan(context.Context, string, string, time.Duration, time.Time) (scoring.Ban, error) {
	return scoring.Ban{}, errDown
}
func (failing) Unban(context.Context, string, time.Time) (bool, error) { return false, errDown }

func TestBansHandlerStoreDown(t *testing.T) {
	run(t, BansHandler(failing{}, "t", nil), []call{
		{method: "GET", path: "/v1/bans", token: "t", wantStatus: 503, wantBody: "unavailable"},
		{method: "POST", path: "/v1/bans", token: "t", body: `{"ip":"192.0.2.1"}`, wantStatus: 503},
		{method: "DELETE", path: "/v1/bans/192.0.2.1", token: "t", wantStatus: 503},
	})
}

func FuzzBansHandlerPost(f *testing.F) {
	for _, s := range []string{`{"ip":"192.0.2.1"}`, `{"ip":"2001:db8::/64","ttl":"1h","reason":"x"}`, `{"ip":"::ffff:1.2.3.4","ttl":"1ns"}`, `{"ip":"::ffff:1.2.3.4","ttl":"1s"}`,
		`{"ip":1}`, `[]`, `{"ip":"1.2.3.4"}{}`, `{"ip":"fe80::1%eth0"}`} {
		f.Add(s)
	}
	st, err := state.NewMemory(state.MemoryOptions{MaxClients: 1000, MaxBans: 1000})
	if err != nil {
		f.Fatal(err)
	}
	b, err := scoring.NewBehavior(scoring.DefaultBehaviorConfig(), st, nil, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := BansHandler(b, "t", nil)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/bans", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 201:
			var ban scoring.Ban
			if err := json.Unmarshal(w.Body.Bytes(), &ban); err != nil || ban.ClientKey == "" || !ban.Expires.After(ban.Created) {
				t.Fatalf("201 with %s (%v)", w.Body, err)
			}
		case 400:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
	})
}
