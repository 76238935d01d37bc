package quota

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// 50 goroutines on one subject never get one request more than a limit,
// for lifetime and for per_minute.
func TestConcurrentTakesNeverOvershoot(t *testing.T) {
	cases := map[string]struct {
		route  string
		limits map[string]int64
		limit  int
	}{
		"lifetime":    {"/life", map[string]int64{"lifetime": 37}, 37},
		"per_minute":  {"/minute", map[string]int64{"per_minute": 23}, 23},
		"all windows": {"/all", map[string]int64{"per_minute": 40, "per_hour": 31, "per_day": 60, "lifetime": 90}, 31},
	}
	for bname, newLimiter := range backends() {
		t.Run(bname, func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					l := newLimiter(t, mustCompile(t, plans{"free": {tc.route: tc.limits}}))
					k := Key{Subject: uniq(t, "swarm"), Plan: "free", Path: tc.route}
					now := base.Add(30 * time.Second)
					var allowed, denied atomic.Int64
					var wg sync.WaitGroup
					errs := make(chan error, 50)
					for range 50 {
						wg.Go(func() {
							for range 4 {
								res, err := l.Take(context.Background(), k, now)
								if err != nil {
									errs <- err
									return
								}
								switch res.Decision {
								case Allowed:
									allowed.Add(1)
								case Denied:
									denied.Add(1)
								}
							}
						})
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						t.Fatal(err)
					}
					if got := allowed.Load(); got != int64(tc.limit) {
						t.Errorf("allowed %d of 200, want exactly %d", got, tc.limit)
					}
					if got := denied.Load(); got != 200-int64(tc.limit) {
						t.Errorf("denied %d, want %d", got, 200-tc.limit)
					}
				})
			}
		})
	}
}

// Two Limiters (two replicas) on one Redis share the counters.
func TestTwoLimitersShareRedis(t *testing.T) {
	addr := testenv.RedisAddr(t)
	tab := mustCompile(t, plans{"free": {"/api/generate/": {"per_minute": 5, "lifetime": 7}}})
	a, err := NewRedis(newRedisClient(t, addr), tab, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRedis(newRedisClient(t, addr), tab, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Subject: uniq(t, "frank"), Plan: "free", Path: "/api/generate/"}
	var got []string
	for i := range 7 {
		l := a
		if i%2 == 1 {
			l = b
		}
		res, err := l.Take(context.Background(), k, base.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v/%d", res.Decision, res.Remaining))
	}
	want := "allowed/4 allowed/3 allowed/2 allowed/1 allowed/0 denied/0 denied/0"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("alternating replicas: %s\nwant %s", s, want)
	}
	// A new minute bucket: the lifetime budget (7) is what is left, shared too.
	res, _ := b.Take(context.Background(), k, base.Add(10*time.Minute))
	res2, _ := a.Take(context.Background(), k, base.Add(10*time.Minute))
	res3, _ := b.Take(context.Background(), k, base.Add(10*time.Minute))
	if res.Decision != Allowed || res2.Decision != Allowed || res2.Window != Lifetime || res2.Remaining != 0 ||
		res3.Decision != Denied || res3.Window != Lifetime {
		t.Errorf("lifetime across replicas: %+v, %+v, %+v", res, res2, res3)
	}
}

// countingHook counts commands sent by the client: round trips.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// commandCalls reads "calls" per command from INFO commandstats.
func commandCalls(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// One round trip per Take: the client sends exactly one command (EVALSHA),
// and Redis counts exactly N evalsha calls and no eval.
func TestOneRoundTripPerTake(t *testing.T) {
	srv := testenv.StartRedis(t) // private: the shared server sees other packages' commands
	client := newRedisClient(t, srv.Addr)
	hook := &countingHook{}
	client.AddHook(hook)
	admin := newRedisClient(t, srv.Addr)
	l, err := NewRedis(client, mustCompile(t, plans{"free": {"/api/generate/": {"per_minute": 1000, "per_hour": 1000, "per_day": 1000, "lifetime": 1000}}}), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Subject: "grace", Plan: "free", Path: "/api/generate/"}
	// Warm up: the first call finds no cached script (NOSCRIPT) and falls back to EVAL.
	if _, err := l.Take(context.Background(), k, base); err != nil {
		t.Fatal(err)
	}
	before := commandCalls(t, admin)
	hook.n.Store(0)
	const n = 100
	for i := range n {
		res, err := l.Take(context.Background(), k, base.Add(time.Duration(i)*time.Millisecond))
		if err != nil || res.Decision != Allowed {
			t.Fatalf("take %d: %+v %v", i, res, err)
		}
	}
	after := commandCalls(t, admin)
	if got := after["evalsha"] - before["evalsha"]; got != n {
		t.Errorf("evalsha calls = %d, want %d", got, n)
	}
	if got := after["eval"] - before["eval"]; got != 0 {
		t.Errorf("eval calls = %d, want 0", got)
	}
	if got := hook.n.Load(); got != n {
		t.Errorf("client sent %d commands for %d Takes", got, n)
	}
}

// After SCRIPT FLUSH (or a Redis restart) Take falls back to EVAL once,
// which caches the script again.
func TestNoScriptFallback(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := newRedisClient(t, srv.Addr)
	l, err := NewRedis(client, mustCompile(t, plans{"free": {"/a": {"per_minute": 10}}}), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Subject: "heidi", Plan: "free", Path: "/a"}
	for i := range 3 {
		if err := client.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		if res, err := l.Take(context.Background(), k, base); err != nil || res.Remaining != int64(9-i) {
			t.Fatalf("take %d after SCRIPT FLUSH: %+v %v", i, res, err)
		}
	}
	calls := commandCalls(t, client)
	if calls["eval"] != 3 || calls["evalsha"] != 3 {
		t.Errorf("eval %d evalsha %d, want 3 and 3", calls["eval"], calls["evalsha"])
	}
}

// The key layout is the contract (DESIGN.md section 4): hash-tagged per
// subject, buckets expiring with their window, lifetime without TTL.
func TestRedisKeyLayout(t *testing.T) {
	addr := testenv.RedisAddr(t)
	client := newRedisClient(t, addr)
	l, err := NewRedis(client, mustCompile(t, plans{"free": {"/users/{id}/export": {"per_minute": 5, "per_hour": 5, "per_day": 5, "lifetime": 5}}}), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	subject := uniq(t, "ivan{x}%")
	esc := strings.NewReplacer("{", "%7B", "}", "%7D", "%", "%25").Replace(subject)
	now := base.Add(37*time.Hour + 30*time.Minute + 30*time.Second) // 13:30:30 on day 1
	if _, err := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: "/users/7/export"}, now); err != nil {
		t.Fatal(err)
	}
	ms := now.UnixMilli()
	p := "sl:q:{" + esc + "}:free:/users/{id}/export:"
	// A bucket lives two window lengths from its start: 2w − elapsed.
	want := map[string]time.Duration{
		p + "m:" + strconv.FormatInt(ms/60_000, 10):     90 * time.Second,
		p + "h:" + strconv.FormatInt(ms/3_600_000, 10):  2*time.Hour - 30*time.Minute - 30*time.Second,
		p + "d:" + strconv.FormatInt(ms/86_400_000, 10): 48*time.Hour - 13*time.Hour - 30*time.Minute - 30*time.Second,
		p + "life": -1,
	}
	keys, err := client.Keys(context.Background(), "sl:q:{"+strings.ReplaceAll(esc, "%", "\\%")+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(want) {
		t.Errorf("keys %v, want %d", keys, len(want))
	}
	for key, ttl := range want {
		got, err := client.PTTL(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 0 && got != -1 || ttl > 0 && (got > ttl || got < ttl-5*time.Second) {
			t.Errorf("PTTL %s = %v, want ≈ %v", key, got, ttl)
		}
		if v, _ := client.Get(context.Background(), key).Int(); v != 1 {
			t.Errorf("%s = %d, want 1", key, v)
		}
	}
}

// With Redis gone, Take returns a *BackendError promptly: the caller's
// deadline bounds it, and the metric counts it.
func TestRedisFailure(t *testing.T) {
	tab := mustCompile(t, plans{"free": {"/a": {"per_minute": 10}}})
	k := Key{Subject: "judy", Plan: "free", Path: "/a"}

	stopped := testenv.StartRedis(t)
	blackhole := blackholeListener(t)

	cases := map[string]struct {
		addr    string
		prepare func(t *testing.T, l *Limiter)
		timeout bool
	}{
		"stopped redis": {
			addr: stopped.Addr,
			prepare: func(t *testing.T, l *Limiter) {
				if _, err := l.Take(context.Background(), k, base); err != nil {
					t.Fatalf("before stop: %v", err)
				}
				stopped.Stop()
			},
		},
		"redis that never answers": {addr: blackhole, timeout: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			cfg := DefaultConfig()
			cfg.Registerer = reg
			l, err := NewRedis(newRedisClient(t, tc.addr), tab, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(t, l)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := l.Take(ctx, k, base)
			elapsed := time.Since(start)
			var be *BackendError
			if !errors.As(err, &be) {
				t.Fatalf("Take = %+v, %v; want a *BackendError", res, err)
			}
			if res.Decision != Unknown || res.Route != "/a" {
				t.Errorf("result with error = %+v", res)
			}
			// The client's own ReadTimeout is 3 s: finishing well before it
			// shows the context deadline was honoured.
			if elapsed > 2*time.Second {
				t.Errorf("Take took %v with a 200ms deadline", elapsed)
			}
			if be.Timeout() != tc.timeout {
				t.Errorf("Timeout() = %v, want %v (%v)", be.Timeout(), tc.timeout, err)
			}
			kind := "error"
			if tc.timeout {
				kind = "timeout"
			}
			if got := testutil.ToFloat64(l.m.redisErrors(kind)); got != 1 {
				t.Errorf("smartlayer_quota_redis_errors_total{kind=%q} = %v, want 1", kind, got)
			}
		})
	}
}

// blackholeListener accepts connections and never answers.
func blackholeListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// Every key of a request carries the subject, escaped, as its hash tag:
// braces in a subject cannot end the tag early, '%' cannot make two
// subjects collide (store.TestEscapeKey checks the escaping itself).
func TestRedisKeysEscapeSubject(t *testing.T) {
	pr, err := compileLimits("free", "/x", "/x", map[string]int64{"per_minute": 1, "lifetime": 2})
	if err != nil {
		t.Fatal(err)
	}
	for subject, tag := range map[string]string{
		"user-42":     "{user-42}",
		"2001:db8::1": "{2001:db8::1}",
		"a}b{c":       "{a%7Db%7Bc}",
		"100%":        "{100%25}",
	} {
		keys := redisKeys(subject, pr, 90_000, 3)
		if len(keys) != 3 {
			t.Fatalf("%q: keys %q, want 3", subject, keys)
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, keyPrefix+tag+":free:/x:") {
				t.Errorf("subject %q: key %q, want prefix %q", subject, k, keyPrefix+tag+":free:/x:")
			}
		}
	}
}

// The local cache of exhausted windows: once Redis denies, the same
// subject and route are denied without a round trip, with RetryAfter and
// Reset counted down, until the earlier of RetryAfter and the TTL; then
// Redis decides again. Another subject, route or a reload (SetTable) is
// not answered from it.
func TestRedisLocalDenialCache(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := newRedisClient(t, srv.Addr)
	hook := &countingHook{}
	client.AddHook(hook)
	tab := mustCompile(t, plans{"free": {"/a/": {"per_minute": 2}, "/b/": {"per_minute": 2}}})
	cases := []struct {
		name string
		ttl  time.Duration
		// at is when the cached denial is asked again (-1: at its
		// RetryAfter); cached whether it is answered without Redis.
		at     time.Duration
		cached bool
	}{
		{"within the TTL", 10 * time.Second, 9 * time.Second, true},
		{"past the TTL", 10 * time.Second, 10 * time.Second, false},
		{"at RetryAfter before the TTL", time.Hour, -1, false},
		{"off", 0, time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.LocalCacheTTL, cfg.LocalCacheSize = tc.ttl, 10
			l, err := NewRedis(client, tab, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			k := Key{Subject: uniq(t, "s"), Plan: "free", Path: "/a/"}
			for range 2 {
				if _, err := l.Take(ctx, k, base); err != nil {
					t.Fatal(err)
				}
			}
			first, err := l.Take(ctx, k, base)
			if err != nil || first.Decision != Denied || first.RetryAfter <= 0 {
				t.Fatalf("exhausted window: %+v %v", first, err)
			}
			at := tc.at
			if at < 0 {
				at = first.RetryAfter
			}
			hook.n.Store(0)
			res, err := l.Take(ctx, k, base.Add(at))
			if err != nil {
				t.Fatal(err)
			}
			if sent := hook.n.Load(); (sent == 0) != tc.cached {
				t.Fatalf("%d commands sent, cached answer wanted: %v", sent, tc.cached)
			}
			if tc.cached {
				want := first
				want.RetryAfter, want.Reset = first.RetryAfter-at, first.Reset-at
				if res != want {
					t.Errorf("cached denial %+v, want %+v", res, want)
				}
				// Not for another route, nor after a reload.
				hook.n.Store(0)
				if _, err := l.Take(ctx, Key{Subject: k.Subject, Plan: "free", Path: "/b/"}, base); err != nil || hook.n.Load() != 1 {
					t.Errorf("other route: %d commands (%v), want 1", hook.n.Load(), err)
				}
				l.SetTable(tab)
				hook.n.Store(0)
				if _, err := l.Take(ctx, k, base.Add(at)); err != nil || hook.n.Load() != 1 {
					t.Errorf("after SetTable: %d commands (%v), want 1", hook.n.Load(), err)
				}
			}
		})
	}
}
