package scoring_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// BenchmarkCheck measures Behavior.Check per store: 10 000 clients browsing
// (past their grace period after the first rounds), a fake clock advancing
// 1 ms per request.
func BenchmarkCheck(b *testing.B) {
	stores := map[string]func(b *testing.B) scoring.State{
		"memory": func(b *testing.B) scoring.State {
			m, err := state.NewMemory(state.DefaultMemoryOptions())
			if err != nil {
				b.Fatal(err)
			}
			return m
		},
		"redis": func(b *testing.B) scoring.State {
			r, err := state.NewRedis(redisClient(b, testenv.RedisAddr(b)), state.RedisOptions{Prefix: uniquePrefix(b)})
			if err != nil {
				b.Fatal(err)
			}
			return r
		},
	}
	const clients = 10000
	reqs := make([]scoring.Request, clients)
	paths := []string{"/", "/products", "/products/812", "/cart", "/blog/2025/how-to", "/orders/90211"}
	for i := range reqs {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		reqs[i] = scoring.Request{ClientIP: a, ClientKey: a.String(), Method: "GET", Path: paths[i%len(paths)],
			Headers: map[string]string{"user-agent": browserUA, "accept": "text/html"}}
	}
	for _, name := range []string{"memory", "redis"} {
		for _, par := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/parallel=%v", name, par), func(b *testing.B) {
				bh, err := scoring.NewBehavior(scoring.DefaultBehaviorConfig(), stores[name](b), nil, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer bh.Close()
				var seq atomic.Int64
				one := func(ctx context.Context) {
					i := seq.Add(1)
					r := reqs[i%clients]
					r.Time = t0.Add(time.Duration(i) * time.Millisecond)
					if _, err := bh.Check(ctx, &r); err != nil {
						b.Fatal(err)
					}
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				if !par {
					for b.Loop() {
						one(ctx)
					}
					return
				}
				// Many in-flight Checks per CPU, as gRPC serves them; for Redis
				// this measures throughput rather than one round trip.
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one(ctx)
					}
				})
			})
		}
	}
}

// BenchmarkDecide is the pure rules alone.
func BenchmarkDecide(b *testing.B) {
	cfg := scoring.DefaultBehaviorConfig()
	r := &scoring.Request{Path: "/products/812", Headers: map[string]string{"user-agent": browserUA}}
	st := scoring.ClientState{Requests: 100, RecentRequests: 3, Responses: 12, Errors: 1, DistinctEndpoints: 4, SequentialRun: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = scoring.Decide(cfg, r, st, t0)
	}
}

// BenchmarkObserveResponses feeds the responses of one ALS message (64
// entries from 64 clients) to behaviour scoring, as the access-log feedback
// does: ns/op is per message, one store round trip for Redis.
func BenchmarkObserveResponses(b *testing.B) {
	rs := make([]scoring.UpstreamResponse, 64)
	for i := range rs {
		rs[i] = scoring.UpstreamResponse{ClientIP: netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}).String(), Status: 200 + 300*(i%7/6)}
	}
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			var st scoring.State
			var err error
			if name == "memory" {
				st, err = state.NewMemory(state.DefaultMemoryOptions())
			} else {
				st, err = state.NewRedis(redisClient(b, testenv.RedisAddr(b)), state.RedisOptions{Prefix: uniquePrefix(b)})
			}
			if err != nil {
				b.Fatal(err)
			}
			bh, err := scoring.NewBehavior(scoring.DefaultBehaviorConfig(), st, nil, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer bh.Close()
			ctx := context.Background()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				n++
				for i := range rs {
					rs[i].At = t0.Add(time.Duration(n) * time.Millisecond)
				}
				if err := bh.ObserveResponses(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rs)), "ns/response")
		})
	}
}
