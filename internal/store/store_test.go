package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

func TestLRUEvictsLowestClassLeastRecentFirst(t *testing.T) {
	l := NewLRU[string, int](3, 1, 2)
	s := l.Shard(0)
	s.Lock()
	defer s.Unlock()
	a, _ := s.Insert("a", 1)
	b, _ := s.Insert("b", 0)
	s.Insert("c", 0)
	s.Touch(b, 0) // c is now the coldest of class 0
	if _, ev := s.Insert("d", 0); ev == nil || ev.Key != "c" || ev.Class != 0 {
		t.Fatalf("evicted %+v, want c of class 0", ev)
	}
	s.Touch(s.Get("b"), 1) // b moves to class 1, ahead of a
	s.Touch(s.Get("d"), 1)
	if _, ev := s.Insert("e", 0); ev == nil || ev.Key != "a" || ev.Class != 1 {
		t.Fatalf("evicted %+v, want a of class 1 (class 0 empty)", ev)
	}
	if s.Get("a") != nil || a.Key != "a" || s.Len() != 3 || s.Coldest(1).Key != "b" {
		t.Fatalf("len %d coldest %v", s.Len(), s.Coldest(1))
	}
	s.Remove(s.Get("b"))
	if s.Coldest(1).Key != "d" || s.Len() != 2 {
		t.Fatal("remove")
	}
}

func TestLRUShardsHoldAtLeastMax(t *testing.T) {
	l := NewLRU[int, struct{}](10, 4, 1)
	total := 0
	for i := range l.Shards() {
		total += l.ShardAt(i).Cap()
	}
	if l.Shards() != 4 || total < 10 {
		t.Fatalf("%d shards hold %d", l.Shards(), total)
	}
	if l := NewLRU[int, struct{}](2, 64, 1); l.Shards() != 2 {
		t.Fatalf("%d shards for 2 entries", l.Shards())
	}
}

func TestEscapeKey(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"plain": {"user-42", "user-42"},
		"ipv6":  {"2001:db8::/64", "2001:db8::/64"},
		"brace": {"a}b{c", "a%7Db%7Bc"},
		"pct":   {"100%", "100%25"},
		"esc":   {"%7B", "%257B"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := EscapeKey(tc.in); got != tc.want {
				t.Errorf("EscapeKey(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := UnescapeKey(EscapeKey(tc.in)); got != tc.in {
				t.Errorf("UnescapeKey(EscapeKey(%q)) = %q", tc.in, got)
			}
		})
	}
}

// A Redis that lost its scripts runs them again: Run falls back to EVAL,
// RunPipelined loads and resends.
func TestScriptNoScriptReload(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	s := NewScript(`return redis.call('INCR', KEYS[1])`)
	for i := range 2 {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Run(ctx, c, []string{"k"}).Int64(); err != nil || v != int64(i+1) {
			t.Fatalf("run %d: %v %v", i, v, err)
		}
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var cmds []*redis.Cmd
	err := RunPipelined(ctx, c, func(p redis.Pipeliner) error {
		cmds = []*redis.Cmd{s.EvalSha(ctx, p, []string{"k"}), s.EvalSha(ctx, p, []string{"k"})}
		return nil
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := cmds[1].Int64(); v != 4 {
		t.Fatalf("pipelined after flush: %d, want 4", v)
	}
}

// The request-path settings: each bad value is named by its key; the
// defaults and the documented special values load.
func TestValidateRequestPathSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*RedisConfig)
		bad  string // the key named, "" for valid
	}{
		{"defaults", func(*RedisConfig) {}, ""},
		{"fixed timeout (timeout_max 0)", func(r *RedisConfig) { r.TimeoutMax = 0 }, ""},
		{"timeout_max below a raised timeout keeps it fixed", func(r *RedisConfig) { r.Timeout = time.Second }, ""},
		{"cache off", func(r *RedisConfig) { r.LocalCacheTTL = 0 }, ""},
		{"timeout_max 1ns", func(r *RedisConfig) { r.TimeoutMax = 1 }, "store.redis.timeout_max"},
		{"factor below 1", func(r *RedisConfig) { r.TimeoutFactor = 0.5 }, "store.redis.timeout_factor"},
		{"no pipeline in flight", func(r *RedisConfig) { r.BatchMaxInFlight = 0 }, "store.redis.batch_max_in_flight"},
		{"negative cache ttl", func(r *RedisConfig) { r.LocalCacheTTL = -time.Second }, "store.redis.local_cache_ttl"},
		{"cache ttl over a minute", func(r *RedisConfig) { r.LocalCacheTTL = time.Hour }, "store.redis.local_cache_ttl"},
		{"empty cache", func(r *RedisConfig) { r.LocalCacheSize = 0 }, "store.redis.local_cache_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.set(&c.Redis)
			err := c.Validate()
			if tc.bad == "" && err != nil {
				t.Fatalf("valid config rejected: %v", err)
			}
			if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("error %v, want one naming %s", err, tc.bad)
			}
		})
	}
}
