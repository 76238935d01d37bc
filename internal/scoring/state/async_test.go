package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

func TestCombine(t *testing.T) {
	st := func(req int64, recent, resp, errs, distinct, run, burst int) scoring.ClientState {
		return scoring.ClientState{Requests: req, RecentRequests: recent, Responses: resp, Errors: errs,
			DistinctEndpoints: distinct, SequentialRun: run, IdleBurst: burst}
	}
	obs := scoring.Observation{Endpoint: 7, Template: 3, HasID: true}
	tests := map[string]struct {
		v    view
		obs  scoring.Observation
		cur  scoring.ClientState
		want scoring.ClientState
	}{
		"one replica: global is local": {
			v:   view{global: st(5, 5, 2, 1, 3, 2, 0), localAt: st(5, 5, 2, 1, 3, 2, 0), endpoint: 7, template: 3},
			obs: obs, cur: st(7, 7, 2, 1, 3, 4, 0), want: st(7, 7, 2, 1, 3, 4, 0),
		},
		"others' requests add": {
			v:   view{global: st(20, 12, 6, 3, 5, 0, 0), localAt: st(4, 4, 2, 1, 2, 0, 0), endpoint: 9, template: 1},
			obs: scoring.Observation{Endpoint: 7}, cur: st(6, 6, 2, 1, 3, 0, 0), want: st(22, 14, 6, 3, 5, 0, 0),
		},
		"an endpoint new here, not to others": {
			v:   view{global: st(20, 12, 0, 0, 2, 0, 0), localAt: st(4, 4, 0, 0, 1, 0, 0)},
			obs: scoring.Observation{}, cur: st(5, 5, 0, 0, 3, 0, 0), want: st(21, 13, 0, 0, 3, 0, 0),
		},
		"a window that slid lowers the count": {
			v:   view{global: st(20, 12, 0, 0, 1, 0, 0), localAt: st(10, 10, 0, 0, 1, 0, 0)},
			obs: scoring.Observation{}, cur: st(11, 3, 0, 0, 0, 0, 0), want: st(21, 5, 0, 0, 0, 0, 0),
		},
		"never below zero": {
			v:   view{global: st(1, 1, 0, 0, 1, 0, 0), localAt: st(9, 9, 4, 4, 4, 0, 0)},
			obs: scoring.Observation{}, cur: st(1, 1, 0, 0, 1, 0, 0), want: st(0, 0, 0, 0, 0, 0, 0),
		},
		"run continued on the same template": {
			v:   view{global: st(9, 9, 0, 0, 1, 6, 0), localAt: st(3, 3, 0, 0, 1, 2, 0), endpoint: 7, template: 3},
			obs: obs, cur: st(5, 5, 0, 0, 1, 4, 0), want: st(11, 11, 0, 0, 1, 8, 0),
		},
		"run broken here is this replica's": {
			v:   view{global: st(9, 9, 0, 0, 1, 6, 0), localAt: st(3, 3, 0, 0, 1, 2, 0), endpoint: 7, template: 3},
			obs: obs, cur: st(4, 4, 0, 0, 1, 1, 0), want: st(10, 10, 0, 0, 1, 1, 0),
		},
		"another template's run": {
			v:   view{global: st(9, 9, 0, 0, 1, 6, 0), localAt: st(3, 3, 0, 0, 1, 2, 0), endpoint: 7, template: 4},
			obs: obs, cur: st(4, 4, 0, 0, 1, 3, 0), want: st(10, 10, 0, 0, 1, 3, 0),
		},
		"burst continued on the same endpoint": {
			v:   view{global: st(9, 9, 0, 0, 1, 0, 5), localAt: st(3, 3, 0, 0, 1, 0, 2), endpoint: 7},
			obs: scoring.Observation{Endpoint: 7}, cur: st(4, 4, 0, 0, 1, 0, 3), want: st(10, 10, 0, 0, 1, 0, 6),
		},
		"a burst that starts here": {
			v:   view{global: st(9, 9, 0, 0, 1, 0, 5), localAt: st(3, 3, 0, 0, 1, 0, 0), endpoint: 7},
			obs: scoring.Observation{Endpoint: 7}, cur: st(4, 4, 0, 0, 1, 0, 1), want: st(10, 10, 0, 0, 1, 0, 1),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := combine(tc.v, tc.obs, tc.cur); got != tc.want {
				t.Errorf("combine:\n got  %+v\n want %+v", got, tc.want)
			}
		})
	}
}

// asyncReplicas returns n Redis stores with asynchronous Checks sharing one
// Redis and key prefix, as n authz replicas do.
func asyncReplicas(t *testing.T, n int, maxAge time.Duration) ([]*Redis, redis.UniversalClient) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = c.Close() })
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	prefix := "as" + hex.EncodeToString(rb[:]) + ":"
	out := make([]*Redis, n)
	for i := range out {
		r, err := NewRedis(c, RedisOptions{Prefix: prefix, AsyncMaxAge: maxAge, AsyncMaxClients: 100,
			Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out, c
}

func drained(t *testing.T, rs ...*Redis) {
	t.Helper()
	for _, r := range rs {
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// Two replicas take one client's requests in a random order. A replica's
// view counts every request up to its own last answered one, plus its own
// since: it misses exactly the other replica's requests after its last one
// (here each op's observation reached Redis before the next op).
func TestAsyncReplicasLag(t *testing.T) {
	rs, _ := asyncReplicas(t, 2, time.Minute)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(3, 4))
	w := windows()
	at := t0
	total := 0
	last := [2]int{-1, -1} // total after each replica's last request
	views := 0
	for i := range 200 {
		k := rng.IntN(2)
		obs := scoring.Observation{ClientKey: "198.51.100.7", Now: at, Windows: w, Endpoint: uint64(i % 3)}
		st, err := rs[k].Check(ctx, obs)
		if err != nil {
			t.Fatal(err)
		}
		drained(t, rs[k])
		total++
		// The requests between this replica's last one and this one were
		// the other's, and came after this replica's last answer.
		missed := 0
		if last[k] >= 0 {
			missed = total - 1 - last[k]
			views++
		}
		if st.RecentRequests != total-missed {
			t.Fatalf("request %d on replica %d: RecentRequests %d, want %d (%d in all, %d missed)", i, k, st.RecentRequests, total-missed, total, missed)
		}
		if st.DistinctEndpoints < 1 || st.DistinctEndpoints > 3 {
			t.Fatalf("request %d: DistinctEndpoints %d, want 1..3", i, st.DistinctEndpoints)
		}
		last[k] = total
	}
	if views < 150 {
		t.Fatalf("%d Checks came from a view, want most", views)
	}
	// The lag is only that: once both waited for Redis, either sees all.
	drained(t, rs...)
	for k, r := range rs {
		r.async.drop("198.51.100.7")
		st, err := r.Check(ctx, scoring.Observation{ClientKey: "198.51.100.7", Now: at, Windows: w})
		if err != nil {
			t.Fatal(err)
		}
		if st.RecentRequests != total+k+1 {
			t.Fatalf("replica %d after waiting for Redis: RecentRequests %d, want %d", k, st.RecentRequests, total+k+1)
		}
	}
}

// A ban set through another replica: a client this replica has no fresh
// view of waits for Redis and is refused at once; a client it has a view
// of gets one more request through (the round trip's lag), whose answer
// brings the ban. An unban through a replica starts the client afresh
// there. The ban cache is off (LocalCacheTTL 0): the view alone must not
// let a banned client through.
func TestAsyncBanFromAnotherReplica(t *testing.T) {
	rs, _ := asyncReplicas(t, 2, time.Minute)
	a, b := rs[0], rs[1]
	ctx := context.Background()
	check := func(r *Redis, client string) scoring.ClientState {
		t.Helper()
		st, err := r.Check(ctx, scoring.Observation{ClientKey: client, Now: t0, Windows: windows()})
		if err != nil {
			t.Fatal(err)
		}
		drained(t, r)
		return st
	}
	ban := func(r *Redis, client string) {
		t.Helper()
		if _, err := r.Ban(ctx, client, scoring.BanRequest{Reason: "t", Score: 9, Now: t0, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	// Unknown to a: refused on first contact.
	ban(b, "203.0.113.1")
	if st := check(a, "203.0.113.1"); st.Ban == nil {
		t.Fatal("first contact after a ban elsewhere was let through")
	}
	// Known to a: one request of lag, then refused.
	for range 3 {
		if st := check(a, "203.0.113.2"); st.Ban != nil {
			t.Fatal("banned before any ban")
		}
	}
	ban(b, "203.0.113.2")
	if st := check(a, "203.0.113.2"); st.Ban != nil {
		t.Fatal("the view's request was refused: was it answered by Redis?")
	}
	for i := range 3 {
		if st := check(a, "203.0.113.2"); st.Ban == nil {
			t.Fatalf("request %d after the answer that carried the ban was let through", i)
		}
	}
	// The replica that banned refuses at once.
	if st := check(b, "203.0.113.2"); st.Ban == nil {
		t.Fatal("the banning replica let its client through")
	}
	// Unban through a: a fresh start there, and not banned on b either.
	if _, err := a.Unban(ctx, "203.0.113.2", t0); err != nil {
		t.Fatal(err)
	}
	if st := check(a, "203.0.113.2"); st.Ban != nil || st.Requests != 1 {
		t.Fatalf("after unban: %+v, want a fresh client", st)
	}
	if st := check(b, "203.0.113.2"); st.Ban != nil || st.Requests != 2 {
		t.Fatalf("after unban, other replica: %+v, want 2 requests", st)
	}
}

// Redis stops answering: what the views' sends could not deliver is
// counted, and once a view is older than the max age the client's Checks
// wait for Redis — and fail (the fail mode answers), instead of being
// answered from an old view for ever.
func TestAsyncRedisGone(t *testing.T) {
	const maxAge = 200 * time.Millisecond
	rs, c := asyncReplicas(t, 1, maxAge)
	r := rs[0]
	ctx := context.Background()
	obs := scoring.Observation{ClientKey: "192.0.2.9", Now: t0, Windows: windows()}
	for range 3 {
		if _, err := r.Check(ctx, obs); err != nil {
			t.Fatal(err)
		}
	}
	drained(t, r)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Within the max age: answered from the view, the send fails.
	st, err := r.Check(ctx, obs)
	if err != nil || st.RecentRequests != 4 {
		t.Fatalf("within max age: %+v, %v; want the view's 4 requests", st, err)
	}
	drained(t, r)
	if n := testutil.ToFloat64(r.async.sendErrors); n != 1 {
		t.Fatalf("send errors %v, want 1", n)
	}
	time.Sleep(maxAge + 50*time.Millisecond)
	if _, err := r.Check(ctx, obs); err == nil {
		t.Fatal("a view older than the max age answered with Redis gone")
	}
	if n := testutil.ToFloat64(r.async.answers.WithLabelValues("redis")); n != 2 {
		t.Fatalf("%v Checks waited for Redis, want 2 (first contact, aged view)", n)
	}
}

// A client whose windows on this replica started afresh since its view
// (quiet past the state TTL by the request clock, or evicted) is not
// answered from the view: its change since is unknown, so the Check waits
// for Redis.
func TestAsyncLocalWindowsReset(t *testing.T) {
	rs, _ := asyncReplicas(t, 1, time.Minute)
	r := rs[0]
	ctx := context.Background()
	w := windows()
	at := t0
	for i, want := range []string{"redis", "view", "view"} {
		before := testutil.ToFloat64(r.async.answers.WithLabelValues(want))
		if _, err := r.Check(ctx, scoring.Observation{ClientKey: "192.0.2.44", Now: at, Windows: w}); err != nil {
			t.Fatal(err)
		}
		drained(t, r)
		if testutil.ToFloat64(r.async.answers.WithLabelValues(want)) != before+1 {
			t.Fatalf("check %d was not answered by %s", i, want)
		}
		at = at.Add(time.Second)
	}
	at = at.Add(w.StateTTL)
	before := testutil.ToFloat64(r.async.answers.WithLabelValues("redis"))
	st, err := r.Check(ctx, scoring.Observation{ClientKey: "192.0.2.44", Now: at, Windows: w})
	if err != nil {
		t.Fatal(err)
	}
	if testutil.ToFloat64(r.async.answers.WithLabelValues("redis")) != before+1 || st.Requests != 1 {
		t.Fatalf("after the state TTL: %+v, answered from the view; want Redis's fresh state", st)
	}
}
