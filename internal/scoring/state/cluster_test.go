package state

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/store"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// Every operation of the Redis state on a 3-master Cluster, for clients
// whose keys land on every node (and whose names hold hash-tag braces): no
// script touches two slots (CROSSSLOT), the ban list scans every master,
// and the decision record's pipelines are split by node.
func TestRedisStateOnCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3)
	cfg := store.DefaultConfig().Redis
	cfg.Addrs, cfg.Timeout = rc.Addrs, time.Second
	c, err := store.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// Each script alone, batched (the Batcher's pipelines split by node),
	// and with asynchronous Checks (their pipelines split by node too).
	for _, mode := range []string{"alone", "batch", "async"} {
		t.Run(mode, func(t *testing.T) {
			opts := RedisOptions{Prefix: "c:"}
			if mode != "alone" {
				b, err := store.NewBatcher(c, store.NewAdaptiveTimeout(time.Second, 0, 3), 2, nil)
				if err != nil {
					t.Fatal(err)
				}
				opts = RedisOptions{Prefix: "c" + mode + ":", Scripts: b, LocalCacheTTL: time.Second, LocalCacheSize: 100}
			}
			if mode == "async" {
				opts.AsyncMaxAge, opts.AsyncMaxClients = time.Minute, 100
			}
			redisStateOnCluster(t, c, opts)
		})
	}
}

func redisStateOnCluster(t *testing.T, c redis.UniversalClient, opts RedisOptions) {
	r, err := NewRedis(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	clients := []string{"{evil}", "a}b{c", "%7B"}
	for i := range 30 {
		clients = append(clients, fmt.Sprintf("10.0.%d.%d", i/250, i%250))
	}
	var obs []scoring.ObservedResponse
	for i, cl := range clients {
		st, err := r.Check(ctx, scoring.Observation{ClientKey: cl, Now: now, Endpoint: uint64(i), Windows: windows(),
			HasID: true, Template: 7, ID: int64(i)})
		if err != nil || st.Requests != 1 {
			t.Fatalf("check %q: %+v %v", cl, st, err)
		}
		obs = append(obs, scoring.ObservedResponse{ClientKey: cl, IsError: true, At: now})
	}
	if err := r.ObserveResponses(ctx, obs, windows()); err != nil {
		t.Fatal(err)
	}
	for _, cl := range clients {
		st, err := r.Check(ctx, scoring.Observation{ClientKey: cl, Now: now.Add(time.Millisecond), Windows: windows()})
		if err != nil || st.Requests != 2 || st.Errors != 1 {
			t.Fatalf("check %q after observe: %+v %v", cl, st, err)
		}
	}
	if r.async != nil {
		// The observations sent behind the Checks reached every node.
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n := testutil.ToFloat64(r.async.sendErrors); n != 0 {
			t.Fatalf("%v observations not sent", n)
		}
		for _, cl := range clients {
			r.async.drop(cl)
			st, err := r.Check(ctx, scoring.Observation{ClientKey: cl, Now: now.Add(2 * time.Millisecond), Windows: windows()})
			if err != nil || st.Requests != 3 || st.Errors != 1 {
				t.Fatalf("check %q waiting for Redis: %+v %v, want 3 requests", cl, st, err)
			}
		}
	}
	for _, cl := range clients {
		if _, err := r.Ban(ctx, cl, scoring.BanRequest{Reason: "t", Now: now, TTL: time.Hour, Escalate: true,
			Factor: 2, MaxTTL: 4 * time.Hour, OffenceMemory: time.Hour}); err != nil {
			t.Fatalf("ban %q: %v", cl, err)
		}
	}
	bans, err := r.Bans(ctx, now, 1000)
	if err != nil || len(bans) != len(clients) {
		t.Fatalf("bans: %d (%v), want %d", len(bans), err, len(clients))
	}
	for _, cl := range clients {
		if was, err := r.Unban(ctx, cl, now); err != nil || !was {
			t.Fatalf("unban %q: %v %v", cl, was, err)
		}
	}

	d, err := NewRedisDecisions(c, RedisOptions{Prefix: opts.Prefix}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A fixed generation: its keys, so the masters they land on, are the
	// same every run.
	d.now = func() time.Time { return time.UnixMilli(29_000_000 * time.Minute.Milliseconds()) }
	var ds []scoring.Decided
	var ids []string
	for i, cl := range clients {
		id := fmt.Sprintf("req-%d}{", i)
		ds, ids = append(ds, scoring.Decided{RequestID: id, Client: cl}), append(ids, id)
	}
	if err := d.Remember(ctx, ds, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := d.Clients(ctx, append(ids, "unknown"))
	if err != nil {
		t.Fatal(err)
	}
	for i, cl := range clients {
		if got[i] != cl {
			t.Fatalf("decision %s: %q, want %q", ids[i], got[i], cl)
		}
	}
	if got[len(clients)] != "" {
		t.Fatalf("unknown id: %q", got[len(clients)])
	}
	// The generation's shards spread over the masters.
	var holding atomic.Int32
	err = c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, opts.Prefix+"rid:*").Result()
		if len(keys) > 0 {
			holding.Add(1)
		}
		return err
	})
	if err != nil || holding.Load() < 2 {
		t.Fatalf("decision keys on %d masters (%v), want them spread", holding.Load(), err)
	}
}
