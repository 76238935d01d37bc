package store

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// LocalCache holds answers a replica may give without asking Redis for a
// short while: an active ban, an exhausted quota window (the local cache
// of envoyproxy/ratelimit). An entry lives until the earlier of what it
// says (the ban's expiry, the window's end) and ttl after it was learnt,
// so what changes in Redis behind its back (an unban on another replica)
// is seen within ttl. Times are the caller's clock. A nil *LocalCache is
// an empty cache that keeps nothing (store.redis.local_cache_ttl 0).
type LocalCache[V any] struct {
	ttl  time.Duration
	seed maphash.Seed
	lru  *LRU[string, cached[V]]
	// n counts entries, so the common case (nothing cached: no client
	// banned) is one atomic load, not a shard lock.
	n atomic.Int64
}

type cached[V any] struct {
	v     V
	until time.Time
}

// NewLocalCache returns a cache of at most size entries kept at most ttl,
// or nil (off) when ttl is not positive.
func NewLocalCache[V any](ttl time.Duration, size int) *LocalCache[V] {
	if ttl <= 0 {
		return nil
	}
	return &LocalCache[V]{ttl: ttl, seed: maphash.MakeSeed(), lru: NewLRU[string, cached[V]](max(size, 1), 64, 1)}
}

// Any reports whether anything may be cached: a caller can skip building
// a key when it is false.
func (c *LocalCache[V]) Any() bool { return c != nil && c.n.Load() > 0 }

// Get returns key's value while it is valid at now.
func (c *LocalCache[V]) Get(key string, now time.Time) (V, bool) {
	var zero V
	if c == nil || c.n.Load() == 0 {
		return zero, false
	}
	s := c.lru.Shard(maphash.String(c.seed, key))
	s.Lock()
	defer s.Unlock()
	e := s.Get(key)
	if e == nil {
		return zero, false
	}
	if !now.Before(e.Val.until) {
		s.Remove(e)
		c.n.Add(-1)
		return zero, false
	}
	return e.Val.v, true
}

// Put keeps v for key until the earlier of expires and now + ttl; an
// expires not after now removes key instead.
func (c *LocalCache[V]) Put(key string, v V, now, expires time.Time) {
	if c == nil {
		return
	}
	until := now.Add(c.ttl)
	if expires.Before(until) {
		until = expires
	}
	s := c.lru.Shard(maphash.String(c.seed, key))
	s.Lock()
	defer s.Unlock()
	e := s.Get(key)
	if !now.Before(until) {
		if e != nil {
			s.Remove(e)
			c.n.Add(-1)
		}
		return
	}
	if e == nil {
		var ev *Evicted[string]
		e, ev = s.Insert(key, 0)
		if ev == nil {
			c.n.Add(1)
		}
	} else {
		s.Touch(e, 0)
	}
	e.Val = cached[V]{v: v, until: until}
}

// Delete forgets key (an unban on this replica).
func (c *LocalCache[V]) Delete(key string) {
	if c == nil {
		return
	}
	s := c.lru.Shard(maphash.String(c.seed, key))
	s.Lock()
	defer s.Unlock()
	if e := s.Get(key); e != nil {
		s.Remove(e)
		c.n.Add(-1)
	}
}

// Clear forgets everything (a reload changed what the entries stand for).
func (c *LocalCache[V]) Clear() {
	if c == nil {
		return
	}
	for i := range c.lru.Shards() {
		s := c.lru.ShardAt(i)
		s.Lock()
		var all []*Entry[string, cached[V]]
		s.Each(func(e *Entry[string, cached[V]]) bool { all = append(all, e); return true })
		for _, e := range all {
			s.Remove(e)
		}
		c.n.Add(-int64(len(all)))
		s.Unlock()
	}
}
