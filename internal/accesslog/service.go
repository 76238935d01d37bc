package accesslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// Service is the ALS v3 receiver and the ClickHouse pipeline behind it:
//
//	stream handler ─map─▶ current batch ─seal (batch_rows | flush_interval)─▶ queue ─▶ insert workers ─▶ ClickHouse
//	                                          queue full ─▶ spool ◀─ failed after retries      │
//	                                                         └──── replayer (oldest first) ──────┘
//
// The handler never waits for ClickHouse: a full queue sends the batch to the
// disk spool, and only a full spool drops rows (counted and logged).
type Service struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	fb  Feedback
	mp  mapper
	now func() time.Time
	ins inserter // nil: no ClickHouse, rows are discarded
	sp  *spool

	httpEntries, tcpEntries, invalidEntries, intermediateEntries prometheus.Counter

	mu        sync.Mutex
	cur       *batch // being filled; nil until the next row
	lastBytes int    // size of the last sealed batch: the next one's capacity hint
	closing   bool
	started   bool

	queue   chan *batch
	stop    chan struct{} // closed by Close
	quit    chan struct{} // closed when Run's loops must end (Close or Run's ctx)
	kick    chan struct{} // wakes the replayer
	running sync.WaitGroup

	// hardCtx bounds in-flight inserts; Close cancels it at its deadline.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	runOnce, closeOnce sync.Once
	// unix nanos of the last rate-limited warning, per kind, so that
	// insert failures never hide drop warnings
	lastInsertWarn, lastDropWarn, lastMalformedWarn atomic.Int64
	lostRows                                        atomic.Int64 // rows the spool could not take
}

// New builds the receiver. conn nil means no ClickHouse is configured: the
// receiver still serves Envoy and feeds fb, and discards rows (one log line,
// metric dropped_rows_total{reason="disabled"}). fb, logger and reg may be
// nil. The caller runs EnsureSchema first, then Run, and Close on shutdown.
func New(cfg Config, conn driver.Conn, fb Feedback, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	var ins inserter
	if conn != nil {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		w, err := newCHWriter(conn, cfg.ClickHouse.Database)
		if err != nil {
			return nil, err
		}
		ins = w
	}
	return newService(cfg, ins, fb, logger, reg)
}

func newService(cfg Config, ins inserter, fb Feedback, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:   cfg,
		log:   logger.With("component", "accesslog"),
		m:     newMetrics(),
		fb:    fb,
		mp:    newMapper(cfg),
		now:   time.Now,
		ins:   ins,
		queue: make(chan *batch, cfg.QueueBatches),
		stop:  make(chan struct{}),
		quit:  make(chan struct{}),
		kick:  make(chan struct{}, 1),
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	s.httpEntries = s.m.entries.WithLabelValues("http")
	s.tcpEntries = s.m.entries.WithLabelValues("tcp")
	s.invalidEntries = s.m.entries.WithLabelValues("invalid")
	s.intermediateEntries = s.m.entries.WithLabelValues("intermediate")
	if ins == nil {
		if err := s.m.register(reg); err != nil {
			s.hardCancel()
			return nil, err
		}
		s.log.Warn("no ClickHouse configured (accesslog.clickhouse.addr): access log rows are discarded; feedback still runs")
		return s, nil
	}
	dir := cfg.SpoolDir
	if dir == "" {
		dir = DefaultSpoolDir()
	}
	sp, err := openSpool(dir, cfg.SpoolMaxBytes, func(files, newer int, bytes int64) {
		s.m.spoolFiles.Set(float64(files))
		s.m.spoolNewer.Set(float64(newer))
		s.m.spoolBytes.Set(float64(bytes))
	})
	if err != nil {
		s.hardCancel()
		return nil, err
	}
	s.sp = sp
	if err := s.m.register(reg); err != nil {
		s.hardCancel()
		return nil, err
	}
	if files, bytes := sp.stats(); files > 0 {
		s.log.Info("spool holds batches from an earlier run; replaying them", "dir", dir, "files", files, "bytes", bytes)
	}
	if n := sp.newerFiles(); n > 0 {
		s.log.Warn("spool holds files written by a newer smartlayer; kept for it (*.newer)", "dir", dir, "files", n)
	}
	return s, nil
}

// warn logs at most once every 10 s, so an outage does not flood the log
// (the metrics carry the counts).
func (s *Service) warn(last *atomic.Int64, msg string, args ...any) {
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(10*time.Second) || !last.CompareAndSwap(prev, now) {
		return
	}
	s.log.Warn(msg, args...)
}

// Run runs the flush timer, MaxInflight insert workers and the spool
// replayer until ctx ends or Close is called. Without ClickHouse it only
// waits. Call it once.
func (s *Service) Run(ctx context.Context) error {
	ran := false
	s.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("accesslog: Run called twice")
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.started = true
	if s.ins != nil {
		s.running.Add(2 + s.cfg.MaxInflight)
	}
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		close(s.quit)
	}()
	if s.ins == nil {
		<-s.quit
		return nil
	}
	go s.flushLoop()
	go s.replayLoop()
	for range s.cfg.MaxInflight {
		go s.insertLoop()
	}
	<-s.quit
	s.running.Wait()
	return nil
}

// Close flushes everything: it stops intake, lets in-flight inserts finish,
// inserts what is queued and the partial batch while ctx allows, and spools
// the rest (fsync'd). Stop the gRPC server first (GracefulStop) so no stream
// is still adding rows. Batches left in the spool are replayed by the next
// process. Close returns an error only if rows were lost.
func (s *Service) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() { err = s.close(ctx) })
	return err
}

func (s *Service) close(ctx context.Context) error {
	defer s.hardCancel()
	s.mu.Lock()
	s.closing = true
	var last *batch
	if s.cur != nil && s.cur.n > 0 {
		last = s.sealLocked()
	}
	s.mu.Unlock()
	close(s.stop)
	if s.ins == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.hardCancel() // cut in-flight inserts short; they spool
		<-done
	}
	var pending []*batch
	for more := true; more; {
		select {
		case b := <-s.queue:
			s.m.queuedBatches.Dec()
			pending = append(pending, b)
		default:
			more = false
		}
	}
	if last != nil {
		pending = append(pending, last)
	}
	before := s.lostRows.Load()
	failed := false // after one failure, spool the rest at once
	for _, b := range pending {
		if !failed && ctx.Err() == nil {
			if s.insertOnce(ctx, b) == nil {
				continue
			}
			failed = true
		}
		s.spoolOrDrop(b)
	}
	if lost := s.lostRows.Load() - before; lost > 0 {
		return fmt.Errorf("accesslog close: %d rows dropped (spool full or failing)", lost)
	}
	return nil
}
