package quota

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/smartlayer/smartlayer/internal/store"
)

// NewMemory returns a Limiter keeping counters in process memory, with the
// same decisions as the Redis backend: for one replica (`make run`, tests).
//
// It holds at most MaxKeys (subject, plan, route) keys. Keys without a
// lifetime count expire like their Redis buckets, dropped lazily from the
// cold end of an LRU list as Takes pass by. When full, it evicts the least
// recently used key without a lifetime count, and only when there is none the
// least recently used lifetime key — never silently: every eviction counts
// in smartlayer_quota_evictions_total{kind="window|lifetime"}, and a lost
// lifetime count is logged (at most once a minute, with how many were lost
// since). Counters are lost on restart; use Redis with persistence for
// lifetime limits that matter.
func NewMemory(t *Table, cfg Config) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := newLimiter(t, cfg, nil)
	b := newMemBackend(cfg, l.m)
	b.log, b.maxKeys = l.log, cfg.Memory.MaxKeys
	l.backend = b
	return l, nil
}

// lifetimeLogEvery spaces the warnings about evicted lifetime counts.
const lifetimeLogEvery = time.Minute

type memKey struct{ subject, part string }

// bucketCount is one fixed bucket's count. A window keeps two, indexed by
// bucket parity, so bucket b and b−1 never share a slot — as the Redis keys
// for b and b−1 never collide.
type bucketCount struct{ idx, n int64 }

type memEntry struct {
	win     [numTimed][2]bucketCount
	life    int64
	expires int64 // ms; math.MaxInt64 while it holds a lifetime count
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

// LRU classes: keys that expire, and keys holding a lifetime count, which
// never do and are evicted last.
const (
	classTimed = iota
	classLife
	numClasses
)

type memBackend struct {
	seed maphash.Seed
	lru  *store.LRU[memKey, memEntry]
	m    *metrics

	log     *slog.Logger
	maxKeys int
	// lifeLost counts lifetime evictions not yet logged; lastLog is when
	// the last warning went out (Unix ns).
	lifeLost atomic.Int64
	lastLog  atomic.Int64
}

func newMemBackend(cfg Config, m *metrics) *memBackend {
	return &memBackend{seed: maphash.MakeSeed(), lru: store.NewLRU[memKey, memEntry](cfg.Memory.MaxKeys, cfg.Memory.Shards, numClasses), m: m}
}

func (b *memBackend) take(_ context.Context, subject string, pr *planRoute, nowMs int64) (counts, bool, error) {
	var c counts
	k := memKey{subject, pr.part}
	s := b.lru.Shard(maphash.String(b.seed, subject))
	s.Lock()
	defer s.Unlock()

	ent := s.Get(k)
	if ent == nil {
		// Clone: the caller's subject may share memory with a whole request.
		k.subject = strings.Clone(subject)
		var ev *store.Evicted[memKey]
		ent, ev = s.Insert(k, classTimed)
		if ev != nil {
			b.evicted(ev)
		}
	}
	e := &ent.Val

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
		s.Touch(ent, classLife)
		return c, allowed, nil
	}
	s.Touch(ent, classTimed)
	// Lazily drop up to two expired keys from the cold end, so idle keys
	// leave without a sweeper goroutine. Keys of longer windows may shield
	// shorter ones behind them for a while; MaxKeys still holds.
	for range 2 {
		t := s.Coldest(classTimed)
		if t == nil || t == ent || t.Val.expires > nowMs {
			break
		}
		s.Remove(t)
	}
	return c, allowed, nil
}

// evicted counts an eviction and warns, rate-limited, when a lifetime count
// was lost.
func (b *memBackend) evicted(ev *store.Evicted[memKey]) {
	b.m.evictions[ev.Class].Inc()
	if ev.Class != classLife || b.log == nil {
		return
	}
	lost := b.lifeLost.Add(1)
	now := time.Now().UnixNano()
	last := b.lastLog.Load()
	if now-last < int64(lifetimeLogEvery) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	lost = b.lifeLost.Swap(0)
	b.log.Warn("quota: memory backend full, lifetime counts evicted: those subjects start their lifetime quota again; raise quota.memory.max_keys or use store.backend: redis with persistence",
		"evicted", lost, "max_keys", b.maxKeys, "last_subject", ev.Key.subject, "last_route", ev.Key.part)
}
