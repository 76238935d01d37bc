// Package state keeps client state for the behaviour scoring rules (it
// implements scoring.State): in process (Memory, one replica) or in Redis
// (shared by replicas, survives restarts). Only this package knows the
// Redis keys of behaviour state. Its building blocks — the sharded LRU, the
// Lua script runner, the key escaper — are internal/store's, shared with
// quota.
package state

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/store"
)

// MemoryOptions configures the in-process store.
type MemoryOptions struct {
	// MaxClients bounds tracked clients (behavior: max_tracked_clients);
	// the least recently seen client is forgotten first.
	MaxClients int
	// MaxBans bounds remembered automatic bans and offences; when full,
	// expired ones are swept, then offences without an active ban are
	// forgotten (soonest-forgotten first), then the automatic ban with the
	// shortest remaining time is dropped — counted and logged, never
	// silently. Manual bans are kept apart and never evicted.
	MaxBans int
	// Shards splits the maps to spread lock contention.
	Shards int
	// Registerer receives smartlayer_store_tracked_clients and
	// smartlayer_store_ban_evictions_total (nil: none).
	Registerer prometheus.Registerer
	// Logger receives the warning that the ban table is full (nil:
	// discard).
	Logger *slog.Logger
}

// DefaultMemoryOptions returns the defaults.
func DefaultMemoryOptions() MemoryOptions {
	return MemoryOptions{MaxClients: 1_000_000, MaxBans: 100_000, Shards: 64}
}

// Memory is the in-process State: clients in a sharded LRU
// (internal/store's), bans in maps sharded the same way.
type Memory struct {
	seed    maphash.Seed
	clients *store.LRU[uint64, client]
	bans    []banShard
	manual  *manualBans

	// evictions counts automatic-ban entries dropped to stay within
	// MaxBans, by kind: an active ban or offences only.
	evictions *prometheus.CounterVec
	log       *slog.Logger
	full      logLimiter
}

type banShard struct {
	mu      sync.Mutex
	bans    map[string]*banEntry
	maxBans int
}

// clientEntry is one tracked client in the LRU. Its key is the hash of the
// client key; a collision of two clients' 64-bit hashes would merge their
// windows, never their bans. With the LRU's key and links it is 176 bytes,
// a Go size class.
type clientEntry = store.Entry[uint64, client]

// client is one client's windows, kept compact so 1 M of them fit in
// 300 MiB: fields laid out flat (no padding between small arrays), 32-bit
// hashes, and times as milliseconds since born (rebased before they
// overflow).
type client struct {
	// born is when this state started (Unix ms); 0 for a new record.
	born      int64
	rateBase  int64
	errBase   int64
	endpoints []endpoint
	templates []template
	rate      counts
	errTotal  counts
	errCount  counts
	// lastSeen and burstStart are ms since born.
	lastSeen   uint32
	burstStart uint32
	burstEP    uint32
	// total saturates at 65535: it only matters for the grace period.
	total      uint16
	burstCount uint16
}

// endpoint is a path (hash) and when it was last seen (ms since born).
type endpoint struct {
	hash uint32
	seen uint32
}

type template struct {
	hash     uint32
	run      uint32
	lastID   int64
	lastSeen int64
}

// rel converts a Unix ms time to ms since born, rebasing first when it
// would not fit; times before born clamp to 0.
func (c *client) rel(ms int64) int64 {
	if ms-c.born >= 1<<31 {
		c.rebase(ms - c.born - 1<<30)
	}
	return max(ms-c.born, 0)
}

// rebase moves born forward by delta; times older than the new born clamp
// to it, which keeps them older than every window.
func (c *client) rebase(delta int64) {
	sub := func(v uint32) uint32 { return uint32(max(int64(v)-delta, 0)) }
	c.born += delta
	for i := range c.endpoints {
		c.endpoints[i].seen = sub(c.endpoints[i].seen)
	}
	c.lastSeen = sub(c.lastSeen)
	if int64(c.burstStart) < delta {
		c.burstEP, c.burstStart, c.burstCount = 0, 0, 0
	} else {
		c.burstStart = sub(c.burstStart)
	}
}

// counts is a window of WindowBuckets buckets; with its base (the newest
// bucket's index) it holds buckets base-N+1 … base.
type counts [scoring.WindowBuckets]uint16

const n = scoring.WindowBuckets

// advance moves the window to idx and reports whether idx is still inside
// it (an event older than the window is dropped).
func advance(base *int64, idx int64, cs ...*counts) bool {
	switch {
	case idx > *base:
		steps := min(idx-*base, n)
		for i := int64(1); i <= steps; i++ {
			for _, c := range cs {
				c[mod(*base+i)] = 0
			}
		}
		*base = idx
	case idx <= *base-n:
		return false
	}
	return true
}

func (c *counts) inc(idx int64) {
	if v := &c[mod(idx)]; *v < 65535 {
		*v++
	}
}

// sum counts the buckets cur-N+1 … cur.
func (c *counts) sum(base, cur int64) int {
	lo, hi := max(cur-n+1, base-n+1), min(cur, base)
	s := 0
	for i := lo; i <= hi; i++ {
		s += int(c[mod(i)])
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

// bucket is the index of the bucket holding ms for a window split in N.
func bucket(ms int64, window time.Duration) int64 {
	return floorDiv(ms, bucketWidth(window))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// fold32 folds a 64-bit hash to 32 bits; per client at most a few dozen
// endpoints are compared, so collisions are negligible.
func fold32(h uint64) uint32 { return uint32(h ^ h>>32) }

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
	// Shards round up so together they hold at least MaxClients.
	m := &Memory{seed: maphash.MakeSeed(), clients: store.NewLRU[uint64, client](opts.MaxClients, opts.Shards, 1),
		manual: newManualBans(), log: opts.Logger,
		evictions: prom.CounterVec("smartlayer_store_ban_evictions_total",
			"Automatic bans (kind=ban) and remembered offences (kind=offences) the memory store dropped because store.memory.max_bans was reached. Manual bans are never dropped.",
			"kind")}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m.bans = make([]banShard, m.clients.Shards())
	for i := range m.bans {
		s := &m.bans[i]
		s.bans = make(map[string]*banEntry)
		s.maxBans = (opts.MaxBans + len(m.bans) - 1) / len(m.bans)
	}
	if opts.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "smartlayer_store_tracked_clients",
			Help: "Clients whose behaviour the memory store tracks.",
		}, func() float64 { return float64(m.Len()) })
		if err := prom.Register(opts.Registerer, g, m.evictions); err != nil {
			return nil, fmt.Errorf("store memory metrics: %w", err)
		}
	}
	return m, nil
}

// Len returns the number of tracked clients.
func (m *Memory) Len() int { return m.clients.Len() }

// banShard returns the ban shard of the client whose key hashes to id: the
// same index as its client shard.
func (m *Memory) banShard(id uint64) *banShard { return &m.bans[id%uint64(len(m.bans))] }

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
	if ban, ok := m.manual.match(obs.ClientKey, obs.Now); ok {
		return scoring.ClientState{Ban: &ban}, nil
	}
	id := maphash.String(m.seed, obs.ClientKey)
	if ban, ok := m.activeBan(id, obs.ClientKey, now); ok {
		return scoring.ClientState{Ban: &ban}, nil
	}
	s := m.clients.Shard(id)
	s.Lock()
	defer s.Unlock()
	c := track(s, id, now, w.StateTTL)
	rnow := c.rel(now)
	c.lastSeen = uint32(rnow)
	if c.total < 65535 {
		c.total++
	}
	st := scoring.ClientState{Requests: int64(c.total)}

	ri := bucket(now, w.Rate)
	if advance(&c.rateBase, ri, &c.rate) {
		c.rate.inc(ri)
	}
	st.RecentRequests = c.rate.sum(c.rateBase, ri)
	ei := bucket(now, w.Errors)
	st.Responses, st.Errors = c.errTotal.sum(c.errBase, ei), c.errCount.sum(c.errBase, ei)

	// Endpoints: distinct count and burst after idle.
	ep := fold32(obs.Endpoint)
	var prev int64
	found := false
	for i := range c.endpoints {
		if c.endpoints[i].hash == ep {
			prev, found = int64(c.endpoints[i].seen), true
			c.endpoints[i].seen = uint32(rnow)
			break
		}
	}
	if !found {
		e := endpoint{hash: ep, seen: uint32(rnow)}
		if len(c.endpoints) >= w.MaxEndpoints {
			c.endpoints[oldestEndpoint(c.endpoints)] = e
		} else {
			c.endpoints = append(c.endpoints, e)
		}
	}
	since := rnow - w.Distinct.Milliseconds()
	for _, e := range c.endpoints {
		if int64(e.seen) > since {
			st.DistinctEndpoints++
		}
	}
	switch {
	case found && rnow-prev >= w.Idle.Milliseconds():
		c.burstEP, c.burstStart, c.burstCount = ep, uint32(rnow), 1
		st.IdleBurst = 1
	case c.burstCount > 0 && rnow-int64(c.burstStart) >= w.Burst.Milliseconds():
		c.burstEP, c.burstStart, c.burstCount = 0, 0, 0
	case c.burstCount > 0 && c.burstEP == ep:
		if c.burstCount < 65535 {
			c.burstCount++
		}
		st.IdleBurst = int(c.burstCount)
	}

	if obs.HasID {
		st.SequentialRun = c.sequence(fold32(obs.Template), obs.ID, now, w.MaxTemplates)
	}
	return st, nil
}

func oldestEndpoint(es []endpoint) int {
	oldest := 0
	for i := range es {
		if es[i].seen < es[oldest].seen {
			oldest = i
		}
	}
	return oldest
}

func (c *client) sequence(tpl uint32, id, now int64, maxTemplates int) int {
	for i := range c.templates {
		t := &c.templates[i]
		if t.hash != tpl {
			continue
		}
		switch id {
		case t.lastID + 1:
			t.run++
		case t.lastID:
		default:
			t.run = 1
		}
		t.lastID, t.lastSeen = id, now
		return int(t.run)
	}
	t := template{hash: tpl, lastID: id, lastSeen: now, run: 1}
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

// track returns the client's record in its locked shard, creating it (and
// evicting the least recently seen one when full) or resetting it when its
// state expired; it becomes the most recently seen.
func track(s *store.LRUShard[uint64, client], id uint64, now int64, ttl time.Duration) *client {
	if e := s.Get(id); e != nil {
		c := &e.Val
		if now-(c.born+int64(c.lastSeen)) >= ttl.Milliseconds() {
			// Keep the slices' memory; the client will likely need it again.
			*c = client{endpoints: c.endpoints[:0], templates: c.templates[:0], born: now}
		}
		s.Touch(e, 0)
		return c
	}
	e, _ := s.Insert(id, 0)
	e.Val.born = now
	return &e.Val
}

// activeBan returns the client's active ban, if any.
func (m *Memory) activeBan(id uint64, key string, now int64) (scoring.Ban, bool) {
	s := m.banShard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.activeBan(key, now); b != nil {
		return b.ban, true
	}
	return scoring.Ban{}, false
}

func (s *banShard) activeBan(key string, now int64) *banEntry {
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

// ObserveResponses implements scoring.State.
func (m *Memory) ObserveResponses(ctx context.Context, rs []scoring.ObservedResponse, w scoring.Windows) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	for _, r := range rs {
		m.observeResponse(r, w)
	}
	return nil
}

func (m *Memory) observeResponse(r scoring.ObservedResponse, w scoring.Windows) {
	ms := r.At.UnixMilli()
	id := maphash.String(m.seed, r.ClientKey)
	s := m.clients.Shard(id)
	s.Lock()
	defer s.Unlock()
	// A client this replica never checked is tracked too, so its next
	// request here sees its error rate.
	c := track(s, id, ms, w.StateTTL)
	i := bucket(ms, w.Errors)
	if advance(&c.errBase, i, &c.errTotal, &c.errCount) {
		c.errTotal.inc(i)
		if r.IsError {
			c.errCount.inc(i)
		}
	}
}

// Ban implements scoring.State.
func (m *Memory) Ban(ctx context.Context, clientKey string, req scoring.BanRequest) (scoring.Ban, error) {
	if err := ctxErr(ctx); err != nil {
		return scoring.Ban{}, err
	}
	now := req.Now.UnixMilli()
	if req.Manual {
		ban := scoring.Ban{ClientKey: clientKey, Reason: req.Reason, Score: req.Score, Manual: true,
			Created: time.UnixMilli(now), Expires: time.UnixMilli(now + req.TTL.Milliseconds())}
		m.manual.put(clientKey, ban)
		return ban, nil
	}
	s := m.banShard(maphash.String(m.seed, clientKey))
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.activeBan(clientKey, now); b != nil && req.Escalate {
		return b.ban, nil
	}
	e, ok := s.bans[clientKey]
	if !ok {
		if victim, kind := s.makeRoomForBan(now); kind != "" {
			m.evicted(victim, kind, now)
		}
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

// Eviction kinds (smartlayer_store_ban_evictions_total).
const (
	evictBan      = "ban"
	evictOffences = "offences"
)

// makeRoomForBan makes room for one more entry when the shard is full:
// expired entries go first, then offences without an active ban (soonest
// forgotten first), then the active ban with the shortest remaining time.
// It returns what it dropped beyond expired entries ("" when nothing).
func (s *banShard) makeRoomForBan(now int64) (*banEntry, string) {
	if len(s.bans) < s.maxBans {
		return nil, ""
	}
	for k, b := range s.bans {
		if (!b.active || b.ban.Expires.UnixMilli() <= now) && b.offencesExp <= now {
			delete(s.bans, k)
		}
	}
	if len(s.bans) < s.maxBans {
		return nil, ""
	}
	var offVictim, banVictim string
	var offEnd, banEnd int64
	for k, b := range s.bans {
		if !b.active || b.ban.Expires.UnixMilli() <= now {
			if offVictim == "" || b.offencesExp < offEnd {
				offVictim, offEnd = k, b.offencesExp
			}
			continue
		}
		if end := b.ban.Expires.UnixMilli(); banVictim == "" || end < banEnd {
			banVictim, banEnd = k, end
		}
	}
	victim, kind := banVictim, evictBan
	if offVictim != "" {
		victim, kind = offVictim, evictOffences
	}
	e := s.bans[victim]
	delete(s.bans, victim)
	return e, kind
}

// evicted counts an entry dropped from a full ban table and warns,
// rate-limited, when an active ban was lost.
func (m *Memory) evicted(e *banEntry, kind string, now int64) {
	m.evictions.WithLabelValues(kind).Inc()
	if kind != evictBan {
		return
	}
	if n, ok := m.full.allow(); ok {
		m.log.Warn("store memory: ban table full (store.memory.max_bans): automatic bans with the least time left were dropped; raise max_bans or use store.backend: redis",
			"dropped", n, "last_client", e.ban.ClientKey, "last_reason", e.ban.Reason,
			"last_remaining", time.Duration(e.ban.Expires.UnixMilli()-now)*time.Millisecond)
	}
}

// Unban implements scoring.State.
func (m *Memory) Unban(ctx context.Context, clientKey string, now time.Time) (bool, error) {
	if err := ctxErr(ctx); err != nil {
		return false, err
	}
	manual := m.manual.remove(clientKey, now)
	id := maphash.String(m.seed, clientKey)
	s := m.banShard(id)
	s.mu.Lock()
	active := s.activeBan(clientKey, now.UnixMilli()) != nil || manual
	delete(s.bans, clientKey)
	s.mu.Unlock()
	cs := m.clients.Shard(id)
	cs.Lock()
	if e := cs.Get(id); e != nil {
		cs.Remove(e)
	}
	cs.Unlock()
	return active, nil
}

// Bans implements scoring.State.
func (m *Memory) Bans(ctx context.Context, now time.Time, limit int) ([]scoring.Ban, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	ms := now.UnixMilli()
	out := m.manual.list(now, limit)
	for i := range m.bans {
		s := &m.bans[i]
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

// logLimiter lets one warning through per interval and counts the events
// it held back.
type logLimiter struct {
	last   atomic.Int64 // Unix ns of the last warning
	events atomic.Int64
}

const fullLogEvery = time.Minute

// allow records an event and reports whether to warn now, with the events
// since the last warning.
func (l *logLimiter) allow() (int64, bool) {
	l.events.Add(1)
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(fullLogEvery) || !l.last.CompareAndSwap(last, now) {
		return 0, false
	}
	return l.events.Swap(0), true
}
