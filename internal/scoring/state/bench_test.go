package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/store"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// BenchmarkRedisCheckParallel is the behaviour stage's store call from 64
// concurrent callers (as bench.sh's c=64), from 1,000 client IPs (as
// test/e2e/cmd/checkload), on 7 endpoints each, with
// the request path's bound around each call as internal/app sets it:
// "direct" is one round trip per Check on its own pooled connection under
// the fixed store.redis.timeout (the state before automatic pipelining),
// "batch" the Batcher with the adaptive timeout up to timeout_max (async:
// false), "async" the defaults (that, and Checks of known clients answered
// from the replica's view, their scripts sent behind them; the run ends
// when they were sent), "batch-fixed" the Batcher under the fixed timeout
// (timeout_max 0), and
// "goredis-autopipeline" go-redis's own AutoPipeliner (blocking face; it
// ignores the call's deadline, so a call is counted failed when it
// returned later than the bound). fail% is the share of calls that missed
// their bound — each would be a fail_mode answer. Checks/s is the
// throughput over the run; redis-cpu-µs/op the CPU time redis-server
// spent per Check (INFO cpu), the part of a Check's cost ns/op misses.
func BenchmarkRedisCheckParallel(b *testing.B) {
	cfg := store.DefaultConfig().Redis
	cfg.Addrs = []string{testenv.RedisAddr(b)}
	for _, mode := range []string{"direct", "batch", "async", "batch-fixed", "goredis-autopipeline"} {
		b.Run(mode, func(b *testing.B) {
			c, err := store.NewRedisClient(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var rb [6]byte
			_, _ = rand.Read(rb[:])
			opts := RedisOptions{Prefix: "b" + hex.EncodeToString(rb[:]) + ":"}
			bound := cfg.Timeout
			reg := prometheus.NewRegistry()
			switch mode {
			case "batch", "async", "batch-fixed":
				ceiling := cfg.TimeoutMax
				if mode == "batch-fixed" {
					ceiling = 0
				}
				t := store.NewAdaptiveTimeout(cfg.Timeout, ceiling, cfg.TimeoutFactor)
				bt, err := store.NewBatcher(c, t, cfg.BatchMaxInFlight, reg)
				if err != nil {
					b.Fatal(err)
				}
				opts.Scripts, bound = bt, t.Ceiling()
				if mode == "async" {
					opts.AsyncMaxAge, opts.AsyncMaxClients, opts.Registerer = cfg.AsyncMaxAge, cfg.AsyncMaxClients, reg
				}
			case "goredis-autopipeline":
				ap, err := c.AutoPipeline()
				if err != nil {
					b.Fatal(err)
				}
				defer ap.Close()
				opts.Scripts = ap
			}
			r, err := NewRedis(c, opts)
			if err != nil {
				b.Fatal(err)
			}
			var seq, fails atomic.Int64
			w := windows()
			b.SetParallelism(32) // 64 goroutines on 2 cores
			cpu0 := testenv.RedisCPU(b, cfg.Addrs[0])
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), bound)
					t0 := time.Now()
					_, err := r.Check(ctx, scoring.Observation{ClientKey: fmt.Sprintf("198.18.%d.%d", i%1000/250, i%250+1),
						Now: t0, Endpoint: uint64(i % 7), Windows: w})
					cancel()
					if err == nil && time.Since(t0) > bound {
						err = context.DeadlineExceeded
					}
					if err != nil {
						var ne net.Error
						if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
							b.Error(err)
						}
						fails.Add(1)
					}
				}
			})
			if err := r.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.ReportMetric(float64(testenv.RedisCPU(b, cfg.Addrs[0])-cpu0)/float64(time.Microsecond)/float64(b.N), "redis-cpu-µs/op")
			b.ReportMetric(100*float64(fails.Load())/float64(b.N), "fail%")
			b.ReportMetric(float64(b.N)/el.Seconds(), "checks/s")
			if mfs, _ := reg.Gather(); len(mfs) > 0 {
				for _, mf := range mfs {
					switch mf.GetName() {
					case "smartlayer_store_redis_timeout_seconds":
						b.ReportMetric(mf.GetMetric()[0].GetGauge().GetValue()*1000, "timeout-ms")
					case "smartlayer_store_redis_async_checks_total":
						var n [2]float64
						for _, m := range mf.GetMetric() {
							if m.GetLabel()[0].GetValue() == "view" {
								n[0] += m.GetCounter().GetValue()
							}
							n[1] += m.GetCounter().GetValue()
						}
						b.ReportMetric(100*n[0]/max(n[1], 1), "view%")
					case "smartlayer_store_redis_batch_commands":
						h := mf.GetMetric()[0].GetHistogram()
						b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "cmds/batch")
					}
				}
			}
		})
	}
}
