package scoring_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// backend makes a fresh State per test.
type backend struct {
	name string
	make func(t *testing.T) scoring.State
}

func uniquePrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + ":"
}

func redisClient(t testing.TB, addr string) redis.UniversalClient {
	// ContextTimeoutEnabled: without it go-redis ignores the caller's
	// deadline on reads and waits for ReadTimeout (3 s by default).
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func backends(t *testing.T) []backend {
	return []backend{
		{"memory", func(t *testing.T) scoring.State {
			m, err := state.NewMemory(state.DefaultMemoryOptions())
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
		{"redis", func(t *testing.T) scoring.State {
			r, err := state.NewRedis(redisClient(t, testenv.RedisAddr(t)), state.RedisOptions{Prefix: uniquePrefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
	}
}

func newBehavior(t *testing.T, st scoring.State, cfg scoring.BehaviorConfig, v scoring.Verdicts, clk *testenv.Clock) (*scoring.Behavior, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var opts []scoring.Option
	if clk != nil {
		opts = append(opts, scoring.WithClock(clk.Now))
	}
	b, err := scoring.NewBehavior(cfg, st, v, nil, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, reg
}

func req(ip, ua, path string, at time.Time) *scoring.Request {
	h := map[string]string{}
	if ua != "-" {
		h["user-agent"] = ua
	}
	a := netip.MustParseAddr(ip)
	return &scoring.Request{Time: at, ClientIP: a, ClientKey: a.String(), Method: "GET", Path: path, Headers: h}
}

func check(t *testing.T, b *scoring.Behavior, r *scoring.Request) scoring.Outcome {
	t.Helper()
	out, err := b.Check(context.Background(), r)
	if err != nil {
		t.Fatalf("Check(%s %s): %v", r.ClientKey, r.Path, err)
	}
	return out
}

// warmUp spends the grace period: 20 quiet requests, one every 5 s, on
// paths that trigger nothing. It returns the time after them.
func warmUp(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) time.Time {
	t.Helper()
	pages := []string{"/", "/products", "/about", "/cart"}
	for i := range 20 {
		out := check(t, b, req(ip, ua, pages[i%len(pages)], at))
		if out.Deny || out.Score != 0 {
			t.Fatalf("warm-up request %d: %+v", i+1, out)
		}
		at = at.Add(5 * time.Second)
	}
	return at
}

func TestBehavior(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			t.Run("normal browsing", func(t *testing.T) { testNormalBrowsing(t, be) })
			t.Run("instant rules", func(t *testing.T) { testInstantRules(t, be) })
			t.Run("signals", func(t *testing.T) { testSignals(t, be) })
			t.Run("thresholds", func(t *testing.T) { testThresholds(t, be) })
			t.Run("grace", func(t *testing.T) { testGrace(t, be) })
			t.Run("ban expiry and escalation", func(t *testing.T) { testEscalation(t, be) })
			t.Run("llm", func(t *testing.T) { testLLM(t, be) })
			t.Run("client keys", func(t *testing.T) { testClientKeys(t, be) })
			t.Run("admin", func(t *testing.T) { testAdmin(t, be) })
			t.Run("state ttl", func(t *testing.T) { testStateTTL(t, be) })
		})
	}
}

func testNormalBrowsing(t *testing.T, be backend) {
	b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
	pages := []string{"/", "/products", "/products/shoes", "/products/812", "/products/77", "/cart",
		"/search", "/blog", "/blog/2025/how-to-choose", "/products/1531", "/account", "/help",
		"/products/shoes/42", "/checkout", "/orders", "/orders/90211"}
	at := t0
	for i := range 60 {
		p := pages[(i*7+i/3)%len(pages)]
		out := check(t, b, req("198.51.100.10", browserUA, p, at))
		if out.Deny || out.Grey || out.Score > 0 {
			t.Fatalf("page %d %s: %+v", i+1, p, out)
		}
		status := 200
		if i%25 == 24 {
			status = 404
		}
		report(t, b, "198.51.100.10", at.Add(80*time.Millisecond), status)
		// Human pace: 3 to 12 s between pages.
		at = at.Add(time.Duration(3+(i*5)%10) * time.Second)
	}
}

func testInstantRules(t *testing.T, be backend) {
	type step struct {
		// responses to report before the request: status codes, own denials
		responses []int
		own       int
	}
	tests := map[string]struct {
		run        func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome
		wantDeny   bool
		wantReason string
	}{
		"empty user agent first request": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				return check(t, b, req(ip, "", "/", t0))
			}, wantDeny: true, wantReason: scoring.ReasonEmptyUserAgent},
		"missing user agent": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				return check(t, b, req(ip, "-", "/", t0))
			}, wantDeny: true, wantReason: scoring.ReasonEmptyUserAgent},
		"50 requests in 10 s": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				for i := range 49 {
					if out := check(t, b, req(ip, browserUA, "/", t0.Add(time.Duration(i)*150*time.Millisecond))); out.Deny {
						t.Fatalf("request %d denied: %+v", i+1, out)
					}
				}
				return check(t, b, req(ip, browserUA, "/", t0.Add(49*150*time.Millisecond)))
			}, wantDeny: true, wantReason: scoring.ReasonRequestBurst},
		"49 requests in 10 s": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				var out scoring.Outcome
				for i := range 49 {
					out = check(t, b, req(ip, browserUA, "/", t0.Add(time.Duration(i)*150*time.Millisecond)))
				}
				return out
			}},
		"50 requests in 60 s": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				var out scoring.Outcome
				for i := range 50 {
					if out = check(t, b, req(ip, browserUA, "/", t0.Add(time.Duration(i)*1200*time.Millisecond))); out.Deny {
						t.Fatalf("request %d denied: %+v", i+1, out)
					}
				}
				return out
			}},
		"80% errors in 2 min": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				check(t, b, req(ip, browserUA, "/", t0))
				report(t, b, ip, t0, 404, 404, 500, 403, 200, 404, 401, 404, 200, 429)
				return check(t, b, req(ip, browserUA, "/", t0.Add(30*time.Second)))
			}, wantDeny: true, wantReason: scoring.ReasonErrorRate},
		"3 of 4 errors is below the sample": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				check(t, b, req(ip, browserUA, "/", t0))
				report(t, b, ip, t0, 404, 404, 500, 200)
				return check(t, b, req(ip, browserUA, "/", t0.Add(30*time.Second)))
			}},
		"errors older than 2 min do not count": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				check(t, b, req(ip, browserUA, "/", t0))
				report(t, b, ip, t0, 404, 404, 500, 403, 404, 404, 401, 404, 404, 404)
				return check(t, b, req(ip, browserUA, "/", t0.Add(150*time.Second)))
			}},
		"own denials are not errors": {
			run: func(t *testing.T, b *scoring.Behavior, ip string) scoring.Outcome {
				check(t, b, req(ip, browserUA, "/", t0))
				own := make([]scoring.UpstreamResponse, 20)
				for i := range own {
					own[i] = scoring.UpstreamResponse{ClientIP: ip, Status: 403, OwnDenial: true, At: t0}
				}
				if err := b.ObserveResponses(context.Background(), own); err != nil {
					t.Fatal(err)
				}
				report(t, b, ip, t0, 200, 200)
				return check(t, b, req(ip, browserUA, "/", t0.Add(time.Second)))
			}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
			ip := "203.0.113.5"
			out := tc.run(t, b, ip)
			if out.Deny != tc.wantDeny || out.Reason != tc.wantReason {
				t.Fatalf("outcome %+v, want deny=%v reason=%q", out, tc.wantDeny, tc.wantReason)
			}
			if !tc.wantDeny {
				return
			}
			if out.Ban == nil || out.Ban.Reason != tc.wantReason || out.Ban.Offence != 1 {
				t.Fatalf("ban %+v", out.Ban)
			}
			// The ban outlives the cause: a clean request a minute later is denied.
			next := check(t, b, req(ip, browserUA, "/", t0.Add(5*time.Minute)))
			if !next.Deny || next.Reason != scoring.ReasonBanned {
				t.Fatalf("after ban: %+v", next)
			}
		})
	}
}

// report feeds the client's upstream responses, as one ALS message does.
func report(t *testing.T, b *scoring.Behavior, ip string, at time.Time, statuses ...int) {
	t.Helper()
	rs := make([]scoring.UpstreamResponse, len(statuses))
	for i, s := range statuses {
		rs[i] = scoring.UpstreamResponse{ClientIP: ip, Status: s, At: at}
	}
	if err := b.ObserveResponses(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func testSignals(t *testing.T, be backend) {
	tests := map[string]struct {
		ua string
		// run sends the triggering requests after the warm-up and returns
		// the last outcome.
		run        func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome
		wantSignal []string
		wantScore  int
	}{
		"suspicious user agent": {ua: "python-requests/2.31.0",
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				return check(t, b, req(ip, ua, "/products", at))
			}, wantSignal: []string{scoring.SignalSuspiciousUA}, wantScore: 2},
		"elevated rate": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				var out scoring.Outcome
				at = at.Add(20 * time.Second) // the warm-up out of the window
				for i := range 20 {
					out = check(t, b, req(ip, ua, "/products", at.Add(time.Duration(i)*200*time.Millisecond)))
					if i < 19 && out.Score != 0 {
						t.Fatalf("request %d of 20 scored %+v", i+1, out)
					}
				}
				return out
			}, wantSignal: []string{scoring.SignalElevatedRate}, wantScore: 3},
		"moderate error rate": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				report(t, b, ip, at, 404, 500, 404, 404, 200, 200, 200, 200, 200, 200)
				return check(t, b, req(ip, ua, "/products", at.Add(time.Second)))
			}, wantSignal: []string{scoring.SignalErrorRate}, wantScore: 2},
		"sensitive path": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				return check(t, b, req(ip, ua, "/admin/login/", at))
			}, wantSignal: []string{scoring.SignalSensitivePath}, wantScore: 4},
		"sensitive path encoded": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				return check(t, b, req(ip, ua, "/static/..%2F%2eenv", at))
			}, wantSignal: []string{scoring.SignalSensitivePath}, wantScore: 4},
		"15 distinct endpoints in a minute": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				var out scoring.Outcome
				// The warm-up's last minute saw /, /about, /cart, /products.
				for i := range 11 {
					out = check(t, b, req(ip, ua, fmt.Sprintf("/scan/p%d", i), at.Add(time.Duration(i)*3*time.Second)))
					if i < 10 && out.Score != 0 {
						t.Fatalf("endpoint %d scored %+v", i+5, out)
					}
				}
				return out
			}, wantSignal: []string{scoring.SignalEndpointScan}, wantScore: 2},
		"sequential ids": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				var out scoring.Outcome
				for i := range 5 {
					// Interleaved with another template, as a page's assets are.
					check(t, b, req(ip, ua, fmt.Sprintf("/avatars/%d.png", 900-i), at.Add(time.Duration(2*i)*3*time.Second)))
					out = check(t, b, req(ip, ua, fmt.Sprintf("/users/%d", 101+i), at.Add(time.Duration(2*i+1)*3*time.Second)))
					if i < 4 && out.Score != 0 {
						t.Fatalf("id %d scored %+v", 101+i, out)
					}
				}
				return out
			}, wantSignal: []string{scoring.SignalSequentialIDs}, wantScore: 5},
		"burst after idle": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				// /cart was last seen in the warm-up; 11 minutes pass.
				at = at.Add(11 * time.Minute)
				var out scoring.Outcome
				for i := range 10 {
					out = check(t, b, req(ip, ua, "/cart", at.Add(time.Duration(i)*900*time.Millisecond)))
					if i < 9 && out.Score != 0 {
						t.Fatalf("burst request %d scored %+v", i+1, out)
					}
				}
				return out
			}, wantSignal: []string{scoring.SignalIdleBurst}, wantScore: 2},
		"burst too slow": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				at = at.Add(11 * time.Minute)
				var out scoring.Outcome
				for i := range 10 {
					out = check(t, b, req(ip, ua, "/cart", at.Add(time.Duration(i)*1200*time.Millisecond)))
				}
				return out
			}},
		"ids not ascending": {
			run: func(t *testing.T, b *scoring.Behavior, ip, ua string, at time.Time) scoring.Outcome {
				var out scoring.Outcome
				for i, id := range []int{5, 6, 7, 9, 10, 11} {
					out = check(t, b, req(ip, ua, fmt.Sprintf("/users/%d", id), at.Add(time.Duration(i)*4*time.Second)))
				}
				return out
			}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
			ip := "192.0.2.77"
			ua := tc.ua
			if ua == "" {
				ua = browserUA
			}
			at := warmUp(t, b, ip, ua, t0)
			out := tc.run(t, b, ip, ua, at)
			if out.Score != tc.wantScore || !slices.Equal(out.Signals, tc.wantSignal) || out.Deny {
				t.Fatalf("outcome %+v, want score %d signals %v", out, tc.wantScore, tc.wantSignal)
			}
			if wantGrey := tc.wantScore >= 4; out.Grey != wantGrey {
				t.Fatalf("grey = %v, want %v", out.Grey, wantGrey)
			}
		})
	}
}

func testThresholds(t *testing.T, be backend) {
	tests := map[string]struct {
		ua, path  string
		errors    []int
		wantScore int
		wantDeny  bool
		wantGrey  bool
	}{
		"score 3 allowed":   {ua: "curl/8.5", path: "/", errors: nil, wantScore: 2},
		"score 4 grey":      {path: "/admin", wantScore: 4, wantGrey: true},
		"score 6 grey":      {ua: "Wget/1.21", path: "/.env", wantScore: 6, wantGrey: true},
		"score 8 bans":      {ua: "Wget/1.21", path: "/.env", errors: []int{404, 404, 404, 404, 404, 200, 200, 200, 200, 200}, wantScore: 8, wantDeny: true},
		"score 8 by prefix": {ua: "sqlmap/1.8", path: "/api/token/refresh", errors: []int{500, 500, 500, 500, 200, 200, 200, 200, 200, 200}, wantScore: 8, wantDeny: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, reg := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
			ip := "198.51.100.200"
			ua := tc.ua
			if ua == "" {
				ua = browserUA
			}
			at := warmUp(t, b, ip, browserUA, t0)
			report(t, b, ip, at, tc.errors...)
			out := check(t, b, req(ip, ua, tc.path, at))
			if out.Score != tc.wantScore || out.Deny != tc.wantDeny || out.Grey != tc.wantGrey {
				t.Fatalf("outcome %+v, want score %d deny %v grey %v", out, tc.wantScore, tc.wantDeny, tc.wantGrey)
			}
			next := check(t, b, req(ip, browserUA, "/", at.Add(time.Second)))
			if next.Deny != tc.wantDeny {
				t.Fatalf("next request %+v, want deny %v", next, tc.wantDeny)
			}
			if tc.wantDeny {
				if out.Reason != scoring.ReasonScore || out.Ban == nil || out.Ban.Score != tc.wantScore {
					t.Fatalf("ban %+v", out)
				}
				if got := counterValue(t, reg, "smartlayer_behavior_bans_total", scoring.ReasonScore); got != 1 {
					t.Fatalf("bans_total{reason=score} = %v", got)
				}
			}
		})
	}
}

// counterValue reads the counter of family name whose label has value label.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func testGrace(t *testing.T, be backend) {
	b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
	ip := "192.0.2.1"
	at := t0
	for i := range 20 {
		// A tool on a sensitive path scores 6, but not during the grace period.
		out := check(t, b, req(ip, "curl/8", "/admin", at))
		if out.Deny || out.Score != 0 || out.Grey {
			t.Fatalf("request %d within grace: %+v", i+1, out)
		}
		at = at.Add(5 * time.Second)
	}
	out := check(t, b, req(ip, "curl/8", "/admin", at))
	if out.Score != 6 || !out.Grey {
		t.Fatalf("request 21: %+v", out)
	}
	// The instant rules apply from the first request even in the grace period.
	if out := check(t, b, req("192.0.2.2", "", "/", at)); !out.Deny {
		t.Fatalf("empty UA within grace: %+v", out)
	}
}

func testEscalation(t *testing.T, be backend) {
	b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
	ip := "203.0.113.99"
	at := t0
	want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i, ttl := range want {
		out := check(t, b, req(ip, "", "/", at))
		if !out.Deny || out.Reason != scoring.ReasonEmptyUserAgent || out.Ban == nil {
			t.Fatalf("offence %d: %+v", i+1, out)
		}
		if got := out.Ban.Expires.Sub(at); got != ttl || out.Ban.Offence != i+1 || !out.Ban.Created.Equal(at) {
			t.Fatalf("offence %d: ban %+v (ttl %s), want ttl %s", i+1, out.Ban, got, ttl)
		}
		// Banned until one millisecond before expiry, free at expiry.
		if out := check(t, b, req(ip, browserUA, "/", at.Add(ttl-time.Millisecond))); out.Reason != scoring.ReasonBanned {
			t.Fatalf("offence %d just before expiry: %+v", i+1, out)
		}
		at = at.Add(ttl)
		if out := check(t, b, req(ip, browserUA, "/", at)); out.Deny {
			t.Fatalf("offence %d after expiry: %+v", i+1, out)
		}
		at = at.Add(time.Minute)
	}
	// A week without offences resets the escalation.
	at = at.Add(7*24*time.Hour + time.Minute)
	out := check(t, b, req(ip, "", "/", at))
	if out.Ban == nil || out.Ban.Offence != 1 || out.Ban.Expires.Sub(at) != time.Hour {
		t.Fatalf("after offence memory: %+v", out.Ban)
	}
}

// fakeVerdicts answers with a fixed verdict and records questions.
type fakeVerdicts struct {
	v     scoring.ClientVerdict
	err   error
	block chan struct{} // when set, wait for it (or ctx) before answering
	calls atomic.Int32
	mu    sync.Mutex
	last  scoring.ClientSummary
}

func (f *fakeVerdicts) ClientVerdict(ctx context.Context, s scoring.ClientSummary) (scoring.ClientVerdict, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.last = s
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return scoring.ClientVerdict{}, ctx.Err()
		}
	}
	return f.v, f.err
}

func testLLM(t *testing.T, be backend) {
	tests := map[string]struct {
		fake      *fakeVerdicts
		nilLLM    bool
		wantBan   bool
		wantFail  string
		wantCalls int32
	}{
		"block confident": {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: scoring.VerdictBlock, Confidence: 0.9}}, wantBan: true, wantCalls: 1},
		"block unsure":    {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: scoring.VerdictBlock, Confidence: 0.6}}, wantCalls: 1},
		// min_confidence 0.85: a verdict exactly that sure counts.
		"block at min_confidence":  {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: scoring.VerdictBlock, Confidence: 0.85}}, wantBan: true, wantCalls: 1},
		"block just below minimum": {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: scoring.VerdictBlock, Confidence: 0.8499}}, wantCalls: 1},
		"allow":                    {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: scoring.VerdictAllow, Confidence: 0.99}}, wantCalls: 1},
		"timeout":                  {fake: &fakeVerdicts{block: make(chan struct{})}, wantFail: "timeout", wantCalls: 2},
		"error":                    {fake: &fakeVerdicts{err: errors.New("503 from provider")}, wantFail: "error", wantCalls: 2},
		"garbage action":           {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: "MAYBE", Confidence: 0.99}}, wantFail: "invalid", wantCalls: 2},
		"garbage confidence":       {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: scoring.VerdictBlock, Confidence: 7}}, wantFail: "invalid", wantCalls: 2},
		"no LLM configured":        {nilLLM: true},
		"lowercase is invalid":     {fake: &fakeVerdicts{v: scoring.ClientVerdict{Action: "block", Confidence: 0.99}}, wantFail: "invalid", wantCalls: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := scoring.DefaultBehaviorConfig()
			cfg.LLM.Timeout = 20 * time.Millisecond
			clk := testenv.NewClock(t0)
			var v scoring.Verdicts
			if !tc.nilLLM {
				v = tc.fake
			}
			b, reg := newBehavior(t, be.make(t), cfg, v, clk)
			ip := "198.51.100.44"
			at := warmUp(t, b, ip, browserUA, t0)
			clk.Set(at)
			out := check(t, b, req(ip, browserUA, "/admin", at))
			if !out.Grey || out.Deny {
				t.Fatalf("grey request: %+v", out)
			}
			b.Drain()
			if !tc.nilLLM {
				tc.fake.mu.Lock()
				last := tc.fake.last
				tc.fake.mu.Unlock()
				if last.ClientKey != ip || last.Score != 4 || last.Path != "/admin" || !slices.Equal(last.Signals, []string{scoring.SignalSensitivePath}) {
					t.Fatalf("question %+v", last)
				}
			}
			// The next request: denied only after a confident BLOCK.
			out = check(t, b, req(ip, browserUA, "/admin", at.Add(time.Second)))
			b.Drain()
			if gotBan := out.Reason == scoring.ReasonBanned; gotBan != tc.wantBan {
				t.Fatalf("after verdict: %+v, want banned %v", out, tc.wantBan)
			}
			if tc.wantBan && out.Ban.Reason != "behavior.llm" {
				t.Fatalf("ban reason %q", out.Ban.Reason)
			}
			if !tc.nilLLM {
				// Failures are not cached: the second grey request asks again;
				// verdicts are cached: it does not.
				if got := tc.fake.calls.Load(); got != tc.wantCalls {
					t.Fatalf("LLM asked %d times, want %d", got, tc.wantCalls)
				}
			}
			if tc.wantFail != "" {
				if got := counterValue(t, reg, "smartlayer_behavior_llm_failures_total", tc.wantFail); got != 2 {
					t.Fatalf("llm_failures_total{%s} = %v, want 2", tc.wantFail, got)
				}
			}
		})
	}
	t.Run("one pending question per client", func(t *testing.T) {
		fake := &fakeVerdicts{block: make(chan struct{}), v: scoring.ClientVerdict{Action: scoring.VerdictBlock, Confidence: 1}}
		cfg := scoring.DefaultBehaviorConfig()
		b, _ := newBehavior(t, be.make(t), cfg, fake, testenv.NewClock(t0))
		ip := "198.51.100.45"
		at := warmUp(t, b, ip, browserUA, t0)
		for i := range 5 {
			if out := check(t, b, req(ip, browserUA, "/admin", at.Add(time.Duration(i)*time.Second))); !out.Grey {
				t.Fatalf("request %d: %+v", i, out)
			}
		}
		close(fake.block)
		b.Drain()
		if got := fake.calls.Load(); got != 1 {
			t.Fatalf("asked %d times for one client", got)
		}
		if out := check(t, b, req(ip, browserUA, "/", at.Add(10*time.Second))); out.Reason != scoring.ReasonBanned {
			t.Fatalf("after BLOCK: %+v", out)
		}
	})
	t.Run("queue full drops", func(t *testing.T) {
		fake := &fakeVerdicts{block: make(chan struct{})}
		cfg := scoring.DefaultBehaviorConfig()
		cfg.LLM.QueueSize, cfg.LLM.Workers = 1, 1
		b, reg := newBehavior(t, be.make(t), cfg, fake, testenv.NewClock(t0))
		// Three grey clients: one asked, one queued, one dropped.
		for i := range 3 {
			ip := fmt.Sprintf("198.51.100.%d", 50+i)
			at := warmUp(t, b, ip, browserUA, t0)
			if out := check(t, b, req(ip, browserUA, "/admin", at)); !out.Grey {
				t.Fatalf("client %d: %+v", i, out)
			}
			if i == 0 {
				// Wait until the worker took the first question off the queue.
				for fake.calls.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}
		close(fake.block)
		b.Drain()
		if got := counterValue(t, reg, "smartlayer_behavior_llm_failures_total", "queue_full"); got != 1 {
			t.Fatalf("queue_full = %v", got)
		}
	})
}

func testClientKeys(t *testing.T, be backend) {
	b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
	tests := map[string]struct {
		banned, same, other string
	}{
		"ipv4-mapped is ipv4": {banned: "::ffff:192.0.2.33", same: "192.0.2.33", other: "192.0.2.34"},
		"ipv4 then mapped":    {banned: "192.0.2.40", same: "::ffff:192.0.2.40", other: "::ffff:192.0.2.41"},
		"ipv6 same /64":       {banned: "2001:db8:1:2::1", same: "2001:db8:1:2:aaaa::77", other: "2001:db8:1:3::1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if out := check(t, b, req(tc.banned, "", "/", t0)); !out.Deny || out.Ban == nil {
				t.Fatalf("ban: %+v", out)
			}
			if out := check(t, b, req(tc.same, browserUA, "/", t0.Add(time.Second))); out.Reason != scoring.ReasonBanned {
				t.Fatalf("%s: %+v", tc.same, out)
			}
			if out := check(t, b, req(tc.other, browserUA, "/", t0.Add(time.Second))); out.Deny {
				t.Fatalf("%s: %+v", tc.other, out)
			}
		})
	}
	// Errors reported under the mapped form count for the plain address.
	ip := "192.0.2.60"
	check(t, b, req(ip, browserUA, "/", t0))
	report(t, b, "::ffff:"+ip, t0, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	if out := check(t, b, req(ip, browserUA, "/", t0.Add(time.Second))); out.Reason != scoring.ReasonErrorRate {
		t.Fatalf("mapped error feedback: %+v", out)
	}
}

func testAdmin(t *testing.T, be backend) {
	ctx := context.Background()
	b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
	ban, err := b.AddBan(ctx, "2001:db8::5", "operator: scraping", 30*time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if ban.ClientKey != "2001:db8::/64" || ban.Offence != 0 || ban.Expires.Sub(t0) != 30*time.Minute {
		t.Fatalf("AddBan = %+v", ban)
	}
	if _, err := b.Ban(ctx, "::ffff:10.1.2.3", "payload.sqli", 9, t0); err != nil {
		t.Fatal(err)
	}
	bans, err := b.ListBans(ctx, t0.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for _, x := range bans {
		keys = append(keys, x.ClientKey+"|"+x.Reason)
	}
	slices.Sort(keys)
	if want := []string{"10.1.2.3|payload.sqli", "2001:db8::/64|operator: scraping"}; !slices.Equal(keys, want) {
		t.Fatalf("ListBans = %v, want %v", keys, want)
	}
	// After 30 minutes only the hour-long payload ban is left.
	if bans, _ := b.ListBans(ctx, t0.Add(31*time.Minute), 0); len(bans) != 1 || bans[0].ClientKey != "10.1.2.3" {
		t.Fatalf("ListBans later = %+v", bans)
	}
	ok, err := b.Unban(ctx, "10.1.2.3", t0.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("Unban = %v, %v", ok, err)
	}
	if ok, err := b.Unban(ctx, "10.1.2.3", t0.Add(time.Minute)); err != nil || ok {
		t.Fatalf("second Unban = %v, %v", ok, err)
	}
	if out := check(t, b, req("10.1.2.3", browserUA, "/", t0.Add(2*time.Minute))); out.Deny {
		t.Fatalf("after unban: %+v", out)
	}
	// Unban forgot the offences: the next ban is a first offence again.
	ban, err = b.Ban(ctx, "10.1.2.3", "payload.sqli", 9, t0.Add(3*time.Minute))
	if err != nil || ban.Offence != 1 {
		t.Fatalf("ban after unban = %+v, %v", ban, err)
	}
	// An escalating ban over an active one keeps it.
	again, err := b.Ban(ctx, "10.1.2.3", "behavior.score", 12, t0.Add(4*time.Minute))
	if err != nil || again != ban {
		t.Fatalf("ban over active ban = %+v, %v; want %+v", again, err, ban)
	}
}

func testStateTTL(t *testing.T, be backend) {
	b, _ := newBehavior(t, be.make(t), scoring.DefaultBehaviorConfig(), nil, nil)
	ip := "192.0.2.200"
	at := warmUp(t, b, ip, browserUA, t0)
	if out := check(t, b, req(ip, "curl/8", "/", at)); out.Score != 2 {
		t.Fatalf("past grace: %+v", out)
	}
	// Silent for longer than state_ttl: a new grace period.
	if out := check(t, b, req(ip, "curl/8", "/", at.Add(2*time.Hour))); out.Score != 0 {
		t.Fatalf("after state ttl: %+v", out)
	}
}

// TestSharedRedis: two replicas on one Redis see the same counters and bans,
// and a restarted replica (a new Behavior) still sees them.
func TestSharedRedis(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := uniquePrefix(t)
	mk := func() *scoring.Behavior {
		st, err := state.NewRedis(redisClient(t, addr), state.RedisOptions{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := newBehavior(t, st, scoring.DefaultBehaviorConfig(), nil, nil)
		return b
	}
	a, b := mk(), mk()
	ip := "203.0.113.50"
	var out scoring.Outcome
	for i := range 50 {
		r := req(ip, browserUA, "/", t0.Add(time.Duration(i)*100*time.Millisecond))
		if i%2 == 0 {
			out = check(t, a, r)
		} else {
			out = check(t, b, r)
		}
		if i < 49 && out.Deny {
			t.Fatalf("request %d: %+v", i+1, out)
		}
	}
	if out.Reason != scoring.ReasonRequestBurst {
		t.Fatalf("50th request across replicas: %+v", out)
	}
	if out := check(t, a, req(ip, browserUA, "/", t0.Add(time.Minute))); out.Reason != scoring.ReasonBanned {
		t.Fatalf("replica a: %+v", out)
	}
	c := mk()
	if out := check(t, c, req(ip, browserUA, "/", t0.Add(time.Minute))); out.Reason != scoring.ReasonBanned {
		t.Fatalf("new replica: %+v", out)
	}
	// Error feedback received by one replica counts on the other.
	ip2 := "203.0.113.51"
	check(t, a, req(ip2, browserUA, "/", t0))
	report(t, b, ip2, t0, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	if out := check(t, a, req(ip2, browserUA, "/", t0.Add(time.Second))); out.Reason != scoring.ReasonErrorRate {
		t.Fatalf("shared error window: %+v", out)
	}
}

// TestRedisDown: with Redis stopped, Check fails within its deadline, and
// works again once Redis is back.
func TestRedisDown(t *testing.T) {
	srv := testenv.StartRedis(t)
	st, err := state.NewRedis(redisClient(t, srv.Addr), state.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, reg := newBehavior(t, st, scoring.DefaultBehaviorConfig(), nil, nil)
	ip := "192.0.2.9"
	check(t, b, req(ip, browserUA, "/", t0))
	srv.Stop()
	const deadline = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	start := time.Now()
	_, err = b.Check(ctx, req(ip, browserUA, "/", t0.Add(time.Second)))
	elapsed := time.Since(start)
	cancel()
	if err == nil {
		t.Fatal("Check with Redis down: no error")
	}
	// Generous slack for a loaded CI machine; without the deadline a dial
	// timeout would take a second or more.
	if elapsed > deadline+500*time.Millisecond {
		t.Fatalf("Check took %s with a %s deadline", elapsed, deadline)
	}
	if got := counterValue(t, reg, "smartlayer_behavior_store_errors_total", "check"); got != 1 {
		t.Fatalf("store_errors_total{check} = %v", got)
	}
	srv.Start()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Check(ctx, req(ip, browserUA, "/", t0.Add(2*time.Second))); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestSetConfig(t *testing.T) {
	st, err := state.NewMemory(state.DefaultMemoryOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newBehavior(t, st, scoring.DefaultBehaviorConfig(), nil, nil)
	bad := scoring.DefaultBehaviorConfig()
	bad.GreyThreshold = 0
	if err := b.SetConfig(bad); err == nil || !strings.Contains(err.Error(), "behavior.grey_threshold") {
		t.Fatalf("SetConfig(bad) = %v", err)
	}
	if got := b.Config().GreyThreshold; got != 4 {
		t.Fatalf("bad config applied: grey_threshold %d", got)
	}
	if out := check(t, b, req("192.0.2.1", "", "/", t0)); out.Reason != scoring.ReasonEmptyUserAgent {
		t.Fatalf("before reload: %+v", out)
	}
	cfg := scoring.DefaultBehaviorConfig()
	cfg.BlockEmptyUserAgent = false
	cfg.SensitivePaths = []string{"/internal"}
	if err := b.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.SensitivePaths[0] = "/changed-after-set" // the Behavior keeps its own copy
	if out := check(t, b, req("192.0.2.2", "", "/", t0)); out.Deny {
		t.Fatalf("after reload: %+v", out)
	}
	at := warmUp(t, b, "192.0.2.3", browserUA, t0)
	if out := check(t, b, req("192.0.2.3", browserUA, "/internal/x", at)); out.Score != 4 {
		t.Fatalf("reloaded sensitive path: %+v", out)
	}
	if out := check(t, b, req("192.0.2.3", browserUA, "/admin", at.Add(5*time.Second))); out.Score != 0 {
		t.Fatalf("old sensitive path still applies: %+v", out)
	}
}

// TestRedisHung: a Redis that accepts connections but never answers (a
// stalled server, a network black hole) costs a Check no more than its
// deadline.
func TestRedisHung(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); close(done); conns.Wait() })
	st, err := state.NewRedis(redisClient(t, l.Addr().String()), state.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newBehavior(t, st, scoring.DefaultBehaviorConfig(), nil, nil)
	for range 3 {
		const deadline = 20 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		_, err := b.Check(ctx, req("192.0.2.9", browserUA, "/", t0))
		elapsed := time.Since(start)
		cancel()
		if err == nil {
			t.Fatal("Check against a silent Redis: no error")
		}
		if elapsed > deadline+500*time.Millisecond {
			t.Fatalf("Check took %s with a %s deadline", elapsed, deadline)
		}
	}
}
