// Package store keeps client state for the scoring rules: in process
// (Memory, one replica) or in Redis (shared by replicas, survives restarts).
// Only this package knows the Redis keys of behaviour state.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smartlayer/smartlayer/internal/scoring"
)

// MemoryOptions configures the in-process store.
type MemoryOptions struct {
	// MaxClients bounds tracked clients (behavior: max_tracked_clients);
	// the least recently seen client is forgotten first.
	MaxClients int
	// MaxBans bounds remembered bans and offences; when full, expired ones
	// are swept, then the soonest-forgotten one is dropped.
	MaxBans int
	// Shards splits the maps to spread lock contention.
	Shards int
	// Registerer receives smartlayer_store_tracked_clients (nil: none).
	Registerer prometheus.Registerer
}

// DefaultMemoryOptions returns the defaults.
func DefaultMemoryOptions() MemoryOptions {
	return MemoryOptions{MaxClients: 1_000_000, MaxBans: 100_000, Shards: 64}
}

// Memory is the in-process State: sharded maps with an LRU bound.
type Memory struct {
	seed   maphash.Seed
	shards []memShard
}

type memShard struct {
	mu      sync.Mutex
	clients map[string]*client
	// LRU list: head is the most recently seen.
	head, tail *client
	max        int
	bans       map[string]*banEntry
	maxBans    int
}

// client is one client's windows, kept compact: 1 M of them should fit in
// a few hundred MiB. Times are Unix milliseconds.
type client struct {
	key        string
	prev, next *client
	lastSeen   int64
	total      int64
	rate       ring
	errs       *errRing
	endpoints  []endpoint
	templates  []template
	burst      burst
}

type endpoint struct {
	hash     uint64
	lastSeen int64
}

type template struct {
	hash     uint64
	lastID   int64
	lastSeen int64
	run      int64
}

type burst struct {
	endpoint uint64
	start    int64
	count    int64
}

type errRing struct {
	total, errors ring
}

// ring counts events in WindowBuckets buckets; base is the newest bucket's
// index and the slots hold buckets base-N+1 … base.
type ring struct {
	base   int64
	counts [scoring.WindowBuckets]uint16
}

const n = scoring.WindowBuckets

func (r *ring) add(idx int64) {
	switch {
	case idx > r.base:
		steps := idx - r.base
		if steps > n {
			steps = n
		}
		for i := int64(1); i <= steps; i++ {
			r.counts[mod(r.base+i)] = 0
		}
		r.base = idx
	case idx <= r.base-n:
		return
	}
	if c := &r.counts[mod(idx)]; *c < 65535 {
		*c++
	}
}

// sum counts the buckets cur-N+1 … cur.
func (r *ring) sum(cur int64) int {
	lo, hi := max(cur-n+1, r.base-n+1), min(cur, r.base)
	s := 0
	for i := lo; i <= hi; i++ {
		s += int(r.counts[mod(i)])
	}
	return s
}

func mod(i int64) int64 {
	m := i % n
	if m < 0 {
		m += n
	}
	return m
}

// bucket is the index of the bucket holding t for a window split in N.
func bucket(ms int64, window time.Duration) int64 {
	width := window.Milliseconds() / n
	if width < 1 {
		width = 1
	}
	return floorDiv(ms, width)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

type banEntry struct {
	ban         scoring.Ban
	active      bool
	offences    int
	offencesExp int64
}

// NewMemory returns an empty in-process store.
func NewMemory(opts MemoryOptions) (*Memory, error) {
	d := DefaultMemoryOptions()
	if opts.MaxClients == 0 {
		opts.MaxClients = d.MaxClients
	}
	if opts.MaxBans == 0 {
		opts.MaxBans = d.MaxBans
	}
	if opts.Shards == 0 {
		opts.Shards = d.Shards
	}
	switch {
	case opts.MaxClients < 1:
		return nil, fmt.Errorf("store memory: max_tracked_clients must be positive, got %d", opts.MaxClients)
	case opts.MaxBans < 1:
		return nil, fmt.Errorf("store memory: max_bans must be positive, got %d", opts.MaxBans)
	case opts.Shards < 1:
		return nil, fmt.Errorf("store memory: shards must be positive, got %d", opts.Shards)
	}
	if opts.Shards > opts.MaxClients {
		opts.Shards = opts.MaxClients
	}
	m := &Memory{seed: maphash.MakeSeed(), shards: make([]memShard, opts.Shards)}
	for i := range m.shards {
		s := &m.shards[i]
		s.clients = make(map[string]*client)
		s.bans = make(map[string]*banEntry)
		// Round up so the shards together hold at least MaxClients.
		s.max = (opts.MaxClients + opts.Shards - 1) / opts.Shards
		s.maxBans = (opts.MaxBans + opts.Shards - 1) / opts.Shards
	}
	if opts.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "smartlayer_store_tracked_clients",
			Help: "Clients whose behaviour the memory store tracks.",
		}, func() float64 { return float64(m.Len()) })
		if err := opts.Registerer.Register(g); err != nil {
			return nil, fmt.Errorf("store memory metrics: %w", err)
		}
	}
	return m, nil
}

// Len returns the number of tracked clients.
func (m *Memory) Len() int {
	total := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		total += len(s.clients)
		s.mu.Unlock()
	}
	return total
}

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
}

var errClosedCtx = errors.New("store memory: context done")

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errClosedCtx, err)
	}
	return nil
}

// Check implements scoring.State.
func (m *Memory) Check(ctx context.Context, obs scoring.Observation) (scoring.ClientState, error) {
	if err := ctxErr(ctx); err != nil {
		return scoring.ClientState{}, err
	}
	now := obs.Now.UnixMilli()
	w := obs.Windows
	s := m.shard(obs.ClientKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.activeBan(obs.ClientKey, now); b != nil {
		ban := b.ban
		return scoring.ClientState{Ban: &ban}, nil
	}
	c := s.client(obs.ClientKey, now, w.StateTTL)
	c.lastSeen = now
	c.total++
	st := scoring.ClientState{Requests: c.total}

	ri := bucket(now, w.Rate)
	c.rate.add(ri)
	st.RecentRequests = c.rate.sum(ri)
	if c.errs != nil {
		ei := bucket(now, w.Errors)
		st.Responses, st.Errors = c.errs.total.sum(ei), c.errs.errors.sum(ei)
	}

	// Endpoints: distinct count and burst after idle.
	var prev int64
	found := false
	for i := range c.endpoints {
		if c.endpoints[i].hash == obs.Endpoint {
			prev, found = c.endpoints[i].lastSeen, true
			c.endpoints[i].lastSeen = now
			break
		}
	}
	if !found {
		if len(c.endpoints) >= w.MaxEndpoints {
			c.endpoints[oldestEndpoint(c.endpoints)] = endpoint{hash: obs.Endpoint, lastSeen: now}
		} else {
			c.endpoints = append(c.endpoints, endpoint{hash: obs.Endpoint, lastSeen: now})
		}
	}
	since := now - w.Distinct.Milliseconds()
	for _, e := range c.endpoints {
		if e.lastSeen > since {
			st.DistinctEndpoints++
		}
	}
	switch {
	case found && now-prev >= w.Idle.Milliseconds():
		c.burst = burst{endpoint: obs.Endpoint, start: now, count: 1}
		st.IdleBurst = 1
	case c.burst.count > 0 && now-c.burst.start >= w.Burst.Milliseconds():
		c.burst = burst{}
	case c.burst.count > 0 && c.burst.endpoint == obs.Endpoint:
		c.burst.count++
		st.IdleBurst = int(c.burst.count)
	}

	if obs.HasID {
		st.SequentialRun = c.sequence(obs, now, w.MaxTemplates)
	}
	return st, nil
}

func oldestEndpoint(es []endpoint) int {
	oldest := 0
	for i := range es {
		if es[i].lastSeen < es[oldest].lastSeen {
			oldest = i
		}
	}
	return oldest
}

func (c *client) sequence(obs scoring.Observation, now int64, maxTemplates int) int {
	for i := range c.templates {
		t := &c.templates[i]
		if t.hash != obs.Template {
			continue
		}
		switch obs.ID {
		case t.lastID + 1:
			t.run++
		case t.lastID:
		default:
			t.run = 1
		}
		t.lastID, t.lastSeen = obs.ID, now
		return int(t.run)
	}
	t := template{hash: obs.Template, lastID: obs.ID, lastSeen: now, run: 1}
	if len(c.templates) < maxTemplates {
		c.templates = append(c.templates, t)
		return 1
	}
	oldest := 0
	for i := range c.templates {
		if c.templates[i].lastSeen < c.templates[oldest].lastSeen {
			oldest = i
		}
	}
	c.templates[oldest] = t
	return 1
}

// client returns the client's record, creating it (and evicting the least
// recently seen one when full) or resetting it when its state expired; it
// becomes the most recently seen.
func (s *memShard) client(key string, now int64, ttl time.Duration) *client {
	c, ok := s.clients[key]
	if ok {
		if now-c.lastSeen >= ttl.Milliseconds() {
			*c = client{key: c.key, prev: c.prev, next: c.next}
		}
		s.touch(c)
		return c
	}
	if len(s.clients) >= s.max && s.tail != nil {
		old := s.tail
		s.unlink(old)
		delete(s.clients, old.key)
	}
	c = &client{key: key}
	s.clients[key] = c
	s.pushFront(c)
	return c
}

func (s *memShard) touch(c *client) {
	if s.head == c {
		return
	}
	s.unlink(c)
	s.pushFront(c)
}

func (s *memShard) pushFront(c *client) {
	c.prev, c.next = nil, s.head
	if s.head != nil {
		s.head.prev = c
	}
	s.head = c
	if s.tail == nil {
		s.tail = c
	}
}

func (s *memShard) unlink(c *client) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		s.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		s.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

func (s *memShard) activeBan(key string, now int64) *banEntry {
	b, ok := s.bans[key]
	if !ok || !b.active {
		return nil
	}
	if b.ban.Expires.UnixMilli() <= now {
		b.active = false
		if b.offencesExp <= now {
			delete(s.bans, key)
		}
		return nil
	}
	return b
}

// ObserveResponse implements scoring.State.
func (m *Memory) ObserveResponse(ctx context.Context, clientKey string, isError bool, at time.Time, w scoring.Windows) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	ms := at.UnixMilli()
	s := m.shard(clientKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	// A client this replica never checked is tracked too, so its next
	// request here sees its error rate.
	c := s.client(clientKey, ms, w.StateTTL)
	if c.lastSeen == 0 {
		c.lastSeen = ms
	}
	if c.errs == nil {
		c.errs = &errRing{}
	}
	i := bucket(ms, w.Errors)
	c.errs.total.add(i)
	if isError {
		c.errs.errors.add(i)
	}
	return nil
}

// Ban implements scoring.State.
func (m *Memory) Ban(ctx context.Context, clientKey string, req scoring.BanRequest) (scoring.Ban, error) {
	if err := ctxErr(ctx); err != nil {
		return scoring.Ban{}, err
	}
	now := req.Now.UnixMilli()
	s := m.shard(clientKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.activeBan(clientKey, now); b != nil && req.Escalate {
		return b.ban, nil
	}
	e, ok := s.bans[clientKey]
	if !ok {
		s.makeRoomForBan(now)
		e = &banEntry{}
		s.bans[clientKey] = e
	}
	if e.offencesExp <= now {
		e.offences = 0
	}
	ttl := req.TTL
	offence := 0
	if req.Escalate {
		e.offences++
		e.offencesExp = now + req.OffenceMemory.Milliseconds()
		offence = e.offences
		ttl = scoring.EscalatedTTL(req.TTL, req.Factor, req.MaxTTL, offence)
	}
	e.active = true
	e.ban = scoring.Ban{
		ClientKey: clientKey, Reason: req.Reason, Score: req.Score,
		Created: time.UnixMilli(now), Expires: time.UnixMilli(now + ttl.Milliseconds()), Offence: offence,
	}
	return e.ban, nil
}

func (s *memShard) makeRoomForBan(now int64) {
	if len(s.bans) < s.maxBans {
		return
	}
	for k, b := range s.bans {
		if (!b.active || b.ban.Expires.UnixMilli() <= now) && b.offencesExp <= now {
			delete(s.bans, k)
		}
	}
	if len(s.bans) < s.maxBans {
		return
	}
	// Drop the entry that would be forgotten first.
	var victim string
	var soonest int64
	for k, b := range s.bans {
		end := max(b.offencesExp, b.ban.Expires.UnixMilli())
		if victim == "" || end < soonest {
			victim, soonest = k, end
		}
	}
	delete(s.bans, victim)
}

// Unban implements scoring.State.
func (m *Memory) Unban(ctx context.Context, clientKey string, now time.Time) (bool, error) {
	if err := ctxErr(ctx); err != nil {
		return false, err
	}
	s := m.shard(clientKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	active := s.activeBan(clientKey, now.UnixMilli()) != nil
	delete(s.bans, clientKey)
	if c, ok := s.clients[clientKey]; ok {
		s.unlink(c)
		delete(s.clients, clientKey)
	}
	return active, nil
}

// Bans implements scoring.State.
func (m *Memory) Bans(ctx context.Context, now time.Time, limit int) ([]scoring.Ban, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	ms := now.UnixMilli()
	var out []scoring.Ban
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for _, b := range s.bans {
			if len(out) >= limit {
				break
			}
			if b.active && b.ban.Expires.UnixMilli() > ms {
				out = append(out, b.ban)
			}
		}
		s.mu.Unlock()
	}
	return out, nil
}

var _ scoring.State = (*Memory)(nil)
