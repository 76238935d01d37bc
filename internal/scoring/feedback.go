package scoring

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
)

// responseObserver is what Feedback needs from behaviour scoring.
type responseObserver interface {
	ObserveResponses(ctx context.Context, rs []UpstreamResponse) error
}

// Feedback carries response codes from the access-log stream to behaviour
// scoring's error windows. The ALS stream must never wait on the store, so
// the responses of each ALS message go through a bounded queue, as one
// batch, to a few workers; when the queue is full a batch is dropped and
// counted (an error rate is a statistic, a dropped sample only delays it).
type Feedback struct {
	obs     responseObserver
	timeout time.Duration // per batch
	logger  *slog.Logger
	queue   chan []UpstreamResponse
	done    chan struct{}
	once    sync.Once
	dropped prometheus.Counter
	wg      sync.WaitGroup

	decisions *Decisions    // nil: every response counts (tests, no binding)
	maxSkew   time.Duration // entry times are clamped to now ± maxSkew
	now       func() time.Time
}

// Bind makes only responses to this deployment's decisions count, and
// clamps every entry's time to now ± maxSkew: a forged or skewed
// timestamp (year 2149) must not move a client's windows. Call it before
// the first Offer.
func (f *Feedback) Bind(d *Decisions, maxSkew time.Duration) {
	f.decisions, f.maxSkew = d, maxSkew
}

// NewFeedback starts workers that drain a queue of size batches (ALS
// messages) into obs (a *Behavior); timeout bounds the store calls of one
// batch.
func NewFeedback(obs responseObserver, timeout time.Duration, size, workers int, logger *slog.Logger, reg prometheus.Registerer) *Feedback {
	f := &Feedback{
		obs: obs, timeout: timeout, logger: logger, now: time.Now,
		queue: make(chan []UpstreamResponse, size),
		done:  make(chan struct{}),
		dropped: prom.Counter("smartlayer_feedback_dropped_total",
			"Response codes from the access log not fed to behaviour scoring because its queue was full."),
	}
	if reg != nil {
		reg.MustRegister(f.dropped)
	}
	for range workers {
		f.wg.Add(1)
		go f.work()
	}
	return f
}

// Offer queues one batch of responses (one ALS message's); it never
// blocks. The batch must not be reused by the caller.
func (f *Feedback) Offer(batch []UpstreamResponse) {
	select {
	case <-f.done:
		return
	default:
	}
	select {
	case f.queue <- batch:
	default:
		f.dropped.Add(float64(len(batch)))
	}
}

func (f *Feedback) work() {
	defer f.wg.Done()
	for {
		select {
		case rs := <-f.queue:
			f.observe(rs)
		case <-f.done:
			for { // drain what was queued before Close
				select {
				case rs := <-f.queue:
					f.observe(rs)
				default:
					return
				}
			}
		}
	}
}

// observe feeds one batch (one store round trip) under one deadline.
func (f *Feedback) observe(rs []UpstreamResponse) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if f.decisions != nil {
		if rs = f.decisions.match(ctx, rs); len(rs) == 0 {
			return
		}
	}
	if f.maxSkew > 0 {
		now := f.now()
		for i := range rs {
			if rs[i].At.Before(now.Add(-f.maxSkew)) {
				rs[i].At = now.Add(-f.maxSkew)
			} else if rs[i].At.After(now.Add(f.maxSkew)) {
				rs[i].At = now.Add(f.maxSkew)
			}
		}
	}
	if err := f.obs.ObserveResponses(ctx, rs); err != nil {
		f.logger.Debug("feedback to behaviour scoring failed", "responses", len(rs), "err", err)
	}
}

// Close stops the workers after the queue drains. The queue channel is
// never closed, so a late ObserveResponses from a stream still shutting
// down is ignored rather than a panic.
func (f *Feedback) Close() {
	f.once.Do(func() { close(f.done) })
	f.wg.Wait()
}
