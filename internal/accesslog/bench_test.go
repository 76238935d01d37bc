package accesslog

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// benchEntry is a realistic denied request with ext_authz metadata.
func benchEntry(b testing.TB) *datav3.HTTPAccessLogEntry {
	e := testEntry(0, 42)
	st, err := structpb.NewStruct(map[string]any{"decision": "deny", "module": "quota",
		"reason": "quota.per_minute", "score": 3.0, "status": 429.0, "plan": "free"})
	if err != nil {
		b.Fatal(err)
	}
	e.CommonProperties.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extAuthzNamespace: st}}
	e.CommonProperties.ResponseFlags = &datav3.ResponseFlags{UnauthorizedDetails: &datav3.ResponseFlags_Unauthorized{}}
	e.Request.RequestHeaders = map[string]string{"x-user-id": "u-123", "x-user-plan": "free"}
	return e
}

func BenchmarkToRow(b *testing.B) {
	m := newMapper(DefaultConfig())
	e := benchEntry(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r, _ := m.toRow("node-1", e, now)
		if r.Status == 0 {
			b.Fatal("unmapped")
		}
	}
}

// BenchmarkDecodeMessage decodes one ALS message of 64 entries into rows:
// the wire decoder the receiver uses, next to proto.Unmarshal with the
// reference mapping that it replaced.
func BenchmarkDecodeMessage(b *testing.B) {
	entries := make([]*datav3.HTTPAccessLogEntry, 64)
	for i := range entries {
		entries[i] = testEntry(1, i)
	}
	entries[0] = benchEntry(b)
	data := message(b, "edge-1", entries...)
	mp := newMapper(DefaultConfig())
	for _, tc := range []struct {
		name   string
		decode func() int
	}{
		{"wire", func() func() int {
			f := &frame{mp: &mp}
			return func() int {
				f.received = received
				if err := f.decode(data); err != nil {
					b.Fatal(err)
				}
				return len(f.rows)
			}
		}()},
		{"proto+reference", func() int {
			res, err := refDecode(mp, "", data)
			if err != nil {
				b.Fatal(err)
			}
			return len(res.rows)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if n := tc.decode(); n != len(entries) {
					b.Fatalf("%d rows, want %d", n, len(entries))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
		})
	}
}

func BenchmarkSpoolEncodeDecode(b *testing.B) {
	m := newMapper(DefaultConfig())
	r, _ := m.toRow("node-1", benchEntry(b), time.Now())
	rows := make([]Row, 10000)
	for i := range rows {
		rows[i] = r
	}
	bt := batchOf(rows)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		data := encodeBatch(bt)
		size = len(data)
		if _, err := decodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(size))
	b.ReportMetric(float64(size)/float64(bt.n), "B/row")
}

// benchMessages builds n messages of 100 entries for stream s.
func benchMessages(s, n int) []*alsv3.StreamAccessLogsMessage {
	msgs := make([]*alsv3.StreamAccessLogsMessage, n)
	for m := range msgs {
		entries := make([]*datav3.HTTPAccessLogEntry, 100)
		for i := range entries {
			entries[i] = testEntry(s, m*100+i)
		}
		msgs[m] = &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
	}
	msgs[0].Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: fmt.Sprint("node-", s)}}
	return msgs
}

// BenchmarkIngest measures ALS entries/s over loopback gRPC with 4 streams,
// through mapping and batching into ClickHouse (clickhouse) or into an
// inserter that discards (noop, the receiver's own cost). The clock runs
// until Close returns, i.e. until every row is in ClickHouse.
func BenchmarkIngest(b *testing.B) {
	for _, sink := range []string{"noop", "clickhouse"} {
		b.Run(sink, func(b *testing.B) {
			b.ReportAllocs()
			cfg := testConfig(b)
			cfg.BatchRows = 20000
			var ins inserter = &discard{}
			if sink == "clickhouse" {
				w, db := benchWriter(b)
				ins, cfg.ClickHouse.Database = w, db
			}
			s, err := newService(cfg, ins, nil, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			c := serveALS(b, s)
			const streams = 4
			perStream := max(1, (b.N+streams*100-1)/(streams*100))
			msgs := make([][]*alsv3.StreamAccessLogsMessage, streams)
			for i := range msgs {
				msgs[i] = benchMessages(i, perStream)
			}
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			err = sendStreams(ctx, c, streams, func(i int, send func(*alsv3.StreamAccessLogsMessage) error) error {
				for _, m := range msgs[i] {
					if err := send(m); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			total := streams * perStream * 100
			if w := testutil.ToFloat64(s.m.rowsWritten); int(w) != total {
				b.Fatalf("wrote %v rows, want %d (spooled %v)", w, total, testutil.ToFloat64(s.m.spooledBatches))
			}
			b.ReportMetric(float64(total)/elapsed.Seconds(), "entries/s")
			// The machine is shared: CPU per entry (this process, client
			// and server side together) is the load-independent figure.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(total), "cpu-ns/entry")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discard struct{}

func (discard) insert(context.Context, *batch) error { return nil }

// BenchmarkInsertBatch inserts one batch of the default batch_rows
// (realistic rows, decoded from Envoy-shaped messages) into ClickHouse 18.16
// per op: the writer's side of the insert path, per row. The driver's
// allocations count here (this process); ClickHouse's CPU does not.
func BenchmarkInsertBatch(b *testing.B) {
	w, _ := benchWriter(b)
	bt := defaultBatch(b)
	ctx := testCtx(b)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	for b.Loop() {
		if err := w.insert(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	n := float64(b.N * bt.n)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/row")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/row")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/row")
}

// BenchmarkRowDecode decodes a default-size batch of realistic rows, as
// each insert does before it fills the driver's columns.
func BenchmarkRowDecode(b *testing.B) {
	bt := defaultBatch(b)
	b.ReportAllocs()
	var status int
	for b.Loop() {
		if err := bt.each(func(_ int, r *Row) error { status += int(r.Status); return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bt.n), "ns/row")
}

// defaultBatch is a sealed batch of the default batch_rows realistic rows,
// decoded from Envoy-shaped messages as the receiver does.
func defaultBatch(b *testing.B) *batch {
	msgs := memBenchMessages(b, 0, DefaultConfig().BatchRows/64, 64)
	mp := newMapper(DefaultConfig())
	f := &frame{mp: &mp, received: received}
	bt := &batch{}
	for _, m := range msgs {
		data, err := proto.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.decode(data); err != nil {
			b.Fatal(err)
		}
		bt.append(f.rows)
	}
	bt.enc = nil
	return bt
}

// benchWriter is a writer into a fresh database (with the schema) on the
// test ClickHouse.
func benchWriter(b *testing.B) (*chWriter, string) {
	conn := openCH(b, testenv.ClickHouseAddr(b))
	db := freshDB(b, conn)
	if err := EnsureSchema(testCtx(b), conn, db); err != nil {
		b.Fatal(err)
	}
	return mustCHWriter(b, conn, db), db
}
