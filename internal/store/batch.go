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
	pool     sync.Pool // *pending

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
	// cmd is the batch's own command (Process copies the caller's): a
	// batch answering late never writes into a command its caller read.
	cmd   noRetry
	ctx   context.Context
	since time.Time
	state atomic.Int32
	// done gets one value when the batch answered a waiting call.
	done  chan struct{}
	timer *time.Timer
	// refs: the caller and the batch each drop theirs when done with it;
	// the last one returns it to the pool (with its channel and timer).
	refs atomic.Int32
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
	b.pool.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &pending{done: make(chan struct{}, 1), timer: t}
	}
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
// *redis.Cmd (what scripts use) are sent on their own. Script.Run takes
// the cheaper way, do, which needs no copy of the command.
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
	r := b.do(ctx, c.Clone().(*redis.Cmd))
	c.SetVal(r.Val())
	c.SetErr(r.Err())
	return c.Err()
}

// do sends c in the next pipeline and waits for its answer, the current
// timeout or ctx, whichever comes first. It returns c once answered (the
// batch is done with it); a call that gets no answer in time returns a new
// command holding the error, and c is left to the batch.
//
// The pending record, its channel and its timer come from a pool: per
// Check they were 5 of the Redis path's ~27 allocations
// (BenchmarkRedisCheckParallel -benchmem).
func (b *Batcher) do(ctx context.Context, c *redis.Cmd) *redis.Cmd {
	p := b.pool.Get().(*pending)
	p.cmd, p.ctx, p.since = noRetry{c}, ctx, time.Now()
	p.state.Store(callWaiting)
	p.refs.Store(2)
	cur := b.timeout.Current()
	p.timer.Reset(cur)
	b.enqueue(p)
	var err error
	gone := b.m.timeouts
	select {
	case <-p.done:
	case <-p.timer.C:
		err = fmt.Errorf("redis: no answer within the adaptive timeout (%s): %w", cur, context.DeadlineExceeded)
	case <-ctx.Done():
		err, gone = ctx.Err(), b.m.callerGone
	}
	p.timer.Stop()
	if err != nil {
		if p.state.CompareAndSwap(callWaiting, callAbandoned) {
			b.release(p)
			gone.Inc()
			e := redis.NewCmd(ctx, c.Args()...)
			e.SetErr(err)
			return e
		}
		<-p.done // answered meanwhile: take the answer
	}
	b.release(p)
	return c
}

// release drops one reference to p; the last returns it to the pool. Its
// channel is empty then: the batch sends on it only to a waiting call,
// whose caller takes the value.
func (b *Batcher) release(p *pending) {
	if p.refs.Add(-1) == 0 {
		p.cmd, p.ctx = noRetry{}, nil
		b.pool.Put(p)
	}
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

// TakeFront moves the first n elements of *queue into dst[:0] and returns
// it; the rest move up, and the slots they leave are cleared (no pointer
// outlives its turn in the queue).
func TakeFront[T any](queue *[]T, dst []T, n int) []T {
	q := *queue
	dst = append(dst[:0], q[:n]...)
	rest := copy(q, q[n:])
	clear(q[rest:])
	*queue = q[:rest]
	return dst
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
		batch = TakeFront(&b.queue, batch, n)
		b.mu.Unlock()
		b.send(batch)
	}
}

// send runs one pipeline of the calls still waiting. Its deadline is the
// ceiling, not the callers': a batch whose callers gave up still measures
// how long Redis took, which is what raises the timeout on a slow host.
func (b *Batcher) send(batch []*pending) {
	// The batch's references go once its calls are answered or dropped
	// (live is batch's prefix: released below, not while in use).
	defer func() {
		for _, p := range batch {
			b.release(p)
		}
	}()
	live := make([]*pending, 0, len(batch))
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
			p.done <- struct{}{}
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
