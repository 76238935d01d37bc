package accesslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// batch is a sealed set of rows on its way to ClickHouse, kept encoded in
// the spool's row form (below) rather than as []Row: a Row is 408 bytes
// before its strings, an encoded one ~150 with them, so the batches that
// wait for ClickHouse (accesslog.queue_batches) hold a third of the memory
// (issue 20: BenchmarkIngestMemory), and the spool writes them as they are.
// data is never changed once the batch is sealed: decoded rows' strings
// point into it.
type batch struct {
	id   [16]byte
	n    int    // rows in data
	data []byte // n rows, appendRow's form (spoolVersion)
	// maybeCommitted: see flagMaybeCommitted.
	maybeCommitted bool
}

// batchOf encodes rows into a new batch (no id).
func batchOf(rows []Row) *batch {
	b := &batch{}
	b.append(rows)
	return b
}

// append encodes rows at the end of an unsealed batch.
func (b *batch) append(rows []Row) {
	for i := range rows {
		b.data = appendRow(b.data, &rows[i])
	}
	b.n += len(rows)
}

// each decodes the rows one at a time into r and calls f after each, in
// order, until f returns an error.
func (b *batch) each(f func(i int, r *Row) error) error {
	d := newRowDecoder(b.data, spoolVersion)
	var r Row
	for i := range b.n {
		if err := d.row(&r); err != nil {
			return fmt.Errorf("batch row %d: %w", i, err)
		}
		if err := f(i, &r); err != nil {
			return err
		}
	}
	return nil
}

// rows decodes every row.
func (b *batch) rows() ([]Row, error) {
	out := make([]Row, 0, b.n)
	err := b.each(func(_ int, r *Row) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

// The spool stores rows in a small self-describing binary form: varints for
// numbers, length-prefixed bytes for strings, in Row field order. It is an
// internal format; the spool header carries its version.

var errShortRow = errors.New("truncated row")

func appendRow(b []byte, r *Row) []byte {
	b = binary.AppendVarint(b, r.Unix)
	b = binary.AppendUvarint(b, uint64(r.Millis))
	for _, s := range [...]string{r.NodeID, r.Method, r.Scheme, r.Authority, r.Path, r.Query, r.RouteName} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(r.Status))
	b = binary.AppendUvarint(b, uint64(r.DurationMs))
	b = binary.AppendUvarint(b, r.BytesIn)
	b = binary.AppendUvarint(b, r.BytesOut)
	for _, s := range [...]string{r.ClientIP, r.UserID, r.Plan, r.UserAgent, r.Referer, r.RequestID,
		r.UpstreamCluster, r.UpstreamHost, r.ResponseFlags} {
		b = appendString(b, s)
	}
	blocked := uint64(0)
	if r.Blocked {
		blocked = 1
	}
	b = binary.AppendUvarint(b, blocked)
	b = appendString(b, r.BlockModule)
	b = appendString(b, r.BlockReason)
	b = binary.AppendUvarint(b, uint64(r.Score))
	b = appendString(b, r.Decision) // spool version 2
	b = appendString(b, r.Rule)     // spool version 3 …
	b = appendString(b, r.Field)
	b = appendString(b, r.Excerpt)
	b = binary.AppendUvarint(b, uint64(r.BehaviorScore))
	b = binary.AppendUvarint(b, uint64(r.PayloadScore))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// rowDecoder reads rows back; the first error sticks. s holds the same bytes
// as b without a copy (b must not change while decoded strings are in use:
// a sealed batch's data, a spool file's bytes), so decoded strings cost no
// allocation.
type rowDecoder struct {
	b   []byte
	s   string
	err error
	// version is the spool format: version 1 rows end at score and get
	// their decision derived from the columns before it.
	version byte
}

func newRowDecoder(b []byte, version byte) rowDecoder {
	return rowDecoder{b: b, s: unsafe.String(unsafe.SliceData(b), len(b)), version: version}
}

func (d *rowDecoder) skip(n int) {
	d.b, d.s = d.b[n:], d.s[n:]
}

func (d *rowDecoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortRow
		return 0
	}
	if v > max {
		d.err = fmt.Errorf("value %d out of range", v)
		return 0
	}
	d.skip(n)
	return v
}

// varint reads a zig-zag encoded signed varint, as binary.Varint does.
func (d *rowDecoder) varint() int64 {
	ux := d.uvarint(math.MaxUint64)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *rowDecoder) string() string {
	n := d.uvarint(uint64(len(d.b)))
	if d.err != nil {
		return ""
	}
	s := d.s[:n]
	d.skip(int(n))
	return s
}

func (d *rowDecoder) row(r *Row) error {
	r.Unix = d.varint()
	r.Millis = uint16(d.uvarint(999))
	for _, p := range [...]*string{&r.NodeID, &r.Method, &r.Scheme, &r.Authority, &r.Path, &r.Query, &r.RouteName} {
		*p = d.string()
	}
	r.Status = uint16(d.uvarint(math.MaxUint16))
	r.DurationMs = uint32(d.uvarint(math.MaxUint32))
	r.BytesIn = d.uvarint(math.MaxUint64)
	r.BytesOut = d.uvarint(math.MaxUint64)
	for _, p := range [...]*string{&r.ClientIP, &r.UserID, &r.Plan, &r.UserAgent, &r.Referer, &r.RequestID,
		&r.UpstreamCluster, &r.UpstreamHost, &r.ResponseFlags} {
		*p = d.string()
	}
	r.Blocked = d.uvarint(1) == 1
	r.BlockModule = d.string()
	r.BlockReason = d.string()
	r.Score = uint16(d.uvarint(math.MaxUint16))
	if d.version >= 2 {
		r.Decision = d.string()
	} else {
		r.Decision = legacyDecision(r)
	}
	if d.version >= 3 {
		r.Rule, r.Field, r.Excerpt = d.string(), d.string(), d.string()
		r.BehaviorScore = uint16(d.uvarint(math.MaxUint16))
		r.PayloadScore = uint16(d.uvarint(math.MaxUint16))
	}
	if d.err == nil && (r.Unix < 0 || r.Unix >= maxUnix) {
		d.err = fmt.Errorf("timestamp %d out of range", r.Unix)
	}
	return d.err
}

// legacyDecision is the decision of a row spooled before the decision
// column existed, read from the columns that were there; the schema
// migration uses the same rule (decisionDefault) for rows already stored.
func legacyDecision(r *Row) string {
	switch {
	case r.Blocked && r.BlockModule == moduleFailMode:
		return DecisionFailedClosed
	case r.Blocked:
		return DecisionDenied
	case r.BlockModule == moduleFailMode:
		return DecisionFailedOpen
	case r.BlockReason != "":
		return DecisionShadow
	}
	return DecisionAllowed
}
