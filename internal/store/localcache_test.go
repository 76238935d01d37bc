package store

import (
	"testing"
	"time"
)

func TestLocalCache(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const ttl = time.Second
	type step struct {
		op      string // put, get, del
		key     string
		at      time.Duration // after t0
		expires time.Duration // put: the value's own end, after t0
		val     int
		want    int // get: 0 = miss
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"kept until the TTL", []step{
			{op: "put", key: "a", expires: time.Hour, val: 1},
			{op: "get", key: "a", at: ttl - time.Millisecond, want: 1},
			{op: "get", key: "a", at: ttl, want: 0},
		}},
		{"kept until its own end when sooner", []step{
			{op: "put", key: "a", expires: 300 * time.Millisecond, val: 1},
			{op: "get", key: "a", at: 299 * time.Millisecond, want: 1},
			{op: "get", key: "a", at: 300 * time.Millisecond, want: 0},
		}},
		{"delete forgets at once", []step{
			{op: "put", key: "a", expires: time.Hour, val: 1},
			{op: "del", key: "a"},
			{op: "get", key: "a", want: 0},
		}},
		{"a put already over removes", []step{
			{op: "put", key: "a", expires: time.Hour, val: 1},
			{op: "put", key: "a", at: 10 * time.Millisecond, expires: 5 * time.Millisecond, val: 2},
			{op: "get", key: "a", at: 10 * time.Millisecond, want: 0},
		}},
		{"a put renews and replaces", []step{
			{op: "put", key: "a", expires: time.Hour, val: 1},
			{op: "put", key: "a", at: 800 * time.Millisecond, expires: time.Hour, val: 2},
			{op: "get", key: "a", at: 1500 * time.Millisecond, want: 2},
			{op: "get", key: "b", at: 1500 * time.Millisecond, want: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewLocalCache[int](ttl, 100)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "put":
					c.Put(s.key, s.val, now, t0.Add(s.expires))
				case "del":
					c.Delete(s.key)
				case "get":
					v, ok := c.Get(s.key, now)
					if (s.want != 0) != ok || v != s.want {
						t.Fatalf("step %d: Get(%s) = %d %v, want %d", i, s.key, v, ok, s.want)
					}
				}
			}
		})
	}
}

// A nil cache (local_cache_ttl 0) keeps nothing; a full one evicts.
func TestLocalCacheOffAndBounded(t *testing.T) {
	now := time.Now()
	var off *LocalCache[int]
	if c := NewLocalCache[int](0, 10); c != nil {
		t.Fatal("ttl 0 built a cache")
	}
	off.Put("a", 1, now, now.Add(time.Hour))
	off.Delete("a")
	if _, ok := off.Get("a", now); ok {
		t.Fatal("nil cache answered")
	}
	c := NewLocalCache[int](time.Minute, 1)
	c.Put("a", 1, now, now.Add(time.Hour))
	c.Put("b", 2, now, now.Add(time.Hour))
	if c.lru.Len() != 1 || c.n.Load() != 1 {
		t.Fatalf("len %d, count %d, want 1", c.lru.Len(), c.n.Load())
	}
	if v, ok := c.Get("b", now); !ok || v != 2 {
		t.Fatalf("newest entry: %d %v", v, ok)
	}
}
