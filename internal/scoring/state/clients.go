package state

import "sync"

// clientTable holds the memory store's tracked clients: a bounded map from
// the 64-bit hash of a client key to its record, in shards each with its
// own lock and its records in recency order (least recently seen evicted
// first).
//
// It replaces internal/store's pointer-linked LRU for this one value type
// because 1 M clients must fit in 300 MiB (issue 20; bench: BenchmarkMemoryClients).
// Records live by value in fixed-size chunks with no pointers (the GC never
// scans them), linked by 32-bit indexes, and the index is an open-addressed
// array of 32-bit record numbers: 176 bytes a client plus 4–8 of index,
// instead of 176 for the entry, ~26 for a map[uint64]*entry slot and two
// small slices (277 bytes a client measured before).
type clientTable struct {
	shards []clientShard
}

// clientRec is one tracked client; record 0 of every shard is the sentinel
// of its recency list (next: most recently seen, prev: least).
type clientRec struct {
	key        uint64
	prev, next uint32
	c          client
}

// chunkBits sizes record chunks (256 records, 44 KiB): small enough that a
// shard of a small store stays small, large enough that 1 M clients need
// few chunk pointers.
const (
	chunkBits = 9
	chunkRecs = 1 << chunkBits
)

type clientShard struct {
	mu sync.Mutex
	// slots is the index: linear probing, each slot a record number, 0
	// empty. Its length is a power of two, at most 3/4 full.
	slots  []uint32
	chunks []*[chunkRecs]clientRec
	used   uint32 // records ever handed out, sentinel included
	free   uint32 // head of the list of freed records (linked by next), 0: none
	n, max int
	// extra holds, by record number, the endpoints and templates of the few
	// clients that have more than fit in their record.
	extra map[uint32]*clientExtra
	// evicted counts clients forgotten to stay within max.
	evicted uint64
	_       [64]byte // keep hot shard locks on separate cache lines
}

// clientExtra is a client's endpoints and templates beyond its record's
// inline ones, in the order they were added.
type clientExtra struct {
	endpoints []endpoint
	templates []template
}

func newClientTable(maxClients, shards int) *clientTable {
	shards = max(min(shards, maxClients), 1)
	t := &clientTable{shards: make([]clientShard, shards)}
	per := (maxClients + shards - 1) / shards
	for i := range t.shards {
		t.shards[i].max = per
	}
	return t
}

// shard returns the shard of the key hashing to h.
func (t *clientTable) shard(h uint64) *clientShard { return &t.shards[h%uint64(len(t.shards))] }

// Len counts the clients of every shard, locking each in turn.
func (t *clientTable) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// evictions sums the clients forgotten to stay within the bound.
func (t *clientTable) evictions() uint64 {
	var n uint64
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.evicted
		s.mu.Unlock()
	}
	return n
}

// rec returns record i; the pointer is valid while the shard is locked.
func (s *clientShard) rec(i uint32) *clientRec { return &s.chunks[i>>chunkBits][i&(chunkRecs-1)] }

// home is the first slot probed for key: the high bits, since the low ones
// chose the shard.
func (s *clientShard) home(key uint64) uint32 { return uint32(key>>32) & uint32(len(s.slots)-1) }

// get returns the record number of key, 0 when it is not tracked.
func (s *clientShard) get(key uint64) uint32 {
	if s.n == 0 {
		return 0
	}
	mask := uint32(len(s.slots) - 1)
	for i := s.home(key); ; i = (i + 1) & mask {
		r := s.slots[i]
		if r == 0 {
			return 0
		}
		if s.rec(r).key == key {
			return r
		}
	}
}

// insert tracks key (which must not be tracked) as the most recently seen,
// with a zero client, first forgetting the least recently seen client when
// the shard is full. It returns the new record's number.
func (s *clientShard) insert(key uint64) uint32 {
	if s.chunks == nil {
		s.chunks = []*[chunkRecs]clientRec{new([chunkRecs]clientRec)}
		s.used = 1 // the sentinel
	}
	if s.n >= s.max {
		if victim := s.rec(0).prev; victim != 0 {
			s.remove(victim)
			s.evicted++
		}
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	r := s.free
	if r != 0 {
		s.free = s.rec(r).next
	} else {
		if s.used>>chunkBits == uint32(len(s.chunks)) {
			s.chunks = append(s.chunks, new([chunkRecs]clientRec))
		}
		r = s.used
		s.used++
	}
	e := s.rec(r)
	*e = clientRec{key: key}
	mask := uint32(len(s.slots) - 1)
	i := s.home(key)
	for s.slots[i] != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = r
	s.n++
	s.pushFront(r)
	return r
}

// grow doubles the index (16 slots at first) and places every record again.
func (s *clientShard) grow() {
	old := s.slots
	s.slots = make([]uint32, max(16, 2*len(old)))
	mask := uint32(len(s.slots) - 1)
	for _, r := range old {
		if r == 0 {
			continue
		}
		i := s.home(s.rec(r).key)
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = r
	}
}

// remove forgets record r: its index slot (shifting later entries of the
// probe run back, so lookups need no tombstones), its recency links and its
// extra endpoints; the record goes to the free list.
func (s *clientShard) remove(r uint32) {
	e := s.rec(r)
	mask := uint32(len(s.slots) - 1)
	i := s.home(e.key)
	for s.slots[i] != r {
		i = (i + 1) & mask
	}
	// Backward-shift deletion: move up every later entry of the run whose
	// home is not cyclically within (i, j].
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		h := s.home(s.rec(s.slots[j]).key)
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if h > i || h <= j {
			continue
		}
		s.slots[i] = s.slots[j]
		i = j
	}
	s.slots[i] = 0
	s.unlink(r)
	if e.c.spill {
		delete(s.extra, r)
	}
	*e = clientRec{next: s.free}
	s.free = r
	s.n--
}

// touch makes r the most recently seen.
func (s *clientShard) touch(r uint32) {
	if s.rec(0).next == r {
		return
	}
	s.unlink(r)
	s.pushFront(r)
}

func (s *clientShard) pushFront(r uint32) {
	sen, e := s.rec(0), s.rec(r)
	e.prev, e.next = 0, sen.next
	s.rec(sen.next).prev = r
	sen.next = r
}

func (s *clientShard) unlink(r uint32) {
	e := s.rec(r)
	s.rec(e.prev).next = e.next
	s.rec(e.next).prev = e.prev
	e.prev, e.next = 0, 0
}

// extraOf returns r's extra endpoints and templates, creating them when
// asked.
func (s *clientShard) extraOf(r uint32, create bool) *clientExtra {
	c := &s.rec(r).c
	if c.spill {
		return s.extra[r]
	}
	if !create {
		return nil
	}
	if s.extra == nil {
		s.extra = make(map[uint32]*clientExtra)
	}
	x := &clientExtra{}
	s.extra[r], c.spill = x, true
	return x
}
