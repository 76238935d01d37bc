package accesslog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/peer"
)

// Response is the outcome of one HTTP request Envoy logged.
type Response struct {
	// ClientIP is the downstream address Envoy saw.
	ClientIP string
	// Status is the response code Envoy sent.
	Status int
	// Denied says smartlayer itself denied the request (ext_authz metadata
	// or UAEX), so scoring can leave its own 403s and 429s out of a
	// client's error rate.
	Denied bool
	At     time.Time
}

// Feedback receives the outcome of every HTTP request Envoy logged, whether
// or not the row is stored (scoring feeds its error-rate windows from it):
// one call per ALS message, leaving out entries without a client IP or a
// response code. It is called on the stream's goroutine, so it must not
// block, and it must not keep rs.
type Feedback interface {
	ObserveResponses(ctx context.Context, rs []Response)
}

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

	mu      sync.Mutex
	cur     []Row
	lastLen int // rows in the last sealed batch: the next one's capacity hint
	closing bool
	started bool

	queue   chan *batch
	spare   chan []Row    // row slices of delivered batches, for new ones
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
		spare: make(chan []Row, 2),
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
	sp, err := openSpool(dir, cfg.SpoolMaxBytes, func(files int, bytes int64) {
		s.m.spoolFiles.Set(float64(files))
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
	return s, nil
}

// NewServer returns a gRPC server with opts that serves the
// AccessLogService. Its codec decodes access log messages straight into rows
// (wire.go); other messages go to gRPC's proto codec, so more services can
// be registered on it.
func (s *Service) NewServer(opts ...grpc.ServerOption) *grpc.Server {
	g := grpc.NewServer(append(opts, grpc.ForceServerCodecV2(alsCodec{encoding.GetCodecV2(protoCodecName)}))...)
	g.RegisterService(&alsServiceDesc, s)
	return g
}

// streamAccessLogs serves one Envoy stream. The identifier (node) arrives
// only on a stream's first message and holds for the whole stream.
func (s *Service) streamAccessLogs(stream grpc.ServerStream) error {
	s.m.activeStreams.Inc()
	defer s.m.activeStreams.Dec()
	ctx := stream.Context()
	f := &frame{mp: &s.mp}
	var obs []Response
	for {
		f.received, f.err = s.now(), nil
		err := stream.RecvMsg(f)
		if errors.Is(err, io.EOF) {
			return stream.SendMsg(&alsv3.StreamAccessLogsResponse{})
		}
		if f.err != nil {
			// gRPC has ended the stream (Internal, naming the decode
			// error). The message's entries are lost; the ones before
			// it are in, and Envoy reconnects.
			s.m.malformed.Inc()
			var from string
			if p, ok := peer.FromContext(ctx); ok {
				from = p.Addr.String()
			}
			s.warn(&s.lastMalformedWarn, "malformed access log message: stream ended", "peer", from, "err", f.err)
			return err
		}
		if err != nil {
			return err
		}
		s.tcpEntries.Add(float64(f.tcp))
		s.invalidEntries.Add(float64(f.invalid))
		s.intermediateEntries.Add(float64(f.intermediate))
		s.httpEntries.Add(float64(len(f.rows)))
		if s.fb != nil {
			obs = obs[:0]
			for i := range f.rows {
				r := &f.rows[i]
				if f.peers[i] == "" || r.Status == 0 {
					continue
				}
				obs = append(obs, Response{ClientIP: f.peers[i], Status: int(r.Status), Denied: r.Blocked,
					At: time.Unix(r.Unix, int64(r.Millis)*int64(time.Millisecond))})
			}
			if len(obs) > 0 {
				s.fb.ObserveResponses(ctx, obs)
			}
		}
		s.add(f.rows)
	}
}

// add copies rows into the current batch, sealing and dispatching full ones.
func (s *Service) add(rows []Row) {
	if len(rows) == 0 {
		return
	}
	if s.ins == nil {
		s.m.dropped.WithLabelValues(dropDisabled).Add(float64(len(rows)))
		return
	}
	var sealed []*batch
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.m.dropped.WithLabelValues(dropClosed).Add(float64(len(rows)))
		s.warn(&s.lastDropWarn, "entries arrived after Close; dropped (stop the gRPC server before Close)", "rows", len(rows))
		return
	}
	for len(rows) > 0 {
		if s.cur == nil {
			s.cur = s.newRows()
		}
		k := min(s.cfg.BatchRows-len(s.cur), len(rows))
		s.cur = append(s.cur, rows[:k]...)
		rows = rows[k:]
		if len(s.cur) >= s.cfg.BatchRows {
			sealed = append(sealed, s.sealLocked())
		}
	}
	s.mu.Unlock()
	for _, b := range sealed {
		s.dispatch(b)
	}
}

// newRows returns an empty slice for the next batch: a delivered batch's
// (reusing it spares the allocator and the GC tens of MB per second), or a
// new one sized like the last batch (+25 %): growing a slice of 50k rows by
// doubling copies it over and over.
func (s *Service) newRows() []Row {
	select {
	case rows := <-s.spare:
		return rows[:0]
	default:
		return make([]Row, 0, min(s.cfg.BatchRows, max(1024, s.lastLen+s.lastLen/4)))
	}
}

// recycle offers the rows of a batch that is done with (inserted or
// spooled) to newRows. Their strings stay referenced until overwritten:
// at most len(spare) batches' worth.
func (s *Service) recycle(b *batch) {
	if cap(b.rows) < s.cfg.BatchRows {
		// A flush_interval batch: not worth keeping, and one too
		// small would grow past batch_rows by doubling.
		return
	}
	select {
	case s.spare <- b.rows:
	default:
	}
	b.rows = nil
}

func (s *Service) sealLocked() *batch {
	b := &batch{rows: s.cur}
	s.lastLen = len(s.cur)
	_, _ = rand.Read(b.id[:]) // never fails (crypto/rand, Go ≥ 1.24)
	s.cur = nil
	return b
}

// flush seals the current batch if it has rows.
func (s *Service) flush() {
	s.mu.Lock()
	var b *batch
	if len(s.cur) > 0 {
		b = s.sealLocked()
	}
	s.mu.Unlock()
	if b != nil {
		s.dispatch(b)
	}
}

// dispatch hands b to the insert queue without waiting; a full queue sends
// it to the spool.
func (s *Service) dispatch(b *batch) {
	select {
	case s.queue <- b:
		s.m.queuedBatches.Inc()
	default:
		s.spoolOrDrop(b)
	}
}

// spoolOrDrop writes b to the spool; only when that fails are rows lost.
func (s *Service) spoolOrDrop(b *batch) {
	err := s.sp.put(b)
	switch {
	case err == nil:
		s.m.spooledBatches.Inc()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	case errors.Is(err, errSpoolFull):
		s.lostRows.Add(int64(len(b.rows)))
		s.m.dropped.WithLabelValues(dropSpoolFull).Add(float64(len(b.rows)))
		s.warn(&s.lastDropWarn, "spool full: rows dropped", "rows", len(b.rows), "spool_max_bytes", s.cfg.SpoolMaxBytes)
	default:
		s.lostRows.Add(int64(len(b.rows)))
		s.m.dropped.WithLabelValues(dropSpoolError).Add(float64(len(b.rows)))
		s.log.Error("spool write failed: rows dropped", "rows", len(b.rows), "err", err)
	}
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

func (s *Service) flushLoop() {
	defer s.running.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.flush()
		}
	}
}

func (s *Service) insertLoop() {
	defer s.running.Done()
	for {
		select {
		case <-s.quit:
			return
		case b := <-s.queue:
			s.m.queuedBatches.Dec()
			s.deliver(b)
		}
	}
}

// deliver inserts b with retries; what does not get in goes to the spool.
func (s *Service) deliver(b *batch) {
	defer s.recycle(b)
	backoff := s.cfg.RetryMinBackoff
	for attempt := 1; ; attempt++ {
		err := s.insertOnce(s.hardCtx, b)
		if err == nil {
			return
		}
		if attempt >= s.cfg.RetryAttempts || !retryable(err) || !s.sleep(backoff) {
			s.spoolOrDrop(b)
			return
		}
		s.m.retries.Inc()
		backoff = min(2*backoff, s.cfg.RetryMaxBackoff)
	}
}

// insertOnce makes one attempt within InsertTimeout and records it.
func (s *Service) insertOnce(parent context.Context, b *batch) error {
	ctx, cancel := context.WithTimeout(parent, s.cfg.InsertTimeout)
	defer cancel()
	start := time.Now()
	err := s.ins.insert(ctx, b)
	s.m.insertSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		var ie *InsertError
		if errors.As(err, &ie) && ie.Ambiguous {
			b.maybeCommitted = true
		}
		s.m.batches.WithLabelValues("error").Inc()
		s.warn(&s.lastInsertWarn, "insert into ClickHouse failed; retrying or spooling", "rows", len(b.rows), "err", err)
		return err
	}
	s.m.batches.WithLabelValues("ok").Inc()
	s.m.rowsWritten.Add(float64(len(b.rows)))
	return nil
}

// sleep waits d, or returns false at once when the service is stopping.
func (s *Service) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.quit:
		return false
	}
}

// replayLoop inserts spooled batches, oldest first, deleting each file only
// after ClickHouse took it. While ClickHouse is down it backs off up to
// RetryMaxBackoff between tries.
func (s *Service) replayLoop() {
	defer s.running.Done()
	backoff := s.cfg.RetryMinBackoff
	var cached *batch // the batch of cachedSeq, kept across failed tries
	var cachedSeq uint64
	for {
		f, ok := s.sp.oldest()
		if !ok {
			select {
			case <-s.quit:
				return
			case <-s.kick:
				continue
			}
		}
		b := cached
		if b == nil || cachedSeq != f.seq {
			var err error
			b, err = s.sp.read(f)
			var ce *CorruptionError
			switch {
			case errors.As(err, &ce):
				s.log.Error("spool file corrupt; moved aside", "err", err)
				s.m.dropped.WithLabelValues(dropCorrupt).Inc()
				if qerr := s.sp.quarantine(f); qerr != nil {
					s.log.Error("spool quarantine failed", "err", qerr)
					return
				}
				continue
			case err != nil:
				s.log.Error("spool read failed", "err", err)
				if !s.sleep(backoff) {
					return
				}
				backoff = min(2*backoff, s.cfg.RetryMaxBackoff)
				continue
			}
			cached, cachedSeq = b, f.seq
		}
		wasAmbiguous := b.maybeCommitted
		if err := s.insertOnce(s.hardCtx, b); err != nil {
			if b.maybeCommitted && !wasAmbiguous {
				// Persist it: after a restart the probe must still run.
				if werr := s.sp.rewrite(f, b); werr != nil {
					s.log.Error("spool rewrite failed", "err", werr)
				}
			}
			s.m.retries.Inc()
			if !s.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, s.cfg.RetryMaxBackoff)
			continue
		}
		if err := s.sp.remove(f); err != nil {
			s.log.Error("spool remove failed", "err", err)
			return
		}
		s.m.replayedBatches.Inc()
		cached, backoff = nil, s.cfg.RetryMinBackoff
	}
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
	if len(s.cur) > 0 {
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
