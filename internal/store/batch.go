package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/prom"
)

// BatchClient is what a Batcher sends through: redis.UniversalClient.
type BatchClient interface {
	Scripter
	PipelineClient
}

// maxBatch bounds the commands of one pipeline: a few hundred small script
// calls stay far below a socket buffer, and a deeper queue is split over
// the pipelines in flight.
const maxBatch = 256

// Batcher is automatic pipelining for the request path: the script calls
// of concurrent Checks are queued, and up to maxInFlight pipelines at a
// time each take whatever is queued and send it in one write, reading the
// replies in one go. Under load one round trip (and one pair of syscalls
// on each side) carries many Checks; a lone call goes out at once.
//
// Why not go-redis's own AutoPipeliner (v9.23, marked experimental): it
// does not honour a command's context once queued (a caller waits for the
// batch, up to the client's 1 s ReadTimeout), its batches report no round
// trip time, and it retries failed batches unless told otherwise; the
// request path needs a per-call deadline (the adaptive timeout), the round
// trip of batches whose callers gave up (to learn a slow Redis), and no
// resend of a script that may have run. go-redis's connection pool alone
// does not batch: each Check holds its own connection for its own round
// trip (64 callers, 64 connections, 64 writes and reads).
//
// Each call waits at most the AdaptiveTimeout's current value (and its
// context's deadline); a call whose caller is gone before its batch is
// written is not sent. A Batcher is a Scripter, so Script.Run goes through
// it unchanged (NOSCRIPT → EVAL included).
type Batcher struct {
	c           BatchClient
	timeout     *AdaptiveTimeout
	maxInFlight int

	mu       sync.Mutex
	queue    []*pending
	inflight int

	m batchMetrics
}

// Call states: a waiting call is owned by whichever of its caller (gone at
// its deadline) or its batch (answered) moves it on first.
const (
	callWaiting int32 = iota
	callAbandoned
	callAnswered
)

type pending struct {
	// cmd is the batch's own copy of the caller's command, so a batch
	// answering late never writes into a command its caller returned.
	cmd   noRetry
	ctx   context.Context
	since time.Time
	state atomic.Int32
	done  chan struct{}
}

type batchMetrics struct {
	timeouts, callerGone prometheus.Counter
	size                 prometheus.Histogram
	current              prometheus.Gauge
}

// NewBatcher batches over c; t bounds each call.
func NewBatcher(c BatchClient, t *AdaptiveTimeout, maxInFlight int, reg prometheus.Registerer) (*Batcher, error) {
	if c == nil || t == nil {
		return nil, errors.New("store batcher: nil client or timeout")
	}
	timeouts := prom.CounterVec("smartlayer_store_redis_timeouts_total",
		"Request-path Redis calls that got no answer in time, by which bound ended them: adaptive (store.redis.timeout…timeout_max, the fail mode answers) or caller (the Check's own deadline).",
		"by")
	b := &Batcher{c: c, timeout: t, maxInFlight: max(maxInFlight, 1), m: batchMetrics{
		timeouts:   timeouts.WithLabelValues("adaptive"),
		callerGone: timeouts.WithLabelValues("caller"),
		size: prom.Histogram("smartlayer_store_redis_batch_commands",
			"Commands per automatic pipeline (store.redis.batch).", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}),
		current: prom.Gauge("smartlayer_store_redis_timeout_seconds",
			"The request-path Redis timeout in force (adaptive between store.redis.timeout and timeout_max)."),
	}}
	b.m.current.Set(t.Current().Seconds())
	if err := prom.Register(reg, timeouts, b.m.size, b.m.current); err != nil {
		return nil, fmt.Errorf("store batcher metrics: %w", err)
	}
	return b, nil
}

// Timeout is the current per-call timeout.
func (b *Batcher) Timeout() time.Duration { return b.timeout.Current() }

// Process sends cmd in the next pipeline and waits for its answer, the
// current timeout or ctx, whichever comes first. Commands other than
// *redis.Cmd (what scripts use) are sent on their own.
func (b *Batcher) Process(ctx context.Context, cmd redis.Cmder) error {
	var c *redis.Cmd
	switch v := cmd.(type) {
	case noRetry:
		c = v.Cmd
	case *redis.Cmd:
		c = v
	default:
		return b.c.Process(ctx, cmd)
	}
	p := &pending{cmd: noRetry{c.Clone().(*redis.Cmd)}, ctx: ctx, since: time.Now(), done: make(chan struct{})}
	timer := time.NewTimer(b.timeout.Current())
	defer timer.Stop()
	b.enqueue(p)
	var err error
	gone := b.m.timeouts
	select {
	case <-p.done:
	case <-timer.C:
		err = fmt.Errorf("redis: no answer within the adaptive timeout (%s): %w", b.timeout.Current(), context.DeadlineExceeded)
	case <-ctx.Done():
		err, gone = ctx.Err(), b.m.callerGone
	}
	if err != nil {
		if p.state.CompareAndSwap(callWaiting, callAbandoned) {
			gone.Inc()
			c.SetErr(err)
			return err
		}
		<-p.done // answered meanwhile: take the answer
	}
	c.SetVal(p.cmd.Val())
	c.SetErr(p.cmd.Err())
	return c.Err()
}

func (b *Batcher) enqueue(p *pending) {
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := b.inflight < b.maxInFlight
	if start {
		b.inflight++
	}
	b.mu.Unlock()
	if start {
		go b.flush()
	}
}

// flush sends batches until the queue is empty.
func (b *Batcher) flush() {
	var batch []*pending
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.inflight--
			b.mu.Unlock()
			return
		}
		batch = append(batch[:0], b.queue[:n]...)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		b.send(batch)
	}
}

// send runs one pipeline of the calls still waiting. Its deadline is the
// ceiling, not the callers': a batch whose callers gave up still measures
// how long Redis took, which is what raises the timeout on a slow host.
func (b *Batcher) send(batch []*pending) {
	live := batch[:0]
	for _, p := range batch {
		if p.state.Load() == callWaiting && p.ctx.Err() == nil {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return
	}
	b.m.size.Observe(float64(len(live)))
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout.Ceiling())
	_, err := b.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, p := range live {
			_ = pipe.Process(ctx, p.cmd)
		}
		return nil
	})
	cancel()
	if answered(err) {
		// The oldest call waited longest: queueing plus the round trip.
		b.timeout.Observe(time.Since(live[0].since))
		b.m.current.Set(b.timeout.Current().Seconds())
	}
	for _, p := range live {
		if p.state.CompareAndSwap(callWaiting, callAnswered) {
			close(p.done)
		}
	}
}

// answered reports whether a pipeline's error still means Redis replied
// (none, or a Redis error reply such as NOSCRIPT or a script error), as
// opposed to a connection failure or a timeout.
func answered(err error) bool {
	var re redis.Error
	return err == nil || errors.Is(err, redis.Nil) || errors.As(err, &re)
}
