package accesslog

// The batcher: rows from every stream go into one current batch, sealed
// by size or by the flush timer and dispatched to the insert queue, or to
// the spool when the queue is full.

import (
	"crypto/rand"
	"errors"
)

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
