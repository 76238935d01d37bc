package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// responseObserver is what feedback needs from behaviour scoring.
type responseObserver interface {
	ObserveResponse(ctx context.Context, clientKey string, status int, ownDenial bool, at time.Time) error
}

type observation struct {
	client string
	status int
	denied bool
	at     time.Time
}

// feedback carries response codes from the access-log stream to behaviour
// scoring's error windows. The ALS stream must never wait on the store, so
// observations go through a bounded queue to a few workers; when the queue
// is full they are dropped and counted (an error rate is a statistic, a
// dropped sample only delays it).
type feedback struct {
	obs     responseObserver
	timeout time.Duration
	logger  *slog.Logger
	queue   chan observation
	done    chan struct{}
	once    sync.Once
	dropped prometheus.Counter
	wg      sync.WaitGroup
}

func newFeedback(obs responseObserver, timeout time.Duration, size, workers int, logger *slog.Logger, reg prometheus.Registerer) *feedback {
	f := &feedback{
		obs: obs, timeout: timeout, logger: logger,
		queue: make(chan observation, size),
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

// ObserveResponse implements accesslog.Feedback; it never blocks.
func (f *feedback) ObserveResponse(_ context.Context, clientIP string, status int, denied bool, at time.Time) {
	if clientIP == "" || status == 0 {
		return
	}
	select {
	case <-f.done:
		return
	default:
	}
	select {
	case f.queue <- observation{clientIP, status, denied, at}:
	default:
		f.dropped.Inc()
	}
}

func (f *feedback) work() {
	defer f.wg.Done()
	for {
		select {
		case o := <-f.queue:
			f.observe(o)
		case <-f.done:
			for { // drain what was queued before Close
				select {
				case o := <-f.queue:
					f.observe(o)
				default:
					return
				}
			}
		}
	}
}

func (f *feedback) observe(o observation) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if err := f.obs.ObserveResponse(ctx, o.client, o.status, o.denied, o.at); err != nil {
		f.logger.Debug("feedback to behaviour scoring failed", "client", o.client, "err", err)
	}
}

// Close stops the workers after the queue drains. The queue channel is
// never closed, so a late ObserveResponse from a stream still shutting down
// is ignored rather than a panic.
func (f *feedback) Close() {
	f.once.Do(func() { close(f.done) })
	f.wg.Wait()
}
