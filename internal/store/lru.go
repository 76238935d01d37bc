package store

import "sync"

// LRU is a bounded map split in shards, each with its own lock and its
// entries in recency order. Entries belong to one of a few classes, each an
// LRU list of its own; when a shard is full, Insert evicts the coldest
// entry of the lowest class that has one (quota: window counters before
// lifetime ones; behaviour state has one class).
//
// The caller picks the shard from its own hash of the key and holds the
// shard's lock around every call on it, so it can read and change an entry
// in the same critical section. Entries are intrusive (the value sits in
// the entry), so a tracked key costs one allocation.
type LRU[K comparable, V any] struct {
	shards []LRUShard[K, V]
}

// LRUShard is one shard of an LRU. Lock it around every other method.
type LRUShard[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*Entry[K, V]
	// lists are sentinels, one per class; .next is the most recently used.
	lists []Entry[K, V]
	max   int
	_     [64]byte // keep hot shard locks on separate cache lines
}

// Entry is one key and its value. Val may be changed while the shard is
// locked.
type Entry[K comparable, V any] struct {
	Key        K
	Val        V
	prev, next *Entry[K, V]
}

// NewLRU returns an LRU holding at least maxEntries entries in shards
// shards (fewer shards when maxEntries is smaller), each shard holding
// maxEntries/shards rounded up, with classes LRU lists per shard.
// maxEntries, shards and classes must be positive.
func NewLRU[K comparable, V any](maxEntries, shards, classes int) *LRU[K, V] {
	shards = max(min(shards, maxEntries), 1)
	l := &LRU[K, V]{shards: make([]LRUShard[K, V], shards)}
	per := (maxEntries + shards - 1) / shards
	for i := range l.shards {
		s := &l.shards[i]
		s.m = make(map[K]*Entry[K, V])
		s.lists = make([]Entry[K, V], max(classes, 1))
		for c := range s.lists {
			s.lists[c].next, s.lists[c].prev = &s.lists[c], &s.lists[c]
		}
		s.max = per
	}
	return l
}

// Shard returns the shard of a key whose hash is h.
func (l *LRU[K, V]) Shard(h uint64) *LRUShard[K, V] { return &l.shards[h%uint64(len(l.shards))] }

// Shards is the number of shards.
func (l *LRU[K, V]) Shards() int { return len(l.shards) }

// ShardAt returns shard i (0 ≤ i < Shards()), for walking every entry.
func (l *LRU[K, V]) ShardAt(i int) *LRUShard[K, V] { return &l.shards[i] }

// Len counts the entries of every shard, locking each in turn.
func (l *LRU[K, V]) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.Lock()
		n += len(s.m)
		s.Unlock()
	}
	return n
}

// Lock locks the shard.
func (s *LRUShard[K, V]) Lock() { s.mu.Lock() }

// Unlock unlocks the shard.
func (s *LRUShard[K, V]) Unlock() { s.mu.Unlock() }

// Len is the number of entries in the shard.
func (s *LRUShard[K, V]) Len() int { return len(s.m) }

// Cap is how many entries the shard holds before Insert evicts.
func (s *LRUShard[K, V]) Cap() int { return s.max }

// Get returns k's entry or nil; it does not change its recency.
func (s *LRUShard[K, V]) Get(k K) *Entry[K, V] { return s.m[k] }

// Evicted describes the entry Insert evicted to make room.
type Evicted[K comparable] struct {
	Key   K
	Class int
}

// Insert adds a new entry for k (which must not be in the shard) as the
// most recently used of class. When the shard is full it first evicts the
// least recently used entry of the lowest class that has one, and reports
// it.
func (s *LRUShard[K, V]) Insert(k K, class int) (e *Entry[K, V], evicted *Evicted[K]) {
	if len(s.m) >= s.max {
		for c := range s.lists {
			if v := s.lists[c].prev; v != &s.lists[c] {
				evicted = &Evicted[K]{Key: v.Key, Class: c}
				s.Remove(v)
				break
			}
		}
	}
	e = &Entry[K, V]{Key: k}
	s.m[k] = e
	s.pushFront(class, e)
	return e, evicted
}

// Touch makes e the most recently used entry of class (it may change
// class).
func (s *LRUShard[K, V]) Touch(e *Entry[K, V], class int) {
	if s.lists[class].next == e {
		return
	}
	unlink(e)
	s.pushFront(class, e)
}

// Coldest returns the least recently used entry of class, or nil.
func (s *LRUShard[K, V]) Coldest(class int) *Entry[K, V] {
	if v := s.lists[class].prev; v != &s.lists[class] {
		return v
	}
	return nil
}

// Remove deletes e from the shard.
func (s *LRUShard[K, V]) Remove(e *Entry[K, V]) {
	unlink(e)
	delete(s.m, e.Key)
}

// Each calls f for every entry of the shard, in no particular order, until
// f returns false.
func (s *LRUShard[K, V]) Each(f func(*Entry[K, V]) bool) {
	for _, e := range s.m {
		if !f(e) {
			return
		}
	}
}

func (s *LRUShard[K, V]) pushFront(class int, e *Entry[K, V]) {
	list := &s.lists[class]
	e.prev, e.next = list, list.next
	list.next.prev = e
	list.next = e
}

func unlink[K comparable, V any](e *Entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}
