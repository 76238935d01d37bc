package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

func TestRedisClientTopology(t *testing.T) {
	for _, tc := range []struct {
		c    RedisConfig
		want Topology
		typ  string
	}{
		{RedisConfig{Addrs: []string{"a:1"}}, TopologySingle, "*redis.Client"},
		{RedisConfig{Addrs: []string{"a:1"}, Cluster: true}, TopologyCluster, "*redis.ClusterClient"},
		{RedisConfig{Addrs: []string{"a:1", "b:2"}}, TopologyCluster, "*redis.ClusterClient"},
		{RedisConfig{Addrs: []string{"a:1", "b:2", "c:3"}, MasterName: "m"}, TopologySentinel, "*redis.Client"},
		{RedisConfig{Addrs: []string{"a:1"}, MasterName: "m"}, TopologySentinel, "*redis.Client"},
	} {
		if got := tc.c.Topology(); got != tc.want {
			t.Errorf("%+v: topology %s, want %s", tc.c, got, tc.want)
		}
		c, err := NewRedisClient(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", c); got != tc.typ {
			t.Errorf("%+v: client %s, want %s", tc.c, got, tc.typ)
		}
		_ = c.Close()
	}
	if _, err := NewRedisClient(RedisConfig{Addrs: []string{"a:1"}, TLS: RedisTLSConfig{Enabled: true, CAFile: "/nonexistent"}}); err == nil {
		t.Error("a missing CA file: want an error")
	}
}

// On a Cluster, a script's keys that share a hash tag run together, and a
// pipeline spread over every node after one node lost its scripts resends
// only that node's calls: each counts exactly once.
func TestScriptsOnCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3)
	def := DefaultConfig().Redis
	def.Addrs, def.Timeout = rc.Addrs, time.Second
	c, err := NewRedisClient(def)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	two := NewScript(`redis.call('INCR', KEYS[1]); return redis.call('INCR', KEYS[2])`)
	if v, err := two.Run(ctx, c, []string{"t:" + HashTag("a") + ":x", "t:" + HashTag("a") + ":y"}).Int64(); err != nil || v != 1 {
		t.Fatalf("same hash tag: %v %v", v, err)
	}
	// The rule the hash tags exist for: keys of two slots in one script fail.
	if err := two.Run(ctx, c, []string{"t:{a}:x", "t:{b}:y"}).Err(); err == nil || !redis.HasErrorPrefix(err, "CROSSSLOT") {
		t.Fatalf("keys in two slots: %v, want CROSSSLOT", err)
	}

	incr := NewScript(`return redis.call('INCR', KEYS[1])`)
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = "t:" + HashTag(fmt.Sprint("client-", i)) + ":n"
	}
	run := func() {
		t.Helper()
		err := RunPipelined(ctx, c, func(p redis.Pipeliner) error {
			for _, k := range keys {
				incr.EvalSha(ctx, p, []string{k})
			}
			return nil
		}, incr)
		if err != nil {
			t.Fatal(err)
		}
	}
	run() // every node: NOSCRIPT, then EVAL
	nodes := map[string]bool{}
	for _, k := range keys {
		m, err := c.(*redis.ClusterClient).MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		nodes[m.Options().Addr] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("keys on %d nodes, want 3", len(nodes))
	}
	one := redis.NewClient(&redis.Options{Addr: rc.Addrs[0]})
	defer one.Close()
	if err := one.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	run() // node 0: NOSCRIPT, the others ran
	for _, k := range keys {
		if v, err := c.Get(ctx, k).Int64(); err != nil || v != 2 {
			t.Fatalf("%s = %d (%v), want 2: a pipelined script ran twice or not at all", k, v, err)
		}
	}
}
