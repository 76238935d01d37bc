package state

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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

// RedisDecisions shares decided request ids between replicas:
// sl:rid:{id} → client key, expiring after the window. Writes and lookups
// are one pipeline per batch (go-redis splits it by node on a cluster).
type RedisDecisions struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisDecisions stores under opts.Prefix ("sl:").
func NewRedisDecisions(c redis.UniversalClient, opts RedisOptions) (*RedisDecisions, error) {
	if c == nil {
		return nil, errors.New("decisions: nil redis client")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisOptions().Prefix
	}
	return &RedisDecisions{c: c, prefix: opts.Prefix}, nil
}

func (r *RedisDecisions) key(id string) string { return r.prefix + "rid:{" + id + "}" }

// Remember implements scoring.DecisionStore.
func (r *RedisDecisions) Remember(ctx context.Context, ds []scoring.Decided, ttl time.Duration) error {
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			p.Set(ctx, r.key(d.RequestID), d.Client, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return nil
}

// Clients implements scoring.DecisionStore.
func (r *RedisDecisions) Clients(ctx context.Context, ids []string) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, r.key(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("look up decisions: %w", err)
	}
	out := make([]string, len(ids))
	for i, c := range cmds {
		out[i] = c.Val() // "" for redis.Nil
	}
	return out, nil
}

// Key is how Clients spells client.
func (r *RedisDecisions) Key(client string) string { return client }
