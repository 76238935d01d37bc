package accesslog

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// batch is a sealed set of rows on its way to ClickHouse, kept encoded in
// the spool's row form (below) rather than as []Row: a Row is 408 bytes
// before its strings, an encoded one ~110 with them (BenchmarkQueueMemory:
// 538 bytes a queued row as []Row, 373 encoded, 128 with the dictionary), so the
// batches that wait for ClickHouse (accesslog.queue_batches) hold a fraction
// of the memory (issue 20), and the spool writes them as they are. data is
// never changed once the batch is sealed: decoded rows' strings point into
// it.
type batch struct {
	id   [16]byte
	n    int    // rows in data
	data []byte // n rows, appendRow's form (spoolVersion)
	// maybeCommitted: see flagMaybeCommitted.
	maybeCommitted bool
	// enc is the encoder's dictionary while the batch is filled; nil once
	// sealed.
	enc *rowEncoder
}

// batchOf encodes rows into a new batch with an id of its own: batches
// never share an insert's query id (TestProbeSkipsCommittedDays saw another
// test's zero-id insert as "the earlier attempt still running").
func batchOf(rows []Row) *batch {
	b := &batch{}
	_, _ = rand.Read(b.id[:]) // never fails (crypto/rand, Go ≥ 1.24)
	b.append(rows)
	b.enc = nil
	return b
}

// append encodes rows at the end of an unsealed batch.
func (b *batch) append(rows []Row) {
	if b.enc == nil {
		b.enc = &rowEncoder{}
	}
	for i := range rows {
		b.data = b.enc.appendRow(b.data, &rows[i])
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

// rowEncoder writes rows of one batch. The low-cardinality fields (those
// the wire decoder interns: one string per distinct value and stream, see
// interner) are written once per batch and referred to afterwards: a user
// agent of 100 bytes repeated on every row was most of an encoded row.
//
// In spool version 4 such a field is uvarint(len<<1) and the bytes (a
// literal; one of at least dictMinLen bytes becomes the batch's next
// dictionary entry) or uvarint(index<<1 | 1) (a dictionary entry). The
// encoder recognises a repeat by the string's data pointer and length in a
// small two-way cache: no hashing of the bytes, and a value that
// misses (another stream's copy, an evicted slot) is only written again.
type rowEncoder struct {
	cache [dictSlots]dictSlot
	next  uint32 // index of the next dictionary entry
}

type dictSlot struct {
	p   *byte
	n   int
	idx uint32
}

const (
	dictSlots = 256
	// dictMinLen: shorter values are cheaper as literals.
	dictMinLen = 4
)

func (e *rowEncoder) appendRow(b []byte, r *Row) []byte {
	b = binary.AppendVarint(b, r.Unix)
	b = binary.AppendUvarint(b, uint64(r.Millis))
	b = e.appendDict(b, r.NodeID)
	b = appendString(b, r.Method)
	b = e.appendDict(b, r.Scheme)
	b = e.appendDict(b, r.Authority)
	b = appendString(b, r.Path)
	b = appendString(b, r.Query)
	b = e.appendDict(b, r.RouteName)
	b = binary.AppendUvarint(b, uint64(r.Status))
	b = binary.AppendUvarint(b, uint64(r.DurationMs))
	b = binary.AppendUvarint(b, r.BytesIn)
	b = binary.AppendUvarint(b, r.BytesOut)
	b = appendString(b, r.ClientIP)
	b = appendString(b, r.UserID)
	b = e.appendDict(b, r.Plan)
	b = e.appendDict(b, r.UserAgent)
	b = e.appendDict(b, r.Referer)
	b = appendString(b, r.RequestID)
	b = e.appendDict(b, r.UpstreamCluster)
	b = e.appendDict(b, r.UpstreamHost)
	b = e.appendDict(b, r.ResponseFlags)
	blocked := uint64(0)
	if r.Blocked {
		blocked = 1
	}
	b = binary.AppendUvarint(b, blocked)
	b = e.appendDict(b, r.BlockModule)
	b = e.appendDict(b, r.BlockReason)
	b = binary.AppendUvarint(b, uint64(r.Score))
	b = e.appendDict(b, r.Decision) // spool version 2
	b = e.appendDict(b, r.Rule)     // spool version 3 …
	b = e.appendDict(b, r.Field)
	b = appendString(b, r.Excerpt)
	b = binary.AppendUvarint(b, uint64(r.BehaviorScore))
	b = binary.AppendUvarint(b, uint64(r.PayloadScore))
	return b
}

// appendDict writes a dictionary field (spool version 4).
func (e *rowEncoder) appendDict(b []byte, s string) []byte {
	if len(s) < dictMinLen {
		b = binary.AppendUvarint(b, uint64(len(s))<<1)
		return append(b, s...)
	}
	p := unsafe.StringData(s)
	// Two ways: two hot values whose slots collide (one stream's user
	// agent and another's copy, alternating row by row) both stay; the
	// pair is kept most recent first.
	pair := e.cache[(uintptr(unsafe.Pointer(p))>>3^uintptr(len(s)))%(dictSlots/2)*2:][:2]
	for i := range pair {
		if pair[i].p == p && pair[i].n == len(s) {
			idx := pair[i].idx
			if i == 1 {
				pair[0], pair[1] = pair[1], pair[0]
			}
			return binary.AppendUvarint(b, uint64(idx)<<1|1)
		}
	}
	pair[1] = pair[0]
	pair[0] = dictSlot{p: p, n: len(s), idx: e.next}
	e.next++
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
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
	// dict holds the dictionary entries read so far (version 4).
	dict []string
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
	if len(d.b) > 0 && d.b[0] < 0x80 && uint64(d.b[0]) <= max {
		// One byte, most of a row's numbers and lengths: binary.Uvarint's
		// loop is not inlined. BenchmarkRowDecode, 12 interleaved runs on
		// the loaded 2-core box: fastest 1065 -> 674 ns/row, median
		// 1670 -> 1150.
		v := uint64(d.b[0])
		d.skip(1)
		return v
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

// dictString reads a dictionary field: from version 4 on, a literal or a
// reference to an earlier one.
func (d *rowDecoder) dictString() string {
	if d.version < 4 {
		return d.string()
	}
	x := d.uvarint(math.MaxUint64)
	if d.err != nil {
		return ""
	}
	if x&1 == 1 {
		if x>>1 >= uint64(len(d.dict)) {
			d.err = fmt.Errorf("dictionary entry %d of %d", x>>1, len(d.dict))
			return ""
		}
		return d.dict[x>>1]
	}
	n := x >> 1
	if n > uint64(len(d.b)) {
		d.err = errShortRow
		return ""
	}
	s := d.s[:n]
	d.skip(int(n))
	if len(s) >= dictMinLen {
		d.dict = append(d.dict, s)
	}
	return s
}

func (d *rowDecoder) row(r *Row) error {
	r.Unix = d.varint()
	r.Millis = uint16(d.uvarint(999))
	r.NodeID = d.dictString()
	r.Method = d.string()
	r.Scheme, r.Authority = d.dictString(), d.dictString()
	r.Path, r.Query = d.string(), d.string()
	r.RouteName = d.dictString()
	r.Status = uint16(d.uvarint(math.MaxUint16))
	r.DurationMs = uint32(d.uvarint(math.MaxUint32))
	r.BytesIn = d.uvarint(math.MaxUint64)
	r.BytesOut = d.uvarint(math.MaxUint64)
	r.ClientIP, r.UserID = d.string(), d.string()
	r.Plan, r.UserAgent, r.Referer = d.dictString(), d.dictString(), d.dictString()
	r.RequestID = d.string()
	r.UpstreamCluster, r.UpstreamHost, r.ResponseFlags = d.dictString(), d.dictString(), d.dictString()
	r.Blocked = d.uvarint(1) == 1
	r.BlockModule = d.dictString()
	r.BlockReason = d.dictString()
	r.Score = uint16(d.uvarint(math.MaxUint16))
	if d.version >= 2 {
		r.Decision = d.dictString()
	} else {
		r.Decision = legacyDecision(r)
	}
	if d.version >= 3 {
		r.Rule, r.Field, r.Excerpt = d.dictString(), d.dictString(), d.string()
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
