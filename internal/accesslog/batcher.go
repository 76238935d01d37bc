package accesslog

// The batcher: rows from every stream go into one current batch, sealed
// by size or by the flush timer and dispatched to the insert queue, or to
// the spool when the queue is full.

import (
	"bytes"
	"crypto/rand"
	"errors"
)

// add encodes rows into the current batch, sealing and dispatching full
// ones. The rows are copied: the caller reuses them.
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
			s.cur = s.newBatch()
		}
		k := min(s.cfg.BatchRows-s.cur.n, len(rows))
		s.cur.append(rows[:k])
		rows = rows[k:]
		if s.cur.n >= s.cfg.BatchRows {
			sealed = append(sealed, s.sealLocked())
		}
	}
	s.mu.Unlock()
	for _, b := range sealed {
		s.dispatch(b)
	}
}

// newBatch returns an empty batch with room for as many bytes as the last
// sealed one (+1/16, at least 64 KiB): growing a buffer of megabytes by
// doubling copies it over and over, and room the batch does not use waits
// in the queue with it.
func (s *Service) newBatch() *batch {
	return &batch{data: make([]byte, 0, max(64<<10, s.lastBytes+s.lastBytes/16))}
}

func (s *Service) sealLocked() *batch {
	b := s.cur
	b.enc = nil
	s.lastBytes = len(b.data)
	if cap(b.data) > len(b.data)+len(b.data)/4+64<<10 {
		// It outgrew its room and doubled: a queued batch would hold up
		// to twice its size. One copy makes it exact (the alloc profile
		// of an ALS run showed ~40 % of the queue's memory as such slack).
		b.data = bytes.Clone(b.data)
	}
	_, _ = rand.Read(b.id[:]) // never fails (crypto/rand, Go ≥ 1.24)
	s.cur = nil
	return b
}

// flush seals the current batch if it has rows.
func (s *Service) flush() {
	s.mu.Lock()
	var b *batch
	if s.cur != nil && s.cur.n > 0 {
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
		s.lostRows.Add(int64(b.n))
		s.m.dropped.WithLabelValues(dropSpoolFull).Add(float64(b.n))
		s.warn(&s.lastDropWarn, "spool full: rows dropped", "rows", b.n, "spool_max_bytes", s.cfg.SpoolMaxBytes)
	default:
		s.lostRows.Add(int64(b.n))
		s.m.dropped.WithLabelValues(dropSpoolError).Add(float64(b.n))
		s.log.Error("spool write failed: rows dropped", "rows", b.n, "err", err)
	}
}
