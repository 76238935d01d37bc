package quota

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/store"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// On a 3-master Cluster, two limiters share every window and the lifetime
// counter of subjects spread over all nodes (braces in a subject stay out
// of the hash tag): one script per Take, every key in the subject's slot.
// One limiter sends through a Batcher with the local cache, as authz does
// by default.
func TestTwoLimitersShareRedisCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3)
	tab := mustCompile(t, plans{"free": {"/api/generate/": {"per_minute": 3, "per_hour": 10, "per_day": 20, "lifetime": 4}}})
	var ls [2]*Limiter
	for i := range ls {
		cfg := store.DefaultConfig().Redis
		cfg.Addrs = rc.Addrs
		c, err := store.NewRedisClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		var sc RedisClient = c
		qc := DefaultConfig()
		if i == 1 {
			if sc, err = store.NewBatcher(c, store.NewAdaptiveTimeout(time.Second, 0, 3), 2, nil); err != nil {
				t.Fatal(err)
			}
			qc.LocalCacheTTL, qc.LocalCacheSize = time.Second, 100
		}
		if ls[i], err = NewRedis(sc, tab, qc); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for s := range 12 {
		k := Key{Subject: uniq(t, fmt.Sprint("user{", s, "}")), Plan: "free", Path: "/api/generate/"}
		var got []Decision
		for i := range 5 {
			// Three in the first minute; two minutes on, the lifetime (4) is left.
			at := base.Add([]time.Duration{0, 20 * time.Second, 40 * time.Second, 2 * time.Minute, 2*time.Minute + time.Second}[i])
			res, err := ls[i%2].Take(ctx, k, at)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, res.Decision)
		}
		want := []Decision{Allowed, Allowed, Allowed, Allowed, Denied}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %v, want %v", k.Subject, got, want)
		}
	}
}
