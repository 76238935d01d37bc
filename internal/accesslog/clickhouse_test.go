package accesslog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// countRows returns count() and uniqExact(request_id) of access_log.
func countRows(t testing.TB, conn driver.Conn, db string) (total, distinct uint64) {
	t.Helper()
	if err := conn.QueryRow(testCtx(t), "SELECT count(), uniqExact(request_id) FROM "+db+".access_log").
		Scan(&total, &distinct); err != nil {
		t.Fatalf("count: %v", err)
	}
	return total, distinct
}

// TestFourStreams100k: 100k entries over 4 concurrent gRPC streams land in
// ClickHouse exactly once, each with its stream's node id.
func TestFourStreams100k(t *testing.T) { testenv.ForEachClickHouse(t, testFourStreams100k) }

func testFourStreams100k(t *testing.T, conn driver.Conn) {
	db := schemaDB(t, conn)
	ctx := testCtx(t)
	cfg := testConfig(t)
	cfg.ClickHouse.Database = db
	cfg.BatchRows = 10000
	cfg.FlushInterval = 200 * time.Millisecond
	fb := &recordingFeedback{}
	s, wait := runCHService(t, cfg, conn, fb)
	c := serveALS(t, s)
	const streams, perStream = 4, 25000
	var g errgroup.Group
	for i := range streams {
		g.Go(func() error { return streamEntries(ctx, c, i, 0, perStream, 100) })
	}
	start := time.Now()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	sent := time.Since(start)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	t.Logf("sent in %v, closed after %v; batches inserted %v, spooled %v", sent, time.Since(start),
		testutil.ToFloat64(s.m.batches.WithLabelValues("ok")), testutil.ToFloat64(s.m.spooledBatches))
	total, distinct := countRows(t, conn, db)
	if total != streams*perStream || distinct != streams*perStream {
		t.Fatalf("count %d distinct %d, want %d", total, distinct, streams*perStream)
	}
	rows, err := conn.Query(ctx, "SELECT node_id, count() FROM "+db+".access_log GROUP BY node_id ORDER BY node_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var node string
		var n uint64
		if err := rows.Scan(&node, &n); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("node-%d", i); node != want || n != perStream {
			t.Errorf("node %q has %d rows, want %q with %d", node, n, want, perStream)
		}
		i++
	}
	if i != streams {
		t.Errorf("%d nodes, want %d", i, streams)
	}
	if got := testutil.ToFloat64(s.m.rowsWritten); got != streams*perStream {
		t.Errorf("rows_written_total %v", got)
	}
	if got := fb.total.Load(); got != streams*perStream {
		t.Errorf("feedback calls %d", got)
	}
}

// openPrivateCH connects to a private server with short timeouts, so that a
// dead server fails attempts quickly.
func openPrivateCH(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestClickHouseKilledMidStream: ClickHouse is SIGKILLed while 4 streams
// send, stays down for a while, and comes back; every entry ends up stored
// exactly once.
func TestClickHouseKilledMidStream(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	conn := openPrivateCH(t, srv.Addr)
	ctx := testCtx(t)
	const db = "smartlayer"
	if err := EnsureSchema(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.ClickHouse.Database = db
	cfg.BatchRows = 2000
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.RetryAttempts = 2
	cfg.QueueBatches = 2
	cfg.InsertTimeout = 3 * time.Second
	s, wait := runCHService(t, cfg, conn, nil)
	c := serveALS(t, s)

	const streams, perStream = 4, 15000
	var g errgroup.Group
	for i := range streams {
		g.Go(func() error {
			// Three phases per stream: before, during and after the outage.
			for _, r := range [][2]int{{0, 5000}, {5000, 10000}, {10000, perStream}} {
				if err := streamEntries(ctx, c, i, r[0], r[1], 50); err != nil {
					return err
				}
				time.Sleep(150 * time.Millisecond)
			}
			return nil
		})
	}
	time.Sleep(100 * time.Millisecond)
	srv.Stop() // SIGKILL, with inserts in flight
	eventually(t, 20*time.Second, "batches spooled during the outage", func() bool {
		return testutil.ToFloat64(s.m.spooledBatches) > 0
	})
	time.Sleep(300 * time.Millisecond)
	srv.Start()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "spool drained", func() bool {
		files, _ := s.sp.stats()
		return files == 0 && len(s.queue) == 0
	})
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	total, distinct := countRows(t, conn, db)
	if total != streams*perStream || distinct != streams*perStream {
		t.Fatalf("count %d distinct %d, want %d (spooled %v, replayed %v, errors %v)", total, distinct,
			streams*perStream, testutil.ToFloat64(s.m.spooledBatches), testutil.ToFloat64(s.m.replayedBatches),
			testutil.ToFloat64(s.m.batches.WithLabelValues("error")))
	}
	t.Logf("spooled %v batches, replayed %v, failed attempts %v",
		testutil.ToFloat64(s.m.spooledBatches), testutil.ToFloat64(s.m.replayedBatches),
		testutil.ToFloat64(s.m.batches.WithLabelValues("error")))
}

// TestReplaySpoolFromEarlierRun: a spool left by a previous process (whole
// batches, one possibly already inserted, a corrupt file and a half-written
// .tmp) is replayed into ClickHouse without duplicates.
func TestReplaySpoolFromEarlierRun(t *testing.T) {
	testenv.ForEachClickHouse(t, testReplaySpoolFromEarlierRun)
}

func testReplaySpoolFromEarlierRun(t *testing.T, conn driver.Conn) {
	db := schemaDB(t, conn)
	ctx := testCtx(t)
	dir := t.TempDir()
	sp, err := openSpool(dir, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(b, n int) *batch {
		var rows []Row
		for i := range n {
			// Two days per batch: the probe decides per partition.
			rows = append(rows, Row{Unix: 1_764_000_000 + int64(i%2)*86400, RequestID: fmt.Sprintf("b%d-%d", b, i), Path: "/x"})
		}
		out := batchOf(rows)
		out.id = [16]byte{byte(b)}
		return out
	}
	// Batch 1 reached ClickHouse before the crash, but the client saw an
	// error: flagged maybeCommitted.
	already := mk(1, 300)
	w := mustCHWriter(t, conn, db)
	if err := w.insert(ctx, already); err != nil {
		t.Fatal(err)
	}
	already.maybeCommitted = true
	// Batch 3 is flagged too but never landed.
	notLanded := mk(3, 200)
	notLanded.maybeCommitted = true
	for _, b := range []*batch{mk(0, 500), already, mk(2, 400), notLanded} {
		if err := sp.put(b); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := filepath.Join(dir, "00000000000000000005.batch")
	if err := os.WriteFile(corrupt, []byte("SLAL\x01garbage that is long enough for a header......"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000006.batch.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.ClickHouse.Database, cfg.SpoolDir = db, dir
	s, wait := runCHService(t, cfg, conn, nil)
	eventually(t, 20*time.Second, "spool replayed", func() bool { f, _ := s.sp.stats(); return f == 0 })
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	total, distinct := countRows(t, conn, db)
	if total != 1400 || distinct != 1400 {
		t.Fatalf("count %d distinct %d, want 1400", total, distinct)
	}
	if got := testutil.ToFloat64(s.m.dropped.WithLabelValues(dropCorrupt)); got != 1 {
		t.Errorf("corrupt files counted %v, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000005.corrupt")); err != nil {
		t.Errorf("corrupt file not moved aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000006.batch.tmp")); !os.IsNotExist(err) {
		t.Errorf(".tmp left behind: %v", err)
	}
}

// TestProbeSkipsCommittedDays: an ambiguous batch whose first day landed and
// second did not is completed without duplicating the first.
func TestProbeSkipsCommittedDays(t *testing.T) {
	testenv.ForEachClickHouse(t, testProbeSkipsCommittedDays)
}

func testProbeSkipsCommittedDays(t *testing.T, conn driver.Conn) {
	db := schemaDB(t, conn)
	ctx := testCtx(t)
	w := mustCHWriter(t, conn, db)
	var day1, day2 []Row
	for i := range 50 {
		day1 = append(day1, Row{Unix: 1_764_000_000 + int64(i), RequestID: fmt.Sprintf("d1-%d", i)})
		day2 = append(day2, Row{Unix: 1_764_086_400 + int64(i), RequestID: fmt.Sprintf("d2-%d", i)})
	}
	if err := w.insert(ctx, batchOf(day1)); err != nil {
		t.Fatal(err)
	}
	b := batchOf(append(append([]Row{}, day1...), day2...))
	b.maybeCommitted = true
	kept, err := w.uncommitted(ctx, b, insertQueryID(b.id))
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 50 || kept[0].RequestID != "d2-0" {
		t.Fatalf("kept %d rows starting %q, want day 2's 50", len(kept), kept[0].RequestID)
	}
	if err := w.insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	if total, distinct := countRows(t, conn, db); total != 100 || distinct != 100 {
		t.Fatalf("count %d distinct %d, want 100", total, distinct)
	}
}

// TestInsertAcrossColumnChunks: a batch is handed to the driver columnChunk
// rows at a time; every row lands once, with its own values, whatever the
// batch's size against the chunk.
func TestInsertAcrossColumnChunks(t *testing.T) {
	testenv.ForEachClickHouse(t, testInsertAcrossColumnChunks)
}

func testInsertAcrossColumnChunks(t *testing.T, conn driver.Conn) {
	db := schemaDB(t, conn)
	ctx := testCtx(t)
	w := mustCHWriter(t, conn, db)
	start := 0
	for _, n := range []int{1, columnChunk - 1, columnChunk, columnChunk + 1, 2*columnChunk + 17} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := make([]Row, n)
			for i := range rows {
				k := start + i
				rows[i] = Row{Unix: 1_764_000_000 + int64(k), RequestID: fmt.Sprintf("r%d", k), Path: fmt.Sprintf("/p/%d", k),
					Status: uint16(200 + k%300), BytesOut: uint64(k), Decision: DecisionAllowed}
			}
			if err := w.insert(ctx, batchOf(rows)); err != nil {
				t.Fatal(err)
			}
			// Each row's columns agree with its request id: no chunk was
			// sent twice, shifted or cut.
			var total, consistent uint64
			q := fmt.Sprintf(`SELECT count(), countIf(path = concat('/p/', toString(bytes_out)) AND request_id = concat('r', toString(bytes_out))
				AND status = 200 + bytes_out %% 300 AND toUInt64(timestamp) = 1764000000 + bytes_out)
				FROM %s.access_log WHERE bytes_out >= %d AND bytes_out < %d`, db, start, start+n)
			if err := conn.QueryRow(ctx, q).Scan(&total, &consistent); err != nil {
				t.Fatal(err)
			}
			if total != uint64(n) || consistent != uint64(n) {
				t.Fatalf("%d rows stored, %d consistent, want %d", total, consistent, n)
			}
			start += n
		})
	}
}

// TestBatchIsOnePartPerDay: a batch of several column chunks goes to the
// server as several blocks, and still lands as one part per day, which the
// probe after an ambiguous failure relies on (a day is all in or all out).
// Level-0 parts are the parts inserts wrote, merged away or not.
func TestBatchIsOnePartPerDay(t *testing.T) {
	testenv.ForEachClickHouse(t, testBatchIsOnePartPerDay)
}

func testBatchIsOnePartPerDay(t *testing.T, conn driver.Conn) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		name       string
		rows, days int
	}{
		{"one chunk, one day", columnChunk / 2, 1},
		{"three chunks, two days", 2*columnChunk + 17, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tdb := schemaDB(t, conn) // parts are counted per table
			w := mustCHWriter(t, conn, tdb)
			rows := make([]Row, tc.rows)
			for i := range rows {
				day := int64(i * tc.days / tc.rows)
				rows[i] = Row{Unix: 1_764_000_000 + day*86400 + int64(i), RequestID: fmt.Sprintf("r%d", i),
					UserAgent: "agent", Decision: DecisionAllowed}
			}
			if err := w.insert(ctx, batchOf(rows)); err != nil {
				t.Fatal(err)
			}
			var parts uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'access_log' AND level = 0",
				tdb).Scan(&parts); err != nil {
				t.Fatal(err)
			}
			if total, _ := countRows(t, conn, tdb); total != uint64(tc.rows) || parts != uint64(tc.days) {
				t.Fatalf("%d rows in %d parts, want %d in %d (one per day)", total, parts, tc.rows, tc.days)
			}
		})
	}
}
