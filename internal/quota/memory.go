package quota

import (
	"context"
	"hash/maphash"
	"math"
	"strings"
	"sync"
)

// NewMemory returns a Limiter keeping counters in process memory, with the
// same decisions as the Redis backend: for one replica (`make run`, tests).
//
// It holds at most MaxKeys (subject, plan, route) keys. Keys without a
// lifetime count expire like their Redis buckets, dropped lazily from the
// cold end of an LRU list as Takes pass by. When full, it evicts the least
// recently used key without a lifetime count, and only when there is none the
// least recently used lifetime key. Counters are lost on restart; use Redis
// with persistence for lifetime limits that matter.
func NewMemory(t *Table, cfg Config) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := newLimiter(t, cfg, nil)
	l.backend = newMemBackend(cfg, l.m)
	return l, nil
}

type memKey struct{ subject, part string }

// bucketCount is one fixed bucket's count. A window keeps two, indexed by
// bucket parity, so bucket b and b−1 never share a slot — as the Redis keys
// for b and b−1 never collide.
type bucketCount struct{ idx, n int64 }

type memEntry struct {
	key        memKey
	win        [numTimed][2]bucketCount
	life       int64
	expires    int64 // ms; math.MaxInt64 while it holds a lifetime count
	prev, next *memEntry
}

func (e *memEntry) count(w Window, b int64) int64 {
	if s := e.win[w][b&1]; s.idx == b {
		return s.n
	}
	return 0
}

func (e *memEntry) incr(w Window, b int64) {
	s := &e.win[w][b&1]
	if s.idx != b {
		*s = bucketCount{idx: b}
	}
	s.n++
}

type memShard struct {
	mu sync.Mutex
	m  map[memKey]*memEntry
	// Two LRU lists (sentinels; .next is the most recently used): keys that
	// expire, and keys holding a lifetime count, which never do and are
	// evicted last.
	timed, life memEntry
	max         int
	_pad        [64]byte // keep hot shard locks on separate cache lines
}

type memBackend struct {
	seed   maphash.Seed
	shards []memShard
	m      *metrics
}

func newMemBackend(cfg Config, m *metrics) *memBackend {
	shards := min(cfg.Memory.Shards, cfg.Memory.MaxKeys)
	b := &memBackend{seed: maphash.MakeSeed(), shards: make([]memShard, shards), m: m}
	per := (cfg.Memory.MaxKeys + shards - 1) / shards
	for i := range b.shards {
		s := &b.shards[i]
		s.m = make(map[memKey]*memEntry)
		s.timed.next, s.timed.prev = &s.timed, &s.timed
		s.life.next, s.life.prev = &s.life, &s.life
		s.max = per
	}
	return b
}

func (b *memBackend) take(_ context.Context, subject string, pr *planRoute, nowMs int64) (counts, bool, error) {
	var c counts
	k := memKey{subject, pr.part}
	s := &b.shards[maphash.String(b.seed, subject)%uint64(len(b.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()

	e := s.m[k]
	if e == nil {
		if len(s.m) >= s.max {
			victim := s.timed.prev
			if victim == &s.timed {
				victim = s.life.prev
			}
			s.remove(victim)
			b.m.evictions.Inc()
		}
		// Clone: the caller's subject may share memory with a whole request.
		k.subject = strings.Clone(subject)
		e = &memEntry{key: k}
		s.m[k] = e
	} else {
		s.unlink(e)
	}

	var buckets [numTimed]int64
	for i, tl := range pr.timed {
		w := windowMillis[tl.win]
		bk, el := bucketOf(nowMs, w)
		buckets[i] = bk
		c.slides[i] = slide{w: w, e: el, prev: e.count(tl.win, bk-1), curr: e.count(tl.win, bk)}
	}
	c.life = e.life
	allowed := admitted(pr, &c)
	if allowed {
		for i, tl := range pr.timed {
			e.incr(tl.win, buckets[i])
		}
		if pr.life >= 0 {
			e.life++
		}
	}
	// Expire when the longest window has forgotten the current bucket, as the
	// Redis keys do; a lifetime count never expires.
	e.expires = 0
	for i, tl := range pr.timed {
		w := windowMillis[tl.win]
		e.expires = max(e.expires, (buckets[i]+2)*w)
	}
	if e.life > 0 {
		e.expires = math.MaxInt64
		s.pushFront(&s.life, e)
		return c, allowed, nil
	}
	s.pushFront(&s.timed, e)
	// Lazily drop up to two expired keys from the cold end, so idle keys
	// leave without a sweeper goroutine. Keys of longer windows may shield
	// shorter ones behind them for a while; MaxKeys still holds.
	for range 2 {
		t := s.timed.prev
		if t == &s.timed || t == e || t.expires > nowMs {
			break
		}
		s.remove(t)
	}
	return c, allowed, nil
}

func (s *memShard) unlink(e *memEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (s *memShard) pushFront(list, e *memEntry) {
	e.prev, e.next = list, list.next
	list.next.prev = e
	list.next = e
}

func (s *memShard) remove(e *memEntry) {
	s.unlink(e)
	delete(s.m, e.key)
}
