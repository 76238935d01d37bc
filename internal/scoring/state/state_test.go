package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func windows() scoring.Windows {
	c := scoring.DefaultBehaviorConfig()
	return scoring.Windows{Rate: c.RateWindow, Errors: c.ErrorWindow, Distinct: c.DistinctWindow,
		Idle: c.IdleBefore, Burst: c.BurstWindow, StateTTL: c.StateTTL,
		MaxEndpoints: c.TrackedEndpoints, MaxTemplates: c.TrackedTemplates}
}

func newRedis(t testing.TB) (*Redis, redis.UniversalClient, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = c.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "t" + hex.EncodeToString(b[:]) + ":"
	r, err := NewRedis(c, RedisOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return r, c, prefix
}

func newMemory(t testing.TB, o MemoryOptions) *Memory {
	t.Helper()
	m, err := NewMemory(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCounts(t *testing.T) {
	tests := map[string]struct {
		adds []int64
		cur  int64
		want int
	}{
		"empty":              {nil, 5, 0},
		"same bucket":        {[]int64{3, 3, 3}, 3, 3},
		"window edge":        {[]int64{1, 5, 10}, 10, 3},
		"oldest falls out":   {[]int64{0, 5, 10}, 10, 2},
		"long gap clears":    {[]int64{1, 2, 3, 100}, 100, 1},
		"read later":         {[]int64{1, 2, 3}, 11, 2},
		"read much later":    {[]int64{1, 2, 3}, 50, 0},
		"late event counted": {[]int64{10, 8}, 10, 2},
		"too late dropped":   {[]int64{20, 10}, 20, 1},
		"negative indexes":   {[]int64{-3, -2}, -2, 2},
		"read before base":   {[]int64{10, 11, 12}, 11, 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var c counts
			base := int64(-1 << 40)
			for _, a := range tc.adds {
				if advance(&base, a, &c) {
					c.inc(a)
				}
			}
			if got := c.sum(base, tc.cur); got != tc.want {
				t.Fatalf("sum(%d) = %d, want %d", tc.cur, got, tc.want)
			}
		})
	}
}

func TestMemoryLRUBound(t *testing.T) {
	m := newMemory(t, MemoryOptions{MaxClients: 100, Shards: 4})
	ctx := context.Background()
	w := windows()
	for i := range 1000 {
		if _, err := m.Check(ctx, scoring.Observation{ClientKey: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Now: t0, Windows: w}); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Len(); n > 100 {
		t.Fatalf("tracked %d clients, bound 100", n)
	}
	// The most recent client is remembered, the first one forgotten.
	st, _ := m.Check(ctx, scoring.Observation{ClientKey: "10.0.3.231", Now: t0, Windows: w})
	if st.Requests != 2 {
		t.Fatalf("recent client: %d requests", st.Requests)
	}
	st, _ = m.Check(ctx, scoring.Observation{ClientKey: "10.0.0.0", Now: t0, Windows: w})
	if st.Requests != 1 {
		t.Fatalf("evicted client: %d requests", st.Requests)
	}
}

func TestMemoryBanBound(t *testing.T) {
	m := newMemory(t, MemoryOptions{MaxBans: 8, Shards: 1})
	ctx := context.Background()
	for i := range 20 {
		_, err := m.Ban(ctx, fmt.Sprintf("10.1.0.%d", i), scoring.BanRequest{Reason: "r", Now: t0.Add(time.Duration(i) * time.Second),
			TTL: time.Hour, Escalate: true, Factor: 2, MaxTTL: 24 * time.Hour, OffenceMemory: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
	}
	bans, _ := m.Bans(ctx, t0.Add(time.Minute), 100)
	if len(bans) != 8 {
		t.Fatalf("%d bans kept, bound 8", len(bans))
	}
	st, _ := m.Check(ctx, scoring.Observation{ClientKey: "10.1.0.19", Now: t0.Add(time.Minute), Windows: windows()})
	if st.Ban == nil {
		t.Fatal("latest ban dropped")
	}
}

func TestMemoryContextDone(t *testing.T) {
	m := newMemory(t, DefaultMemoryOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Check(ctx, scoring.Observation{ClientKey: "x", Now: t0, Windows: windows()}); err == nil {
		t.Fatal("Check with a done context succeeded")
	}
}

// TestBackendsAgree replays one random history of requests, responses and
// bans on the memory and the Redis store and compares every answer: the Lua
// script and the Go code must implement the same windows.
// TestBackendsAgree replays random requests, responses, bans and unbans on
// the memory store and the Redis store, with every Check waiting for Redis
// and with asynchronous Checks (one replica: its view is exactly Redis's
// answer; each op waits until what it queued was sent, so the ops reach
// Redis in replay order).
func TestBackendsAgree(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) { backendsAgree(t, newRedisMode(t, async)) })
	}
}

// newRedisMode is newRedis, with asynchronous Checks when async (views
// kept for a minute).
func newRedisMode(t *testing.T, async bool) *Redis {
	r, c, prefix := newRedis(t)
	if !async {
		return r
	}
	r, err := NewRedis(c, RedisOptions{Prefix: prefix, AsyncMaxAge: time.Minute, AsyncMaxClients: 100})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func backendsAgree(t *testing.T, r *Redis) {
	m := newMemory(t, DefaultMemoryOptions())
	ctx := context.Background()
	w := windows()
	w.MaxEndpoints, w.MaxTemplates = 6, 3 // small, to exercise eviction
	rng := mrand.New(mrand.NewPCG(1, 2))
	clients := []string{"192.0.2.1", "192.0.2.2", "2001:db8::/64"}
	at := t0
	// seen counts interesting answers, so the replay provably covers them.
	seen := map[string]int{}
	for step := range 3000 {
		// Mostly small steps, sometimes long silences (idle, state TTL).
		switch p := rng.IntN(100); {
		case p < 70:
			at = at.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
		case p < 95:
			at = at.Add(time.Duration(rng.IntN(30)) * time.Second)
		case p < 99:
			at = at.Add(time.Duration(10+rng.IntN(5)) * time.Minute)
		default:
			at = at.Add(time.Duration(60+rng.IntN(30)) * time.Minute)
		}
		client := clients[rng.IntN(len(clients))]
		switch op := rng.IntN(100); {
		case op < 70:
			obs := scoring.Observation{ClientKey: client, Now: at, Windows: w, Endpoint: uint64(rng.IntN(10))}
			if rng.IntN(2) == 0 {
				obs.HasID, obs.Template, obs.ID = true, uint64(rng.IntN(5)), int64(rng.IntN(8))
			}
			ms, rs := onBoth(t, m, r, func(s scoring.State) (scoring.ClientState, error) { return s.Check(ctx, obs) })
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(normBan(ms)) != fmt.Sprint(normBan(rs)) {
				t.Fatalf("step %d %+v:\nmemory %+v\nredis  %+v", step, obs, normBan(ms), normBan(rs))
			}
			for name, hit := range map[string]bool{"banned": ms.Ban != nil, "idle burst": ms.IdleBurst > 1,
				"sequence": ms.SequentialRun >= 3, "errors": ms.Errors > 0, "distinct": ms.DistinctEndpoints >= 5,
				"fresh": ms.Requests == 1 && step > 0, "rate": ms.RecentRequests >= 5} {
				if hit {
					seen[name]++
				}
			}
		case op < 95:
			// A batch as one ALS message brings: this client and others.
			rs := make([]scoring.ObservedResponse, 1+rng.IntN(4))
			for i := range rs {
				rs[i] = scoring.ObservedResponse{ClientKey: clients[rng.IntN(len(clients))], IsError: rng.IntN(3) == 0, At: at}
			}
			rs[0].ClientKey = client
			if err := m.ObserveResponses(ctx, rs, w); err != nil {
				t.Fatal(err)
			}
			if err := r.ObserveResponses(ctx, rs, w); err != nil {
				t.Fatal(err)
			}
		case op < 99:
			req := scoring.BanRequest{Reason: "behavior.score", Score: 9, Now: at, TTL: time.Duration(1+rng.IntN(3)) * time.Minute,
				Escalate: rng.IntN(4) != 0, Factor: 2, MaxTTL: 10 * time.Minute, OffenceMemory: 30 * time.Minute}
			mb, rb := onBoth(t, m, r, func(s scoring.State) (scoring.Ban, error) { return s.Ban(ctx, client, req) })
			if fmt.Sprint(mb) != fmt.Sprint(rb) {
				t.Fatalf("step %d ban:\nmemory %+v\nredis  %+v", step, mb, rb)
			}
		default:
			mu, ru := onBoth(t, m, r, func(s scoring.State) (bool, error) { return s.Unban(ctx, client, at) })
			if mu != ru {
				t.Fatalf("step %d unban: memory %v redis %v", step, mu, ru)
			}
		}
	}
	for _, name := range []string{"banned", "idle burst", "sequence", "errors", "distinct", "fresh", "rate"} {
		if seen[name] == 0 {
			t.Errorf("the replay never produced %q", name)
		}
	}
	if r.async != nil {
		// Most Checks must come from the view, or the replay compared
		// little but synchronous answers.
		if v := testutil.ToFloat64(r.async.answers.WithLabelValues("view")); v < 1000 {
			t.Errorf("%v Checks answered from the view, want most of ~2,100", v)
		}
	}
	t.Logf("answers seen: %v", seen)
}

// onBoth runs op on the memory store, then on the Redis store, and returns
// both answers; an error fails the test.
func onBoth[T any](t *testing.T, m, r scoring.State, op func(scoring.State) (T, error)) (memory, redis T) {
	t.Helper()
	memory, err := op(m)
	if err != nil {
		t.Fatal(err)
	}
	redis, err = op(r)
	if err != nil {
		t.Fatal(err)
	}
	return memory, redis
}

func normBan(s scoring.ClientState) any {
	if s.Ban == nil {
		return s
	}
	b := *s.Ban
	return b
}

func TestRedisKeys(t *testing.T) {
	r, c, prefix := newRedis(t)
	ctx := context.Background()
	obs := scoring.Observation{ClientKey: "2001:db8::/64", Now: t0, Windows: windows(), Endpoint: 7, HasID: true, Template: 3, ID: 1}
	if _, err := r.Check(ctx, obs); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ban(ctx, "2001:db8::/64", scoring.BanRequest{Reason: "x", Now: t0, TTL: time.Hour, Escalate: true, Factor: 2, MaxTTL: 2 * time.Hour, OffenceMemory: time.Hour}); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		prefix + "ban:{2001:db8::/64}":    true,
		prefix + "bh:{2001:db8::/64}:v2":  true,
		prefix + "bh:{2001:db8::/64}:off": true,
	}
	if len(keys) != len(want) {
		t.Fatalf("keys %v", keys)
	}
	for _, k := range keys {
		if !want[k] {
			t.Fatalf("unexpected key %s", k)
		}
		// Every key expires in real time, whatever the caller's clock says.
		if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Fatalf("PTTL %s = %v, %v", k, ttl, err)
		}
		if !strings.Contains(k, "{2001:db8::/64}") {
			t.Fatalf("key %s lacks the hash tag", k)
		}
	}
}

func TestClientSize(t *testing.T) {
	// 176 bytes holds a typical visitor inline (BenchmarkMemoryClients);
	// every byte more costs 1 MB per million clients.
	if got := unsafe.Sizeof(clientRec{}); got > 176 {
		t.Fatalf("client record is %d bytes, keep it at most 176", got)
	}
}

// TestMemoryRebase: a client active for longer than its relative clock
// holds keeps correct windows.
func TestMemoryRebase(t *testing.T) {
	m := newMemory(t, DefaultMemoryOptions())
	ctx := context.Background()
	w := windows()
	w.StateTTL = 365 * 24 * time.Hour
	w.Distinct = 30 * time.Minute
	at := t0
	// One request every 20 minutes for 60 days on two endpoints.
	for i := range 60 * 72 {
		obs := scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: uint64(i % 2)}
		st, err := m.Check(ctx, obs)
		if err != nil {
			t.Fatal(err)
		}
		if st.DistinctEndpoints != min(i+1, 2) || st.RecentRequests != 1 {
			t.Fatalf("request %d (day %d): %+v", i, i/72, st)
		}
		// Each endpoint rests 40 minutes: each return starts a burst.
		if i >= 2 && st.IdleBurst != 1 {
			t.Fatalf("request %d (day %d): idle burst %d", i, i/72, st.IdleBurst)
		}
		at = at.Add(20 * time.Minute)
	}
}

func TestMemoryTrackedClientsMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMemory(t, MemoryOptions{Registerer: reg, MaxClients: 2, Shards: 1})
	for i := range 3 {
		if _, err := m.Check(context.Background(), scoring.Observation{ClientKey: fmt.Sprint(i), Now: t0, Windows: windows()}); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]float64{"smartlayer_store_tracked_clients": 2, "smartlayer_store_client_evictions_total": 1} {
		if got := metricValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRedisObserveResponsesReloadsScripts: a Redis that lost its scripts
// (restart, SCRIPT FLUSH) still takes a pipelined batch of responses. Its
// own server: flushing the shared one would disturb other packages' tests.
func TestRedisObserveResponsesReloadsScripts(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = c.Close() })
	r, err := NewRedis(c, RedisOptions{Prefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := windows()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rs := []scoring.ObservedResponse{
		{ClientKey: "192.0.2.7", IsError: true, At: t0},
		{ClientKey: "192.0.2.7", IsError: false, At: t0},
		{ClientKey: "192.0.2.8", IsError: true, At: t0},
	}
	if err := r.ObserveResponses(ctx, rs, w); err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	st, err := r.Check(ctx, scoring.Observation{ClientKey: "192.0.2.7", Now: t0.Add(time.Second), Windows: w, Endpoint: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Errors != 1 || st.Responses != 2 {
		t.Fatalf("errors %d of %d responses, want 1 of 2", st.Errors, st.Responses)
	}
}

// A reload that changes the windows changes the check script (its
// settings are constants in its source): the first Check after it loads
// the new script (NOSCRIPT → EVAL), and both stores keep agreeing, for
// each configuration in turn.
func TestRedisCheckWindowsChange(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) { checkWindowsChange(t, newRedisMode(t, async)) })
	}
}

func checkWindowsChange(t *testing.T, r *Redis) {
	m := newMemory(t, DefaultMemoryOptions())
	ctx := context.Background()
	narrow := windows()
	narrow.MaxEndpoints, narrow.Distinct, narrow.Rate = 2, 5*time.Second, 2*time.Second
	configs := []struct {
		name string
		w    scoring.Windows
	}{{"defaults", windows()}, {"narrow", narrow}, {"defaults again", windows()}}
	at := t0
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			for i := range 12 {
				at = at.Add(700 * time.Millisecond)
				obs := scoring.Observation{ClientKey: "192.0.2.9", Now: at, Windows: c.w, Endpoint: uint64(i % 4),
					HasID: true, Template: 1, ID: int64(i)}
				ms, rs := onBoth(t, m, r, func(s scoring.State) (scoring.ClientState, error) { return s.Check(ctx, obs) })
				if err := r.Close(ctx); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(normBan(ms)) != fmt.Sprint(normBan(rs)) {
					t.Fatalf("check %d:\nmemory %+v\nredis  %+v", i, normBan(ms), normBan(rs))
				}
			}
			if got := checkScriptFor(c.w).Hash(); r.checkScript(c.w).Hash() != got {
				t.Fatalf("script in use is not the one of %s", c.name)
			}
		})
	}
	if checkScriptFor(narrow).Hash() == checkScriptFor(windows()).Hash() {
		t.Fatal("two configurations share one check script")
	}
}
