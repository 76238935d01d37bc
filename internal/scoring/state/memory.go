// Package state keeps client state for the behaviour scoring rules (it
// implements scoring.State): in process (Memory, one replica) or in Redis
// (shared by replicas, survives restarts). Only this package knows the
// Redis keys of behaviour state. Its Redis building blocks — the Lua script
// runner, the key escaper — are internal/store's, shared with quota; the
// memory store keeps clients in its own pointer-free table (clients.go).
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
	// Registerer receives smartlayer_store_tracked_clients,
	// smartlayer_store_client_evictions_total and
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

// Memory is the in-process State: clients in a sharded, bounded table of
// compact records (clientTable), bans in maps sharded the same way.
type Memory struct {
	seed    maphash.Seed
	clients *clientTable
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

// client is one client's windows, kept compact so 1 M of them fit in
// 300 MiB (BenchmarkMemoryClients): no pointers, fields laid out flat (no
// padding between small arrays), 32-bit hashes, times as milliseconds since
// born (rebased before they overflow), and the first endpoints and template
// inline — a client with more keeps the rest in its shard's extra map. With
// its key and links it is 176 bytes (TestClientSize).
type client struct {
	// born is when this state started (Unix ms); 0 for a new record.
	born     int64
	rateBase int64
	errBase  int64
	rate     counts
	errTotal counts
	errCount counts
	// lastSeen and burstStart are ms since born.
	lastSeen   uint32
	burstStart uint32
	burstEP    uint32
	// total saturates at 65535: it only matters for the grace period.
	total      uint16
	burstCount uint16
	// nEndpoints and nTemplates count the inline ones in use; spill says
	// the shard's extra map holds more.
	nEndpoints uint8
	nTemplates uint8
	spill      bool
	endpoints  [inlineEndpoints]endpoint
	templates  [inlineTemplates]template
}

// Inline capacities: a typical visitor's pages and ID route fit (a few
// pages, one template); 4 endpoints fill the record's padding to the 176
// bytes it has anyway.
const (
	inlineEndpoints = 4
	inlineTemplates = 1
)

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
// would not fit; times before born clamp to 0. more is the client's extra
// endpoints.
func (c *client) rel(ms int64, more []endpoint) int64 {
	if ms-c.born >= 1<<31 {
		c.rebase(ms-c.born-1<<30, more)
	}
	return max(ms-c.born, 0)
}

// rebase moves born forward by delta; times older than the new born clamp
// to it, which keeps them older than every window.
func (c *client) rebase(delta int64, more []endpoint) {
	sub := func(v uint32) uint32 { return uint32(max(int64(v)-delta, 0)) }
	c.born += delta
	for _, l := range [2][]endpoint{c.endpoints[:c.nEndpoints], more} {
		for i := range l {
			l[i].seen = sub(l[i].seen)
		}
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
	m := &Memory{seed: maphash.MakeSeed(), clients: newClientTable(opts.MaxClients, opts.Shards),
		manual: newManualBans(), log: opts.Logger,
		evictions: prom.CounterVec("smartlayer_store_ban_evictions_total",
			"Automatic bans (kind=ban) and remembered offences (kind=offences) the memory store dropped because store.memory.max_bans was reached. Manual bans are never dropped.",
			"kind")}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m.bans = make([]banShard, len(m.clients.shards))
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
		ev := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "smartlayer_store_client_evictions_total",
			Help: "Clients the memory store forgot, least recently seen first, because store.memory.max_tracked_clients were tracked.",
		}, func() float64 { return float64(m.clients.evictions()) })
		if err := prom.Register(opts.Registerer, g, ev, m.evictions); err != nil {
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
	// The bans are copied to the heap only when found: Ban: &ban on the
	// variable the lookup fills would allocate it on every Check (two
	// allocations of ~100 bytes per Check, measured by BenchmarkMemoryClients'
	// alloc profile).
	if ban, ok := m.manual.match(obs.ClientKey, obs.Now); ok {
		return scoring.ClientState{Ban: new(ban)}, nil
	}
	id := maphash.String(m.seed, obs.ClientKey)
	if ban, ok := m.activeBan(id, obs.ClientKey, now); ok {
		return scoring.ClientState{Ban: new(ban)}, nil
	}
	s := m.clients.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, c := track(s, id, now, w.StateTTL)
	x := s.extraOf(r, false)
	var moreEPs []endpoint
	if x != nil {
		moreEPs = x.endpoints
	}
	rnow := c.rel(now, moreEPs)
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
	// The endpoints in the order they were added: inline, then extra.
	lists := [2][]endpoint{c.endpoints[:c.nEndpoints], moreEPs}
find:
	for _, l := range lists {
		for i := range l {
			if l[i].hash == ep {
				prev, found = int64(l[i].seen), true
				l[i].seen = uint32(rnow)
				break find
			}
		}
	}
	if !found {
		e := endpoint{hash: ep, seen: uint32(rnow)}
		switch {
		case len(lists[0])+len(lists[1]) >= w.MaxEndpoints:
			*oldestEndpoint(lists) = e
		case c.nEndpoints < inlineEndpoints:
			c.endpoints[c.nEndpoints] = e
			c.nEndpoints++
		default:
			x = s.extraOf(r, true)
			x.endpoints = append(x.endpoints, e)
		}
		lists = [2][]endpoint{c.endpoints[:c.nEndpoints], nil}
		if x != nil {
			lists[1] = x.endpoints
		}
	}
	since := rnow - w.Distinct.Milliseconds()
	for _, l := range lists {
		for _, e := range l {
			if int64(e.seen) > since {
				st.DistinctEndpoints++
			}
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
		st.SequentialRun = s.sequence(r, c, fold32(obs.Template), obs.ID, now, w.MaxTemplates)
	}
	return st, nil
}

// oldestEndpoint returns the least recently seen endpoint, the first one
// in list order on a tie.
func oldestEndpoint(lists [2][]endpoint) *endpoint {
	var oldest *endpoint
	for _, l := range lists {
		for i := range l {
			if oldest == nil || l[i].seen < oldest.seen {
				oldest = &l[i]
			}
		}
	}
	return oldest
}

// sequence records id on the client's template tpl and returns its run of
// consecutive ids. Templates are kept in the order they were added: inline,
// then extra; when maxTemplates are kept the least recently seen is
// replaced.
func (s *clientShard) sequence(r uint32, c *client, tpl uint32, id, now int64, maxTemplates int) int {
	x := s.extraOf(r, false)
	lists := [2][]template{c.templates[:c.nTemplates], nil}
	if x != nil {
		lists[1] = x.templates
	}
	for _, l := range lists {
		for i := range l {
			t := &l[i]
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
	}
	t := template{hash: tpl, lastID: id, lastSeen: now, run: 1}
	switch {
	case len(lists[0])+len(lists[1]) >= maxTemplates:
		var oldest *template
		for _, l := range lists {
			for i := range l {
				if oldest == nil || l[i].lastSeen < oldest.lastSeen {
					oldest = &l[i]
				}
			}
		}
		*oldest = t
	case c.nTemplates < inlineTemplates:
		c.templates[c.nTemplates] = t
		c.nTemplates++
	default:
		x = s.extraOf(r, true)
		x.templates = append(x.templates, t)
	}
	return 1
}

// track returns the client's record (its number and client) in its locked
// shard, creating it (and evicting the least recently seen one when full)
// or resetting it when its state expired; it becomes the most recently
// seen.
func track(s *clientShard, id uint64, now int64, ttl time.Duration) (uint32, *client) {
	if r := s.get(id); r != 0 {
		c := &s.rec(r).c
		if now-(c.born+int64(c.lastSeen)) >= ttl.Milliseconds() {
			*c = client{born: now, spill: c.spill}
			if x := s.extraOf(r, false); x != nil {
				// Keep the slices' memory; the client will likely need it again.
				x.endpoints, x.templates = x.endpoints[:0], x.templates[:0]
			}
		}
		s.touch(r)
		return r, c
	}
	r := s.insert(id)
	c := &s.rec(r).c
	c.born = now
	return r, c
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
	s := m.clients.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	// A client this replica never checked is tracked too, so its next
	// request here sees its error rate.
	_, c := track(s, id, ms, w.StateTTL)
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
	cs := m.clients.shard(id)
	cs.mu.Lock()
	if r := cs.get(id); r != 0 {
		cs.remove(r)
	}
	cs.mu.Unlock()
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
