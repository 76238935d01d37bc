package quota

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartlayer/smartlayer/internal/store"
)

func TestMemoryConfigErrors(t *testing.T) {
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"no keys":   {Config{Memory: MemoryConfig{MaxKeys: 0, Shards: 1}}, "quota.memory.max_keys: must be ≥ 1 (got 0)"},
		"no shards": {Config{Memory: MemoryConfig{MaxKeys: 1, Shards: 0}}, "quota.memory.shards: must be in 1..4096 (got 0)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewMemory(nil, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewMemory error %v, want %q", err, tc.want)
			}
		})
	}
}

// The memory backend stays within MaxKeys, evicting the least recently used
// key, and counts evictions.
func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := NewMemory(mustCompile(t, plans{"free": {"/a": {"lifetime": 1}}}), Config{Memory: MemoryConfig{MaxKeys: 3, Shards: 1}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	take := func(subject string) Decision {
		res, err := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: "/a"}, base)
		if err != nil {
			t.Fatal(err)
		}
		return res.Decision
	}
	for _, s := range []string{"u1", "u2", "u3"} {
		take(s)
	}
	if take("u1") != Denied { // u1 is now the most recently used
		t.Fatal("u1 not counted")
	}
	take("u4") // evicts u2
	if got := l.backend.(*memBackend).lru.ShardAt(0).Len(); got != 3 {
		t.Errorf("%d keys kept, want 3", got)
	}
	if take("u2") != Allowed {
		t.Error("u2 survived eviction") // its lifetime count was lost: documented
	}
	if take("u1") != Denied {
		t.Error("u1 was evicted although recently used")
	}
	if got := testutil.ToFloat64(l.m.evictions[classLife]); got != 2 {
		t.Errorf("lifetime evictions = %v, want 2", got)
	}
}

// Keys without a lifetime count leave once their longest window has
// forgotten them, without a sweeper goroutine.
func TestMemoryExpiresIdleKeys(t *testing.T) {
	l, err := NewMemory(mustCompile(t, plans{"free": {"/a": {"per_minute": 5}, "/b": {"lifetime": 5}}}), Config{Memory: MemoryConfig{MaxKeys: 100, Shards: 1}})
	if err != nil {
		t.Fatal(err)
	}
	shard := l.backend.(*memBackend).lru.ShardAt(0)
	for i := range 10 {
		path := "/a"
		if i%5 == 0 {
			path = "/b"
		}
		_, _ = l.Take(context.Background(), Key{Subject: "idle" + strconv.Itoa(i), Plan: "free", Path: path}, base)
	}
	if shard.Len() != 10 {
		t.Fatalf("%d keys, want 10", shard.Len())
	}
	// Two minutes later the per_minute keys are empty: each Take drops up to
	// two of them from the cold end; lifetime keys stay.
	for i := range 10 {
		_, _ = l.Take(context.Background(), Key{Subject: "late" + strconv.Itoa(i), Plan: "free", Path: "/a"}, base.Add(2*time.Minute))
	}
	var lifetime, idle int
	for k := range keys(shard) {
		switch {
		case strings.HasPrefix(k.subject, "idle") && strings.Contains(k.part, "/b"):
			lifetime++
		case strings.HasPrefix(k.subject, "idle"):
			idle++
		}
	}
	if lifetime != 2 || idle != 0 {
		t.Errorf("after expiry: %d lifetime keys (want 2), %d idle per_minute keys (want 0)", lifetime, idle)
	}
}

// Both backends, one registry: decisions are counted by result and window.
func TestDecisionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Registerer = reg
	l, err := NewMemory(mustCompile(t, plans{"free": {"/a": {"per_minute": 1}}, "pro": {"/b": {"per_minute": 1}}}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A second Limiter on the same registry shares the series.
	l2, err := NewMemory(l.Table(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{
		{"m", "free", "/a"}, {"m", "free", "/a"}, {"m", "free", "/b"}, {"m", "free", "/c"},
	} {
		_, _ = l.Take(context.Background(), k, base)
	}
	_, _ = l2.Take(context.Background(), Key{"m", "free", "/b"}, base)
	want := `
# HELP smartlayer_quota_decisions_total Quota decisions by result (allowed, denied, forbidden, no_route) and denying window (none unless denied).
# TYPE smartlayer_quota_decisions_total counter
smartlayer_quota_decisions_total{result="allowed",window="none"} 1
smartlayer_quota_decisions_total{result="denied",window="lifetime"} 0
smartlayer_quota_decisions_total{result="denied",window="per_day"} 0
smartlayer_quota_decisions_total{result="denied",window="per_hour"} 0
smartlayer_quota_decisions_total{result="denied",window="per_minute"} 1
smartlayer_quota_decisions_total{result="forbidden",window="none"} 2
smartlayer_quota_decisions_total{result="no_route",window="none"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "smartlayer_quota_decisions_total"); err != nil {
		t.Error(err)
	}
}

// Under pressure a key without lifetime count goes before an older lifetime
// key: losing a minute's count costs less than losing a lifetime's.
func TestMemoryEvictsTimedKeysFirst(t *testing.T) {
	l, err := NewMemory(mustCompile(t, plans{"free": {"/life": {"lifetime": 1}, "/minute": {"per_day": 1}}}), Config{Memory: MemoryConfig{MaxKeys: 2, Shards: 1}})
	if err != nil {
		t.Fatal(err)
	}
	take := func(subject, path string) Decision {
		res, _ := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: path}, base)
		return res.Decision
	}
	take("old", "/life")
	take("newer", "/minute")
	take("third", "/minute") // evicts "newer", not the older "old"
	if take("old", "/life") != Denied {
		t.Error("the lifetime key was evicted before a timed one")
	}
	if take("newer", "/minute") != Allowed {
		t.Error("the timed key was not evicted")
	}
}

func keys(s *store.LRUShard[memKey, memEntry]) map[memKey]bool {
	out := map[memKey]bool{}
	s.Each(func(e *store.Entry[memKey, memEntry]) bool { out[e.Key] = true; return true })
	return out
}

// Evictions are never silent: counted by kind, and a lost lifetime count
// is logged, at most once a minute with the number lost since.
func TestMemoryEvictionsCountedAndLogged(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	cfg := Config{Memory: MemoryConfig{MaxKeys: 2, Shards: 1}, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	l, err := NewMemory(mustCompile(t, plans{"free": {"/life": {"lifetime": 5}, "/day": {"per_day": 5}}}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	take := func(subject, path string) {
		if _, err := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: path}, base); err != nil {
			t.Fatal(err)
		}
	}
	take("a", "/day")
	take("b", "/day")
	take("c", "/day")  // evicts a's window counter
	take("d", "/life") // evicts b's
	take("e", "/life") // evicts c's
	take("f", "/life") // evicts d's lifetime count: logged
	take("g", "/life") // evicts e's: counted, not logged again this minute
	want := `
# HELP smartlayer_quota_evictions_total Memory-backend counters evicted to stay within quota.memory.max_keys, by kind: window (per_minute/hour/day buckets) or lifetime (a lifetime count lost: use Redis with persistence).
# TYPE smartlayer_quota_evictions_total counter
smartlayer_quota_evictions_total{kind="lifetime"} 2
smartlayer_quota_evictions_total{kind="window"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "smartlayer_quota_evictions_total"); err != nil {
		t.Error(err)
	}
	if n := strings.Count(logs.String(), "lifetime counts evicted"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "evicted=1") || !strings.Contains(logs.String(), "last_subject=d") {
		t.Errorf("warning lacks the count or subject:\n%s", logs.String())
	}
}
