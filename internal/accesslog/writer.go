package accesslog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// inserter writes one batch, once. The service wraps it with retries, the
// queue and the spool.
type inserter interface {
	insert(ctx context.Context, b *batch) error
}

// InsertError is a failed insert attempt.
type InsertError struct {
	// Stage is "prepare", "append", "send" or "probe".
	Stage string
	// Ambiguous: the rows reached the server, which may have committed
	// them before the failure.
	Ambiguous bool
	Err       error
}

func (e *InsertError) Error() string {
	return fmt.Sprintf("accesslog insert (%s): %v", e.Stage, e.Err)
}

func (e *InsertError) Unwrap() error { return e.Err }

// Permanent ClickHouse error codes: retrying the same insert cannot help, an
// operator must fix the schema or grants. Such batches still go to the
// spool, whose replay keeps trying at the slow pace.
var permanentCodes = map[int32]bool{
	16:  true, // NO_SUCH_COLUMN_IN_TABLE
	47:  true, // UNKNOWN_IDENTIFIER
	53:  true, // TYPE_MISMATCH
	60:  true, // UNKNOWN_TABLE
	62:  true, // SYNTAX_ERROR
	81:  true, // UNKNOWN_DATABASE
	192: true, // UNKNOWN_USER
	193: true, // WRONG_PASSWORD
	497: true, // ACCESS_DENIED
	516: true, // AUTHENTICATION_FAILED
}

// retryable says whether another attempt at once may succeed.
func retryable(err error) bool {
	var exc *clickhouse.Exception
	if errors.As(err, &exc) {
		return !permanentCodes[exc.Code]
	}
	return !errors.Is(err, context.Canceled)
}

// chWriter inserts batches into access_log.
type chWriter struct {
	conn      driver.Conn
	table     string // `db`.access_log
	insertSQL string

	// The server's version is learnt on the first insert, not at start:
	// authz must start and decide with ClickHouse down (rows spool).
	mu    sync.Mutex
	known bool
	// dedupToken: the server knows insert_deduplication_token (22.2+), so a
	// retried batch is dropped by the server if the first try landed
	// (for tables with a deduplication window).
	dedupToken bool
}

func newCHWriter(conn driver.Conn, database string) (*chWriter, error) {
	names := make([]string, len(accessLogColumns))
	for i, c := range accessLogColumns {
		names[i] = c.Name
	}
	table := quoteIdent(database) + ".access_log"
	return &chWriter{
		conn:  conn,
		table: table,
		// The explicit column list is required: without it 18.16 answers
		// a 0-column header (DESIGN.md section 9).
		insertSQL: "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ")",
	}, nil
}

// version learns the server's features once it answers.
func (w *chWriter) version() (dedupToken bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.known {
		return w.dedupToken, nil
	}
	sv, err := w.conn.ServerVersion()
	if err != nil {
		return false, fmt.Errorf("accesslog: server version: %w", err)
	}
	v := sv.Version
	w.known, w.dedupToken = true, v.Major > 22 || (v.Major == 22 && v.Minor >= 2)
	return w.dedupToken, nil
}

func (w *chWriter) insert(ctx context.Context, b *batch) error {
	token := hex.EncodeToString(b.id[:])
	// Every attempt at a batch runs under one query id, so that the probe
	// can tell whether an earlier attempt is still at work on the server.
	qid := insertQueryID(b.id)
	if b.maybeCommitted {
		kept, err := w.uncommitted(ctx, b, qid)
		if err != nil {
			return &InsertError{Stage: "probe", Err: err}
		}
		if len(kept) == 0 {
			return nil
		}
		if len(kept) != b.n {
			// A different row set must not share the full batch's token.
			token = fmt.Sprintf("%s-%d", token, len(kept))
			b = batchOf(kept)
		}
	}
	if b.n == 0 {
		return nil
	}
	dedup, err := w.version()
	if err != nil {
		return err
	}
	// appendColumns sends the batch as several blocks of columnChunk rows.
	// The server squashes an INSERT's blocks up to these thresholds before
	// it writes parts: rows ≥ the batch and no byte limit keep a batch one
	// part per day (the probe in uncommitted relies on it), as one block
	// was. 18.16 knows both settings.
	settings := clickhouse.Settings{
		"min_insert_block_size_rows":  max(b.n, defaultMinInsertBlockRows),
		"min_insert_block_size_bytes": 0,
	}
	if dedup {
		settings["insert_deduplication_token"] = token
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithQueryID(qid), clickhouse.WithSettings(settings))
	pb, err := w.conn.PrepareBatch(ctx, w.insertSQL)
	if err != nil {
		return &InsertError{Stage: "prepare", Err: err}
	}
	defer pb.Close()
	if sent, err := appendColumns(pb, b); err != nil {
		if sent {
			// Blocks went out: the server may hold (or, past the
			// thresholds, have written) some of the rows.
			return &InsertError{Stage: "send", Ambiguous: true, Err: err}
		}
		return &InsertError{Stage: "append", Err: err}
	}
	if err := pb.Send(); err != nil {
		return &InsertError{Stage: "send", Ambiguous: true, Err: err}
	}
	return nil
}

// columns is the scratch appendColumns fills: one slice per column, for
// columnChunk rows at a time, reused across inserts (the driver copies what
// it is given). Chunks rather than the whole batch: a scratch the size of
// batch_rows (some 20 MB at 50k rows) per insert in flight was memory for
// nothing (issue 20).
type columns struct {
	ts, dates         []time.Time
	ms, status, score []uint16
	bScore, pScore    []uint16
	dur               []uint32
	bytesIn, bytesOut []uint64
	blocked           []uint8
	str               [22][]string // string columns in accessLogColumns order
	values            []any
}

// columnChunk is how many rows appendColumns hands the driver at a time,
// and the rows of each block it sends.
const columnChunk = 4096

// defaultMinInsertBlockRows is ClickHouse's default
// min_insert_block_size_rows (1048576 since before 18.16).
const defaultMinInsertBlockRows = 1 << 20

var columnsPool = sync.Pool{New: func() any { return new(columns) }}

// resize makes every slice n long, reusing capacity.
func (c *columns) resize(n int) {
	c.ts, c.dates = grow(c.ts, n), grow(c.dates, n)
	c.ms, c.status, c.score = grow(c.ms, n), grow(c.status, n), grow(c.score, n)
	c.bScore, c.pScore = grow(c.bScore, n), grow(c.pScore, n)
	c.dur = grow(c.dur, n)
	c.bytesIn, c.bytesOut = grow(c.bytesIn, n), grow(c.bytesOut, n)
	c.blocked = grow(c.blocked, n)
	for i := range c.str {
		c.str[i] = grow(c.str[i], n)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// clear drops the references to row strings so that a pooled scratch does
// not keep a batch's strings alive.
func (c *columns) clear() {
	for i := range c.str {
		clear(c.str[i])
	}
	clear(c.values)
}

// appendColumns fills the batch column by column: one slice per column
// instead of 27 boxed values per row, columnChunk rows at a time, and sends
// each full chunk as a block (pb.Flush; Send sends the last). The driver's
// columns keep their capacity from block to block, so a batch no longer
// grows 22 string columns to batch_rows by doubling: that growth was 63 %
// of authz's allocated bytes under make bench's ALS ingest (issue 20);
// BenchmarkInsertBatch: 3.4-4.6 -> 2.1-2.3 µs of CPU and 3.6-3.9 KB -> ~0.3
// KB allocated per row. sent says whether a block went to the server
// before an error.
func appendColumns(pb driver.Batch, b *batch) (sent bool, err error) {
	c := columnsPool.Get().(*columns)
	defer func() {
		c.clear()
		columnsPool.Put(c)
	}()
	c.resize(min(b.n, columnChunk))
	k := 0 // rows in the scratch
	err = b.each(func(i int, r *Row) error {
		c.set(k, r)
		if k++; k < columnChunk && i < b.n-1 {
			return nil
		}
		if err := c.appendTo(pb, k); err != nil {
			return err
		}
		k = 0
		if i == b.n-1 {
			return nil // Send sends the last block
		}
		sent = true
		if err := pb.Flush(); err != nil {
			return fmt.Errorf("send block: %w", err)
		}
		return nil
	})
	return sent, err
}

// set fills row i of the scratch from r.
func (c *columns) set(i int, r *Row) {
	c.ts[i] = time.Unix(r.Unix, 0)
	c.dates[i] = r.date()
	c.ms[i], c.status[i], c.score[i] = r.Millis, r.Status, r.Score
	c.bScore[i], c.pScore[i] = r.BehaviorScore, r.PayloadScore
	c.dur[i], c.bytesIn[i], c.bytesOut[i] = r.DurationMs, r.BytesIn, r.BytesOut
	c.blocked[i] = 0
	if r.Blocked {
		c.blocked[i] = 1
	}
	for j, s := range [...]string{r.NodeID, r.Method, r.Scheme, r.Authority, r.Path, r.Query, r.RouteName,
		r.ClientIP, r.UserID, r.Plan, r.UserAgent, r.Referer, r.RequestID, r.UpstreamCluster,
		r.UpstreamHost, r.ResponseFlags, r.BlockModule, r.BlockReason, r.Decision,
		r.Rule, r.Field, r.Excerpt} {
		c.str[j][i] = s
	}
}

// appendTo appends the scratch's first n rows to the driver's columns.
func (c *columns) appendTo(pb driver.Batch, n int) error {
	// Order: accessLogColumns.
	str := &c.str
	c.values = append(c.values[:0], c.ts[:n], c.ms[:n], c.dates[:n],
		str[0][:n], str[1][:n], str[2][:n], str[3][:n], str[4][:n], str[5][:n], str[6][:n],
		c.status[:n], c.dur[:n], c.bytesIn[:n], c.bytesOut[:n],
		str[7][:n], str[8][:n], str[9][:n], str[10][:n], str[11][:n], str[12][:n], str[13][:n], str[14][:n], str[15][:n],
		c.blocked[:n], str[16][:n], str[17][:n], c.score[:n], str[18][:n],
		str[19][:n], str[20][:n], str[21][:n], c.bScore[:n], c.pScore[:n])
	for i, v := range c.values {
		if err := pb.Column(i).Append(v); err != nil {
			return fmt.Errorf("column %s: %w", accessLogColumns[i].Name, err)
		}
	}
	return nil
}

// probeSample is how many request ids per day the probe looks up.
const probeSample = 3

// insertQueryID is the server-side query id of every attempt at batch id.
func insertQueryID(id [16]byte) string {
	return "smartlayer-accesslog-" + hex.EncodeToString(id[:])
}

// uncommitted returns the rows of an ambiguously failed batch that are not in
// ClickHouse. The server writes a block as one part per partition (date), each
// atomically, so a day's rows are either all in or all out: sampling a few
// request ids per day decides it. Days whose rows carry no request id are
// inserted again (at-least-once rather than loss).
//
// The sample decides only once the earlier attempt (query qid) is over: an
// attempt we gave up on (our timeout closed the connection) may still be
// receiving or writing its block on the server — the kernel delivers what
// the closed socket had sent — and would commit after a probe that found
// nothing (TestLateCommitAfterTimeout stored such a batch twice). While it
// runs, the probe fails and the batch is tried again after a backoff. The
// server registers the query before it asks for the data, so an attempt
// that is not listed will never write. With several clickhouse.addr the
// probe sees the node it is connected to, which is the insert's node under
// the driver's in-order connection strategy unless that node failed over.
func (w *chWriter) uncommitted(ctx context.Context, b *batch, qid string) ([]Row, error) {
	var running uint64
	if err := w.conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id = "+quoteStrings([]string{qid})).
		Scan(&running); err != nil {
		return nil, fmt.Errorf("look up the earlier attempt: %w", err)
	}
	if running > 0 {
		return nil, fmt.Errorf("the earlier attempt (query %s) is still running on the server; probing once it ends", qid)
	}
	rows, err := b.rows()
	if err != nil {
		return nil, err
	}
	byDay := map[int64][]int{}
	var days []int64
	for i := range rows {
		d := rows[i].Unix / 86400
		if _, ok := byDay[d]; !ok {
			days = append(days, d)
		}
		byDay[d] = append(byDay[d], i)
	}
	slices.Sort(days)
	var kept []Row
	for _, d := range days {
		idx := byDay[d]
		var ids []string
		for _, k := range []int{0, len(idx) / 2, len(idx) - 1} {
			if id := rows[idx[k]].RequestID; id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		present := false
		if len(ids) > 0 {
			// Compare the day number, not toDate(seconds): that one
			// depends on the server's time zone.
			q := fmt.Sprintf("SELECT count() FROM %s WHERE toUInt16(date) = %d AND request_id IN (%s)",
				w.table, d, quoteStrings(ids))
			var n uint64
			if err := w.conn.QueryRow(ctx, q).Scan(&n); err != nil {
				return nil, fmt.Errorf("probe day %d: %w", d, err)
			}
			present = n > 0
		}
		if present {
			continue
		}
		for _, i := range idx {
			kept = append(kept, rows[i])
		}
	}
	return kept, nil
}

// quoteStrings renders ids as ClickHouse string literals.
func quoteStrings(ids []string) string {
	var sb strings.Builder
	for i, id := range ids {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('\'')
		for j := 0; j < len(id); j++ {
			switch c := id[j]; c {
			case '\\', '\'':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			default:
				sb.WriteByte(c)
			}
		}
		sb.WriteByte('\'')
	}
	return sb.String()
}
