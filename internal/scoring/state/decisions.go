package state

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// MemoryDecisions keeps decided request ids in the process, in two
// generations: a new one starts when the current is full or older than the
// window, and the one before it is forgotten. So memory stays under
// maxRecords entries, and an id can be matched for between one and two
// windows (less under a load that fills a generation sooner). Keys and
// values are 64-bit hashes with a per-process seed: 16 bytes of payload per
// decision instead of two strings.
type MemoryDecisions struct {
	seed    maphash.Seed
	now     func() time.Time
	mu      sync.Mutex
	cur     map[uint64]uint64
	prev    map[uint64]uint64
	started time.Time
	half    int
}

// NewMemoryDecisions keeps at most maxRecords decisions.
func NewMemoryDecisions(maxRecords int) *MemoryDecisions {
	half := max(maxRecords/2, 1)
	return &MemoryDecisions{seed: maphash.MakeSeed(), now: time.Now, half: half,
		cur: make(map[uint64]uint64), prev: map[uint64]uint64{}}
}

func (m *MemoryDecisions) hash(s string) uint64 { return maphash.String(m.seed, s) }

// Remember implements scoring.DecisionStore.
func (m *MemoryDecisions) Remember(_ context.Context, ds []scoring.Decided, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range ds {
		if len(m.cur) >= m.half || now.Sub(m.started) > ttl {
			m.prev, m.cur, m.started = m.cur, make(map[uint64]uint64, len(m.cur)), now
		}
		m.cur[m.hash(d.RequestID)] = m.hash(d.Client)
	}
	return nil
}

// Clients implements scoring.DecisionStore. A client is returned as the
// hash's decimal form: callers compare it with Key(client) only.
func (m *MemoryDecisions) Clients(_ context.Context, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, id := range ids {
		h := m.hash(id)
		c, ok := m.cur[h]
		if !ok {
			c, ok = m.prev[h]
		}
		if ok {
			out[i] = fmt.Sprint(c)
		}
	}
	return out, nil
}

// Key is how Clients spells client.
func (m *MemoryDecisions) Key(client string) string { return fmt.Sprint(m.hash(client)) }

// decisionShards spreads one generation of decisions over this many hashes,
// each its own hash tag, so on a Cluster a generation's writes and lookups
// land on several masters instead of one. 8 keeps a 512-decision batch at
// 16 commands (an HSET and a PEXPIRE per shard) and a lookup of 16 ids at
// ~7 HMGETs; more shards mean more lookup commands (an early version, with
// 16 shards and three generations read at once, cost redis-server 4.5 µs
// an id for lookups of 16 ids, as much as the GETs before; 8 shards
// 3.3–3.6 µs). Every replica must use the same count and ridShard:
// changing either is a layout change (see RedisDecisions on upgrades).
const decisionShards = 8

// ridShard is FNV-1a (32 bit) of id modulo decisionShards: stable across
// processes and versions, unlike maphash, and allocation-free.
func ridShard(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return int(h % decisionShards)
}

// RedisDecisions shares decided request ids between replicas, in hashes
// per time generation: sl:rid:{g<gen>:<shard>} holds id → client for the
// ids of one shard (ridShard) decided in generation gen = floor(unix ms /
// window ms) of the writing replica's clock. A batch of decisions is one
// HSET and one PEXPIRE per shard it touches, in one pipeline (go-redis
// splits it by node on a Cluster). Recording a decision costs redis-server
// 5.3k instructions (callgrind, batches of 512) against 16.8k for a key per
// decision (SET sl:rid:{id} PX window), and authz 2 allocations instead of
// 7; with its lookup (below), 8.5–10.4k instructions against 21.8k
// (BenchmarkRedisDecisions has the figures).
//
// Window: a reader looks an id up in the generation of its own clock, in
// the last quarter of it also in the one after, and then in the one
// before, newest first. With clocks that agree, a decision is matched from
// its write to the end of the next generation: for between one window
// (written at the end of its generation) and two (at its start), like
// MemoryDecisions' two generations. A reader whose clock is s ahead of the
// writer's sees that end s sooner (between window−s and 2·window−s); one s
// behind, s later — and across a generation boundary it would not find a
// decision written in the writer's next generation moments ago (access-log
// entries arrive milliseconds after their decision, so a share s/window of
// them would go unmatched): that is what reading the generation after is
// for, within a quarter window of it, so skews up to a quarter window (15 s
// at the default 1m; NTP keeps replicas within milliseconds) lose nothing.
// A key is kept until the end of the second generation after its own (2 to
// 3 windows after it was written, by the writer's clock), so it outlives
// every reader whose clock is less than a window behind. Redis thus holds
// 2–3 windows of decisions.
//
// Upgrades: decisions written by the layout before (sl:rid:{id}, one key
// each) are neither read nor migrated; they expire after their window.
// During a rolling upgrade, an access-log entry handled by a replica of the
// other layout than the one that decided its request is unmatched (counted
// as unknown_id, not scored), until every replica runs this layout and one
// window has passed. Unmatched feedback punishes nobody.
type RedisDecisions struct {
	c      redis.UniversalClient
	prefix string
	window time.Duration
	now    func() time.Time
}

// NewRedisDecisions stores under opts.Prefix ("sl:") in generations of
// window (behavior.feedback_window): readers need it as well as writers,
// so it is fixed here and Remember's ttl must equal it.
func NewRedisDecisions(c redis.UniversalClient, opts RedisOptions, window time.Duration) (*RedisDecisions, error) {
	if c == nil {
		return nil, errors.New("decisions: nil redis client")
	}
	if window < time.Millisecond {
		return nil, fmt.Errorf("decisions: window %v below 1ms", window)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisOptions().Prefix
	}
	return &RedisDecisions{c: c, prefix: opts.Prefix, window: window, now: time.Now}, nil
}

func (r *RedisDecisions) key(gen int64, shard int) string {
	return r.prefix + "rid:{g" + strconv.FormatInt(gen, 10) + ":" + strconv.Itoa(shard) + "}"
}

// Remember implements scoring.DecisionStore.
func (r *RedisDecisions) Remember(ctx context.Context, ds []scoring.Decided, ttl time.Duration) error {
	if ttl != r.window {
		return fmt.Errorf("record decisions: ttl %v is not the store's window %v", ttl, r.window)
	}
	if len(ds) == 0 {
		return nil
	}
	ms, w := r.now().UnixMilli(), r.window.Milliseconds()
	gen := ms / w
	// To the end of generation gen+2, by this clock.
	keep := time.Duration(3*w-ms%w) * time.Millisecond
	// One []any for every shard's pairs (counting sort by shard): HSET
	// takes them as they are.
	var n, at [decisionShards]int
	shards := make([]int, len(ds))
	for i, d := range ds {
		shards[i] = ridShard(d.RequestID)
		n[shards[i]] += 2
	}
	for s := 1; s < decisionShards; s++ {
		at[s] = at[s-1] + n[s-1]
	}
	start := at
	pairs := make([]any, 2*len(ds))
	for i, d := range ds {
		s := shards[i]
		pairs[at[s]], pairs[at[s]+1] = d.RequestID, d.Client
		at[s] += 2
	}
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for s := range decisionShards {
			if n[s] == 0 {
				continue
			}
			k := r.key(gen, s)
			p.HSet(ctx, k, pairs[start[s]:at[s]]...)
			p.PExpire(ctx, k, keep)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return nil
}

// Clients implements scoring.DecisionStore, in up to two round trips: one
// HMGET per shard of the reader's generation (and of the one after, in the
// last quarter of the reader's generation), then, for the ids not found,
// one per shard of the generation before. An access-log entry arrives
// milliseconds after its decision, so it is nearly always in the first;
// the generation before is asked only for the rest (entries of decisions
// made just before a generation ended, unknown or forged ids). Newest
// first: an id found in a generation is not looked for in older ones.
//
// BenchmarkRedisDecisions, callgrind on redis-server (instructions per id
// looked up, ALS messages of 16 ids): 5.0k for a GET per id before; 3.2k
// found in the reader's generation, 5.1k in its last quarter (one more
// HMGET a shard), 5.1k found only in the generation before.
func (r *RedisDecisions) Clients(ctx context.Context, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ms, w := r.now().UnixMilli(), r.window.Milliseconds()
	gen := ms / w
	// A writer whose clock is ahead of this one's writes in the next
	// generation only while this clock is within the skew of it; a quarter
	// of a window (15 s at the default 1m) is far above NTP-synced
	// replicas' skew, and asking for it only then saves the rest of the
	// time a command per shard that nearly always finds nothing.
	first := []int64{gen}
	if ms%w >= w-w/4 {
		first = []int64{gen + 1, gen}
	}
	all := make([]int, len(ids))
	for i := range all {
		all[i] = i
	}
	miss, err := r.lookup(ctx, ids, all, first, out)
	if err == nil && len(miss) > 0 {
		_, err = r.lookup(ctx, ids, miss, []int64{gen - 1}, out)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lookup sets out[i] for the ids[i], i in which, found in gens (newest
// first): one HMGET per shard and generation, in one pipeline. It returns
// the indexes still unknown.
func (r *RedisDecisions) lookup(ctx context.Context, ids []string, which []int, gens []int64, out []string) ([]int, error) {
	var idx [decisionShards][]int
	for _, i := range which {
		s := ridShard(ids[i])
		idx[s] = append(idx[s], i)
	}
	// The fields boxed once per shard and copied into each generation's
	// arguments: HMGet(...string) would box them again per key.
	boxed := make([]any, len(which))
	cmds := make([]*redis.Cmd, 0, len(gens)*decisionShards)
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		n := 0
		for s, is := range idx {
			if len(is) == 0 {
				continue
			}
			f := boxed[n : n+len(is)]
			for j, i := range is {
				f[j] = ids[i]
			}
			n += len(is)
			for _, g := range gens {
				args := append(make([]any, 0, 2+len(f)), "hmget", r.key(g, s))
				cmds = append(cmds, p.Do(ctx, append(args, f...)...))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up decisions: %w", err)
	}
	c := 0
	for _, is := range idx {
		if len(is) == 0 {
			continue
		}
		for range gens {
			vs, err := cmds[c].Slice()
			c++
			if err != nil || len(vs) != len(is) {
				return nil, fmt.Errorf("look up decisions: HMGET answered %d of %d (%v)", len(vs), len(is), err)
			}
			for j, v := range vs {
				if cl, ok := v.(string); ok && out[is[j]] == "" {
					out[is[j]] = cl
				}
			}
		}
	}
	miss := which[:0:0]
	for _, i := range which {
		if out[i] == "" {
			miss = append(miss, i)
		}
	}
	return miss, nil
}

// Key is how Clients spells client.
func (r *RedisDecisions) Key(client string) string { return client }
