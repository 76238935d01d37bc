package accesslog

// The batch writer: insert workers with retries into ClickHouse, the flush
// timer, and the replayer that empties the spool in order.

import (
	"context"
	"errors"
	"time"
)

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
		s.warn(&s.lastInsertWarn, "insert into ClickHouse failed; retrying or spooling", "rows", b.n, "err", err)
		return err
	}
	s.m.batches.WithLabelValues("ok").Inc()
	s.m.rowsWritten.Add(float64(b.n))
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
			var nv *NewerVersionError
			switch {
			case errors.As(err, &nv):
				// After a rollback: the rows are not lost, a newer build
				// takes the file back when it opens the spool.
				s.log.Warn("spool file written by a newer smartlayer; kept for it", "file", nv.File, "version", nv.Version)
				if aerr := s.sp.setAside(f); aerr != nil {
					s.log.Error("spool set aside failed", "err", aerr)
					return
				}
				continue
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
