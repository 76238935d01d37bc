package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// keyPerID is the decision layout before RedisDecisions' hashes, kept as
// the benchmark's baseline: SET <prefix>rid:{id} client PX ttl per decision,
// GET per lookup, one pipeline per batch.
type keyPerID struct {
	c      redis.UniversalClient
	prefix string
}

func (k keyPerID) key(id string) string { return k.prefix + "rid:{" + id + "}" }

func (k keyPerID) Remember(ctx context.Context, ds []scoring.Decided, ttl time.Duration) error {
	_, err := k.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			p.Set(ctx, k.key(d.RequestID), d.Client, ttl)
		}
		return nil
	})
	return err
}

func (k keyPerID) Clients(ctx context.Context, ids []string) ([]string, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := k.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, k.key(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

func (k keyPerID) Key(client string) string { return client }

// BenchmarkRedisDecisions records decisions as scoring.Decisions does
// (batches of 512 from one writer), then looks them up as the access-log
// feedback does (one call per ALS message, 16 ids each), in both layouts:
// "key-per-id" (SET/GET sl:rid:{id}, before) and "hash-per-generation"
// (RedisDecisions, its clock in the middle of a generation: one HMGET a
// shard; "lookup-late" in the last quarter of one: two; "lookup-prev" a
// generation later than the decisions: one, none found, then one of the
// generation before). An op is one decision recorded, or one id looked up;
// redis-cpu-µs/op is redis-server's CPU (INFO cpu) per op, the cost ns/op
// misses; redis-B/op the server memory a recorded decision holds (INFO
// used_memory, before expiry).
//
// On the loaded 2-core box (scripts/testenv.sh go test
// ./internal/scoring/state -run '^$' -bench RedisDecisions -count 6
// -benchmem; benchstat medians; ns/op includes waiting for Redis):
//
//	                            ns/op  redis-cpu-µs/op  allocs/op  redis-B/op
//	record/key-per-id           7,756  5.2              7          185
//	record/hash-per-generation  2,996  2.0              2          106 (held 2–3 windows instead of 1)
//	lookup/key-per-id           9,171  4.9              6
//	lookup/hash-per-generation  7,374  3.2              8
//	lookup-late/hash-per-gen.   8,145  3.3              11
//	lookup-prev/hash-per-gen.  10,120  4.1              14
//
// callgrind on redis-server (instructions per op, 50,000 ops, less a run
// of 1): record 16.8k → 5.3k; lookup 5.0k → 3.2k, late 5.1k, prev 5.1k.
func BenchmarkRedisDecisions(b *testing.B) {
	const (
		window = time.Hour // nothing expires during a run; the keys are deleted after it
		batch  = 512
		msg    = 16
	)
	addr := testenv.RedisAddr(b)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	// A fixed clock: how many generations a lookup reads depends on it.
	w := window.Milliseconds()
	mid := time.UnixMilli(time.Now().UnixMilli()/w*w + w/2)
	layouts := []struct {
		name string
		mk   func(prefix string, late bool) scoring.DecisionStore
	}{
		{"key-per-id", func(prefix string, _ bool) scoring.DecisionStore { return keyPerID{c: c, prefix: prefix} }},
		{"hash-per-generation", func(prefix string, late bool) scoring.DecisionStore {
			d, err := NewRedisDecisions(c, RedisOptions{Prefix: prefix}, window)
			if err != nil {
				b.Fatal(err)
			}
			d.now = func() time.Time { return mid }
			if late {
				d.now = func() time.Time { return mid.Add(window / 3) }
			}
			return d
		}},
	}
	for _, op := range []string{"record", "lookup", "lookup-late", "lookup-prev"} {
		for _, l := range layouts {
			if (op == "lookup-late" || op == "lookup-prev") && l.name == "key-per-id" {
				continue // no generations
			}
			b.Run(op+"/"+l.name, func(b *testing.B) {
				var rb [6]byte
				_, _ = rand.Read(rb[:])
				prefix := "bd" + hex.EncodeToString(rb[:]) + ":"
				defer deleteKeys(b, c, prefix)
				st := l.mk(prefix, op == "lookup-late")
				ds := make([]scoring.Decided, b.N)
				ids := make([]string, b.N)
				for i := range ds {
					var id [16]byte
					_, _ = rand.Read(id[:])
					ids[i] = hex.EncodeToString(id[:])
					ds[i] = scoring.Decided{RequestID: ids[i], Client: fmt.Sprintf("198.18.%d.%d", i%1000/250, i%250+1)}
				}
				remember := func() {
					for i := 0; i < len(ds); i += batch {
						if err := st.Remember(ctx, ds[i:min(i+batch, len(ds))], window); err != nil {
							b.Fatal(err)
						}
					}
				}
				if op != "record" {
					remember()
				}
				if d, ok := st.(*RedisDecisions); ok && op == "lookup-prev" {
					d.now = func() time.Time { return mid.Add(window) }
				}
				mem0 := redisUsedMemory(b, c)
				cpu0 := testenv.RedisCPU(b, addr)
				b.ResetTimer()
				if op == "record" {
					remember()
				} else {
					for i := 0; i < len(ids); i += msg {
						part := ids[i:min(i+msg, len(ids))]
						got, err := st.Clients(ctx, part)
						if err != nil {
							b.Fatal(err)
						}
						if got[0] != ds[i].Client {
							b.Fatalf("%s: %q, want %q", part[0], got[0], ds[i].Client)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(testenv.RedisCPU(b, addr)-cpu0)/float64(time.Microsecond)/float64(b.N), "redis-cpu-µs/op")
				if op == "record" {
					b.ReportMetric(float64(redisUsedMemory(b, c)-mem0)/float64(b.N), "redis-B/op")
				}
			})
		}
	}
}

// redisUsedMemory is INFO memory's used_memory.
func redisUsedMemory(b *testing.B, c *redis.Client) int64 {
	b.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO memory lacks used_memory")
	return 0
}

// deleteKeys unlinks every key under prefix.
func deleteKeys(b *testing.B, c *redis.Client, prefix string) {
	b.Helper()
	ctx := context.Background()
	it := c.Scan(ctx, 0, prefix+"*", 10_000).Iterator()
	var keys []string
	for it.Next(ctx) {
		if keys = append(keys, it.Val()); len(keys) == 10_000 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if err := it.Err(); err != nil {
		b.Fatal(err)
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
}
