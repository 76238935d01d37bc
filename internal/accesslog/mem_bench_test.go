package accesslog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// BenchmarkIngestMemory streams b.N access-log entries (64 a message, on 4
// streams, as fast as the receiver takes them) through the default batch
// settings into ClickHouse, and reports the memory the access-log path
// holds meanwhile: the heap in use (median and peak of samples every
// 100 ms) and the process's peak RSS (VmHWM, reset at the start; it
// includes the load generator's side, which is small). Goal (issue 20):
// ≤ 400 MiB RSS at ≥ 150k entries/s. Run it with -benchtime 3000000x or
// more so that the queue reaches its steady state.
func BenchmarkIngestMemory(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SpoolDir = b.TempDir()
	conn := openCH(b, testenv.ClickHouseAddr(b))
	db := freshDB(b, conn)
	if err := EnsureSchema(testCtx(b), conn, db); err != nil {
		b.Fatal(err)
	}
	cfg.ClickHouse.Database = db
	w := mustCHWriter(b, conn, db)
	s, err := newService(cfg, w, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := serveALS(b, s)
	const streams, perMessage, distinct = 4, 64, 16
	msgs := make([][]*alsv3.StreamAccessLogsMessage, streams)
	for i := range msgs {
		msgs[i] = memBenchMessages(b, i, distinct, perMessage)
	}
	sendPerStream := max(1, (b.N+streams*perMessage-1)/(streams*perMessage))
	ctx := context.Background()

	debug.FreeOSMemory()
	resetPeakRSS(b)
	stopSampling := sampleHeap(100 * time.Millisecond)
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	err = sendStreams(ctx, c, streams, func(i int, send func(*alsv3.StreamAccessLogsMessage) error) error {
		for k := range sendPerStream {
			if err := send(msgs[i][k%distinct]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start) // sent: what the receiver took
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	heap := stopSampling()
	total := streams * sendPerStream * perMessage
	written := int(testutil.ToFloat64(s.m.rowsWritten))
	spooled := testutil.ToFloat64(s.m.spooledBatches)
	if lost := s.lostRows.Load(); lost > 0 {
		b.Fatalf("%d rows lost", lost)
	}
	if spooled == 0 && written != total {
		b.Fatalf("wrote %d rows of %d", written, total)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(heap.median/(1<<20), "heap-MiB")
	b.ReportMetric(heap.peak/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakRSS(b)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(spooled, "spooled-batches")
}

// memBenchMessages builds n messages of per entries for stream s: Envoy-
// shaped entries (testEntry), every 16th a denial with ext_authz metadata.
func memBenchMessages(tb testing.TB, s, n, per int) []*alsv3.StreamAccessLogsMessage {
	msgs := make([]*alsv3.StreamAccessLogsMessage, n)
	for m := range msgs {
		entries := make([]*datav3.HTTPAccessLogEntry, per)
		for i := range entries {
			entries[i] = testEntry(s, m*per+i)
			entries[i].Request.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
			entries[i].Request.Referer = "https://www.example.com/"
			entries[i].Request.RequestId = fmt.Sprintf("%08x-4b1e-4c2a-9f3d-%012x", s, m*per+i)
			if i%16 == 0 {
				entries[i] = benchEntry(tb)
			}
		}
		msgs[m] = &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
	}
	msgs[0].Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: fmt.Sprint("node-", s)}}
	return msgs
}

type heapFigures struct{ median, peak float64 }

// sampleHeap records HeapInuse every interval until stop, which returns
// the median and the peak.
func sampleHeap(interval time.Duration) (stop func() heapFigures) {
	var (
		mu   sync.Mutex
		vals []float64
	)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				mu.Lock()
				vals = append(vals, float64(ms.HeapInuse))
				mu.Unlock()
			}
		}
	}()
	return func() heapFigures {
		close(quit)
		<-finished
		if len(vals) == 0 {
			return heapFigures{}
		}
		s := slices.Clone(vals)
		slices.Sort(s)
		return heapFigures{median: s[len(s)/2], peak: s[len(s)-1]}
	}
}

// resetPeakRSS resets VmHWM to the current RSS (Linux ≥ 4.0).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
}

// peakRSS returns VmHWM in bytes.
func peakRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:")); ok {
			kb, err := strconv.ParseFloat(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 64)
			if err != nil {
				b.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkQueueMemory measures the most the batches hold while ClickHouse
// is slower than the stream, independently of the machine's speed:
// max_inflight batches being inserted (the inserter blocks) and
// queue_batches waiting, at the default batch settings, filled by the wire
// decoder from Envoy-shaped messages. It reports the heap they hold after a
// collection, in all and per row. Not included: the driver's copy of the
// batches in flight (BenchmarkIngestMemory has it).
func BenchmarkQueueMemory(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SpoolDir = b.TempDir()
	cfg.FlushInterval = time.Hour // batches sealed by size only, however slow the machine
	msgs := memBenchMessages(b, 0, 16, 64)
	data := make([][]byte, len(msgs))
	for i, m := range msgs {
		var err error
		if data[i], err = proto.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
	rows := (cfg.QueueBatches + cfg.MaxInflight) * cfg.BatchRows
	var held float64
	for b.Loop() {
		ins := &blockingInserter{started: make(chan struct{}, cfg.MaxInflight), release: make(chan struct{})}
		s, err := newService(cfg, ins, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx := context.Background()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		f := &frame{mp: &s.mp}
		for n := 0; n < rows; {
			f.received = time.Now()
			if err := f.decode(data[n/64%len(data)]); err != nil {
				b.Fatal(err)
			}
			s.add(f.rows)
			n += len(f.rows)
			if n%cfg.BatchRows == 0 && n/cfg.BatchRows == cfg.MaxInflight {
				for range cfg.MaxInflight { // the workers hold these
					<-ins.started
				}
			}
		}
		if len(s.queue) != cfg.QueueBatches {
			b.Fatalf("%d batches queued, want %d", len(s.queue), cfg.QueueBatches)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = float64(after.HeapInuse) - float64(before.HeapInuse)
		close(ins.release)
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		runtime.KeepAlive(f)
	}
	b.ReportMetric(held/(1<<20), "heap-MiB")
	b.ReportMetric(held/float64(rows), "B/row")
}

// blockingInserter holds every insert until release is closed.
type blockingInserter struct {
	started, release chan struct{}
}

func (i *blockingInserter) insert(ctx context.Context, _ *batch) error {
	select {
	case i.started <- struct{}{}:
	default: // after release: nobody counts
	}
	select {
	case <-i.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
