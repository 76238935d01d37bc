package llm

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cacheKey is the SHA-256 of call kind, model and the exact data block sent.
type cacheKey [sha256.Size]byte

func makeKey(k kind, model string, input []byte) cacheKey {
	h := sha256.New()
	h.Write([]byte(k))
	h.Write([]byte{0})
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write(input)
	var key cacheKey
	h.Sum(key[:0])
	return key
}

type cacheEntry struct {
	value   any
	expires time.Time
}

// cache keeps validated answers for ttl, at most size of them. When full it
// first drops expired entries, then arbitrary ones (map order): a verdict
// cache only saves calls, so any eviction is correct.
type cache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

func newCache(ttl time.Duration, size int, now func() time.Time) *cache {
	if ttl <= 0 {
		return nil
	}
	return &cache{ttl: ttl, size: size, now: now, entries: make(map[cacheKey]cacheEntry)}
}

func (c *cache) get(k cacheKey) (any, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, k)
		return nil, false
	}
	return e.value, true
}

func (c *cache) put(k cacheKey, v any) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.size {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
		// Free a slice at once so the O(n) sweep runs once per size/16 puts.
		target := c.size - max(1, c.size/16)
		for key := range c.entries {
			if len(c.entries) <= target {
				break
			}
			delete(c.entries, key)
		}
	}
	c.entries[k] = cacheEntry{value: v, expires: now.Add(c.ttl)}
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
