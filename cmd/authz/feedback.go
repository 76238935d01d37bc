package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/scoring"
)

// responseObserver is what feedback needs from behaviour scoring.
type responseObserver interface {
	ObserveResponses(ctx context.Context, rs []scoring.UpstreamResponse) error
}

// feedback carries response codes from the access-log stream to behaviour
// scoring's error windows. The ALS stream must never wait on the store, so
// the responses of each ALS message go through a bounded queue, as one
// batch, to a few workers; when the queue is full a batch is dropped and
// counted (an error rate is a statistic, a dropped sample only delays it).
type feedback struct {
	obs     responseObserver
	timeout time.Duration // per batch
	logger  *slog.Logger
	queue   chan []scoring.UpstreamResponse
	done    chan struct{}
	once    sync.Once
	dropped prometheus.Counter
	wg      sync.WaitGroup
}

// newFeedback starts workers that drain a queue of size batches (ALS
// messages); timeout bounds the store calls of one batch.
func newFeedback(obs responseObserver, timeout time.Duration, size, workers int, logger *slog.Logger, reg prometheus.Registerer) *feedback {
	f := &feedback{
		obs: obs, timeout: timeout, logger: logger,
		queue: make(chan []scoring.UpstreamResponse, size),
		done:  make(chan struct{}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartlayer_feedback_dropped_total",
			Help: "Response codes from the access log not fed to behaviour scoring because its queue was full.",
		}),
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

// ObserveResponses implements accesslog.Feedback; it never blocks.
func (f *feedback) ObserveResponses(_ context.Context, rs []accesslog.Response) {
	select {
	case <-f.done:
		return
	default:
	}
	batch := make([]scoring.UpstreamResponse, len(rs)) // the stream reuses rs
	for i, r := range rs {
		batch[i] = scoring.UpstreamResponse{ClientIP: r.ClientIP, Status: r.Status, OwnDenial: r.Denied, At: r.At}
	}
	select {
	case f.queue <- batch:
	default:
		f.dropped.Add(float64(len(rs)))
	}
}

func (f *feedback) work() {
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
func (f *feedback) observe(rs []scoring.UpstreamResponse) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if err := f.obs.ObserveResponses(ctx, rs); err != nil {
		f.logger.Debug("feedback to behaviour scoring failed", "responses", len(rs), "err", err)
	}
}

// Close stops the workers after the queue drains. The queue channel is
// never closed, so a late ObserveResponses from a stream still shutting
// down is ignored rather than a panic.
func (f *feedback) Close() {
	f.once.Do(func() { close(f.done) })
	f.wg.Wait()
}
