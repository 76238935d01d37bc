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
	rows := b.rows
	token := hex.EncodeToString(b.id[:])
	if b.maybeCommitted {
		kept, err := w.uncommitted(ctx, b)
		if err != nil {
			return &InsertError{Stage: "probe", Err: err}
		}
		if len(kept) == 0 {
			return nil
		}
		if len(kept) != len(rows) {
			// A different row set must not share the full batch's token.
			token = fmt.Sprintf("%s-%d", token, len(kept))
		}
		rows = kept
	}
	if len(rows) == 0 {
		return nil
	}
	dedup, err := w.version()
	if err != nil {
		return err
	}
	if dedup {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
			"insert_deduplication_token": token,
		}))
	}
	pb, err := w.conn.PrepareBatch(ctx, w.insertSQL)
	if err != nil {
		return &InsertError{Stage: "prepare", Err: err}
	}
	defer pb.Close()
	if err := appendColumns(pb, rows); err != nil {
		return &InsertError{Stage: "append", Err: err}
	}
	if err := pb.Send(); err != nil {
		return &InsertError{Stage: "send", Ambiguous: true, Err: err}
	}
	return nil
}

// columns is the scratch appendColumns fills: one slice per column,
// reused across inserts (the driver copies what it is given), so a batch
// of 50k rows does not allocate some 20 MB of slices every time.
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
// instead of 27 boxed values per row.
func appendColumns(pb driver.Batch, rows []Row) error {
	c := columnsPool.Get().(*columns)
	defer func() {
		c.clear()
		columnsPool.Put(c)
	}()
	c.resize(len(rows))
	for i := range rows {
		r := &rows[i]
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
	// Order: accessLogColumns.
	str := &c.str
	c.values = append(c.values[:0], c.ts, c.ms, c.dates,
		str[0], str[1], str[2], str[3], str[4], str[5], str[6],
		c.status, c.dur, c.bytesIn, c.bytesOut,
		str[7], str[8], str[9], str[10], str[11], str[12], str[13], str[14], str[15],
		c.blocked, str[16], str[17], c.score, str[18],
		str[19], str[20], str[21], c.bScore, c.pScore)
	for i, v := range c.values {
		if err := pb.Column(i).Append(v); err != nil {
			return fmt.Errorf("column %s: %w", accessLogColumns[i].Name, err)
		}
	}
	return nil
}

// probeSample is how many request ids per day the probe looks up.
const probeSample = 3

// uncommitted returns the rows of an ambiguously failed batch that are not in
// ClickHouse. The server writes a block as one part per partition (date), each
// atomically, so a day's rows are either all in or all out: sampling a few
// request ids per day decides it. Days whose rows carry no request id are
// inserted again (at-least-once rather than loss).
func (w *chWriter) uncommitted(ctx context.Context, b *batch) ([]Row, error) {
	byDay := map[int64][]int{}
	var days []int64
	for i := range b.rows {
		d := b.rows[i].Unix / 86400
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
			if id := b.rows[idx[k]].RequestID; id != "" && !slices.Contains(ids, id) {
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
			kept = append(kept, b.rows[i])
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
