package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

func newBatcher(t *testing.T, c BatchClient, floor, ceiling time.Duration, inFlight int) (*Batcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := NewBatcher(c, NewAdaptiveTimeout(floor, ceiling, 3), inFlight, reg)
	if err != nil {
		t.Fatal(err)
	}
	return b, reg
}

func timeouts(t *testing.T, reg *prometheus.Registry, by string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smartlayer_store_redis_timeouts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == by {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Many concurrent callers through one Batcher each get their own answer
// (no reply crosses to another caller), on a Redis that lost its scripts
// (NOSCRIPT → EVAL through the Batcher) as on one that has them.
func TestBatcherConcurrentCallers(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 8})
	t.Cleanup(func() { _ = c.Close() })
	for _, inFlight := range []int{1, 4} {
		t.Run(fmt.Sprintf("in_flight_%d", inFlight), func(t *testing.T) {
			ctx := context.Background()
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			b, reg := newBatcher(t, c, time.Second, 0, inFlight)
			// Each caller's own counter, and a shared one: a reply that
			// reached the wrong caller shows as a wrong own count.
			s := NewScript(`return {redis.call('INCR', KEYS[1]), redis.call('INCR', KEYS[2])}`)
			const callers, calls = 64, 20
			prefix := fmt.Sprintf("bt%d:", inFlight)
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for g := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					own := fmt.Sprintf("%s{%d}", prefix, g)
					for i := range calls {
						v, err := s.Run(ctx, b, []string{own, own + ":all"}).Int64Slice()
						if err != nil {
							errs <- err
							return
						}
						if v[0] != int64(i+1) {
							errs <- fmt.Errorf("caller %d call %d: own count %d", g, i, v[0])
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := testutil.CollectAndCount(reg, "smartlayer_store_redis_batch_commands"); n != 1 {
				t.Fatalf("batch size histogram: %d series", n)
			}
			if got := timeouts(t, reg, "adaptive") + timeouts(t, reg, "caller"); got != 0 {
				t.Errorf("%v timeouts with a 1 s timeout on an idle Redis", got)
			}
		})
	}
}

// A Redis that stalls (CLIENT PAUSE) answers nothing: every caller gets
// its timeout (the one in force before: a Redis that answers nothing
// teaches nothing) and the fail mode, none hangs; once Redis answers again
// so does the Batcher.
func TestBatcherStalledRedisTimesOut(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Bounds well above a loaded machine's hiccups, well below the pause.
	b, reg := newBatcher(t, c, 50*time.Millisecond, 200*time.Millisecond, 1)
	s := NewScript(`return redis.call('INCR', KEYS[1])`)
	var err error
	for range 50 {
		if err = s.Run(ctx, b, []string{"warm"}).Err(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	before := b.Timeout()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 3000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	const callers = 32
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = s.Run(ctx, b, []string{fmt.Sprintf("stall{%d}", g)}).Err()
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller %d during the stall: %v, want a deadline", g, err)
		}
	}
	if got := timeouts(t, reg, "adaptive"); got != callers {
		t.Errorf("adaptive timeouts %v, want %d", got, callers)
	}
	if b.Timeout() != before {
		t.Errorf("timeout %s after a stall, want %s as before: a Redis that answers nothing teaches nothing", b.Timeout(), before)
	}
	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	// Back: the next calls are answered (the first may still find the
	// connection the stalled pipeline broke; it is redialled).
	for range 50 {
		if err = s.Run(ctx, b, []string{"after"}).Err(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after the stall: %v", err)
	}
	// The records of the calls that gave up are reused (pooled): every
	// caller gets its own answer, none a stale one left by the stall.
	for round := int64(1); round <= 2; round++ {
		got := make([]int64, callers)
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[g], errs[g] = s.Run(ctx, b, []string{fmt.Sprintf("after{%d}", g)}).Int64()
			}()
		}
		wg.Wait()
		for g := range callers {
			if errs[g] != nil || got[g] != round {
				t.Errorf("caller %d, call %d after the stall: %d, %v; want %d", g, round, got[g], errs[g], round)
			}
		}
	}
}

// A caller whose own deadline ends first gets its context's error, counted
// apart from the adaptive timeouts.
func TestBatcherCallerDeadline(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	b, reg := newBatcher(t, c, time.Second, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NewScript(`return 1`).Run(ctx, b, nil).Err()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if timeouts(t, reg, "caller") != 1 || timeouts(t, reg, "adaptive") != 0 {
		t.Errorf("timeouts caller %v adaptive %v, want 1 and 0", timeouts(t, reg, "caller"), timeouts(t, reg, "adaptive"))
	}
}

// A Redis that is down fails at once (connection refused), not at the
// timeout, and teaches the timeout nothing.
func TestBatcherRedisDownFailsFast(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	const floor = time.Hour // a refused connection must not wait for it
	b, reg := newBatcher(t, c, floor, 2*time.Hour, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		err := NewScript(`return 1`).Run(ctx, b, []string{"k"}).Err()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("down Redis: %v, want a connection error", err)
		}
	}
	if b.Timeout() != floor || timeouts(t, reg, "adaptive") != 0 {
		t.Errorf("timeout %s, adaptive timeouts %v", b.Timeout(), timeouts(t, reg, "adaptive"))
	}
}
