package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeInserter records batches and fails while fail returns an error.
type fakeInserter struct {
	mu      sync.Mutex
	batches [][]Row
	fail    func(b *batch) error
}

func (f *fakeInserter) insert(ctx context.Context, b *batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(b); err != nil {
			return err
		}
	}
	rows, err := b.rows()
	if err != nil {
		return err
	}
	f.batches = append(f.batches, rows)
	return nil
}

func (f *fakeInserter) rows() []Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Concat(f.batches...)
}

func (f *fakeInserter) batchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		out = append(out, len(b))
	}
	return out
}

// recordingFeedback counts observed responses per client IP and status.
type recordingFeedback struct {
	mu    sync.Mutex
	calls map[string]int
	total atomic.Int64
}

func (r *recordingFeedback) ObserveResponses(_ context.Context, rs []Response) {
	r.total.Add(int64(len(rs)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	for _, o := range rs {
		r.calls[fmt.Sprintf("%s/%d", o.ClientIP, o.Status)]++
		if o.Denied {
			r.calls["denied"]++
		}
	}
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.SpoolDir = t.TempDir()
	cfg.RetryMinBackoff = 10 * time.Millisecond
	cfg.RetryMaxBackoff = 200 * time.Millisecond
	cfg.InsertTimeout = 10 * time.Second
	return cfg
}

// testEntry is request i of stream s, with a unique request id.
func testEntry(s, i int) *datav3.HTTPAccessLogEntry {
	return &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{
			StartTime:               timestamppb.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)),
			DownstreamRemoteAddress: sockAddr(fmt.Sprintf("10.0.%d.%d", s, i%250+1), 40000),
			UpstreamCluster:         "backend",
			RouteName:               "api",
		},
		Request: &datav3.HTTPRequestProperties{
			RequestMethod: corev3.RequestMethod_GET, Scheme: "https", Authority: "api.example.com",
			Path: fmt.Sprintf("/api/items/%d?page=%d", i%100, i%7), UserAgent: "bench/1.0",
			RequestId: fmt.Sprintf("s%d-%07d", s, i), RequestHeadersBytes: 200,
		},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200 + uint32(i%3)), ResponseBodyBytes: 512},
	}
}

// serveALS serves s on a loopback gRPC server and returns a client.
func serveALS(t testing.TB, s *Service, opts ...grpc.ServerOption) alsv3.AccessLogServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewServer(opts...)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return alsv3.NewAccessLogServiceClient(cc)
}

// streamEntries sends entries from..to of stream sIdx over one ALS stream,
// perMsg entries per message, the identifier only on the first message.
func streamEntries(ctx context.Context, c alsv3.AccessLogServiceClient, sIdx, from, to, perMsg int) error {
	st, err := c.StreamAccessLogs(ctx)
	if err != nil {
		return err
	}
	first := true
	for off := from; off < to; off += perMsg {
		end := min(off+perMsg, to)
		entries := make([]*datav3.HTTPAccessLogEntry, 0, end-off)
		for i := off; i < end; i++ {
			entries = append(entries, testEntry(sIdx, i))
		}
		msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
		if first {
			msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: fmt.Sprintf("node-%d", sIdx)}, LogName: "als"}
			first = false
		}
		if err := st.Send(msg); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	_, err = st.CloseAndRecv()
	return err
}

func runService(t testing.TB, s *Service) (wait func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// runFakeService starts newService(cfg, ins) without feedback, registering
// its metrics on reg (may be nil); wait returns Run's outcome once the
// service is closed.
func runFakeService(t testing.TB, cfg Config, ins inserter, reg prometheus.Registerer) (s *Service, wait func()) {
	t.Helper()
	s, err := newService(cfg, ins, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, runService(t, s)
}

// eventually polls cond (an integration test waiting on a real server).
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBatchingBySizeAndInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.BatchRows = 100
		cfg.FlushInterval = time.Second
		cfg.MaxInflight = 1 // one worker keeps batch order
		ins := &fakeInserter{}
		s, wait := runFakeService(t, cfg, ins, nil)
		rows := make([]Row, 250)
		for i := range rows {
			rows[i].RequestID = fmt.Sprint(i)
		}
		s.add(rows)
		synctest.Wait()
		if got := ins.batchSizes(); len(got) != 2 || got[0] != 100 || got[1] != 100 {
			t.Fatalf("before the interval: batches %v, want [100 100]", got)
		}
		time.Sleep(cfg.FlushInterval)
		synctest.Wait()
		if got := ins.batchSizes(); len(got) != 3 || got[2] != 50 {
			t.Fatalf("after the interval: batches %v, want [100 100 50]", got)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		wait()
		for i, r := range ins.rows() {
			if r.RequestID != fmt.Sprint(i) {
				t.Fatalf("row %d is %q: order lost", i, r.RequestID)
			}
		}
	})
}

func TestRetryThenSpoolThenReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.BatchRows = 10
		cfg.RetryAttempts = 3
		var down atomic.Bool
		down.Store(true)
		var attempts atomic.Int64
		ins := &fakeInserter{fail: func(*batch) error {
			attempts.Add(1)
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}
		reg := prometheus.NewRegistry()
		s, wait := runFakeService(t, cfg, ins, reg)
		s.add(make([]Row, 10))
		time.Sleep(time.Second) // retries at 10 ms and 20 ms, then the spool
		synctest.Wait()
		if got := testutil.ToFloat64(s.m.spooledBatches); got != 1 {
			t.Fatalf("spooled batches %v, want 1", got)
		}
		if got := testutil.ToFloat64(s.m.retries); got < 2 {
			t.Fatalf("retries %v, want ≥ 2", got)
		}
		down.Store(false)
		time.Sleep(cfg.RetryMaxBackoff)
		synctest.Wait()
		if n := len(ins.rows()); n != 10 {
			t.Fatalf("replayed %d rows, want 10", n)
		}
		if files, _ := s.sp.stats(); files != 0 {
			t.Fatalf("%d spool files left", files)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		wait()
	})
}

// TestCloseSpoolsThenNextProcessReplays: ClickHouse is down at SIGTERM, so
// Close spools everything; the next process replays it all, in order.
func TestCloseSpoolsThenNextProcessReplays(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t)
	cfg.BatchRows = 7
	down := &fakeInserter{fail: func(*batch) error { return errors.New("down") }}
	s1, wait1 := runFakeService(t, cfg, down, nil)
	rows := make([]Row, 30)
	for i := range rows {
		rows[i].RequestID = fmt.Sprintf("r%02d", i)
		rows[i].Unix = 1_700_000_000
	}
	s1.add(rows)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wait1()
	if files, _ := s1.sp.stats(); files != 5 { // 4 full batches + 2 rows
		t.Fatalf("spool holds %d files, want 5", files)
	}

	up := &fakeInserter{}
	s2, wait2 := runFakeService(t, cfg, up, nil)
	eventually(t, 10*time.Second, "replay", func() bool { f, _ := s2.sp.stats(); return f == 0 })
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait2()
	got := up.rows()
	if len(got) != len(rows) {
		t.Fatalf("replayed %d rows, want %d", len(got), len(rows))
	}
	// Batches may be spooled by concurrent workers, but each batch is
	// whole: every id appears once.
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.RequestID] {
			t.Fatalf("%s replayed twice", r.RequestID)
		}
		seen[r.RequestID] = true
	}
}

func TestSpoolFullDropsAndStaysHealthy(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchRows = 100
	cfg.RetryAttempts = 1
	cfg.QueueBatches = 1
	cfg.MaxInflight = 1
	cfg.SpoolMaxBytes = 40_000
	ins := &fakeInserter{fail: func(*batch) error { return errors.New("down") }}
	reg := prometheus.NewRegistry()
	s, wait := runFakeService(t, cfg, ins, reg)
	c := serveALS(t, s)
	const total = 5000
	if err := streamEntries(testCtx(t), c, 0, 0, total, 50); err != nil {
		t.Fatalf("stream failed while the spool was full: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closeErr := s.Close(ctx)
	wait()
	dropped := testutil.ToFloat64(s.m.dropped.WithLabelValues(dropSpoolFull))
	if dropped == 0 {
		t.Fatal("no drops counted with a 40 kB spool")
	}
	files, bytes := s.sp.stats()
	if bytes > cfg.SpoolMaxBytes || files == 0 {
		t.Fatalf("spool %d files %d bytes, cap %d", files, bytes, cfg.SpoolMaxBytes)
	}
	// Every row is either in the spool or counted as dropped.
	spooled := 0
	for {
		f, ok := s.sp.oldest()
		if !ok {
			break
		}
		b, err := s.sp.read(f)
		if err != nil {
			t.Fatal(err)
		}
		spooled += b.n
		if err := s.sp.remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if spooled+int(dropped) != total {
		t.Fatalf("spooled %d + dropped %.0f != %d", spooled, dropped, total)
	}
	if closeErr == nil && s.lostRows.Load() == 0 {
		t.Error("drops not reflected")
	}
}

func TestDisabledStillFeedsBack(t *testing.T) {
	fb := &recordingFeedback{}
	reg := prometheus.NewRegistry()
	s, err := New(DefaultConfig(), nil, fb, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	wait := runService(t, s)
	c := serveALS(t, s)
	if err := streamEntries(testCtx(t), c, 3, 0, 1000, 100); err != nil {
		t.Fatal(err)
	}
	if got := fb.total.Load(); got != 1000 {
		t.Errorf("feedback calls %d, want 1000", got)
	}
	fb.mu.Lock()
	if n := fb.calls["10.0.3.1/200"]; n != 2 { // i = 0 and 750: i%250 = 0 and i%3 = 0
		t.Errorf("feedback for 10.0.3.1/200: %d, want 2 (%v)", n, len(fb.calls))
	}
	fb.mu.Unlock()
	if n := fb.calls["denied"]; n != 0 {
		t.Errorf("denied feedback %d for entries smartlayer did not deny", n)
	}
	if got := testutil.ToFloat64(s.m.dropped.WithLabelValues(dropDisabled)); got != 1000 {
		t.Errorf("dropped{disabled} %v, want 1000", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait()
}

func TestMalformedAndOversizedMessages(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = 10 * time.Millisecond
	ins := &fakeInserter{}
	s, wait := runFakeService(t, cfg, ins, prometheus.NewRegistry())
	c := serveALS(t, s, grpc.MaxRecvMsgSize(1<<20))
	ctx := testCtx(t)

	huge := testEntry(0, 1)
	huge.Request.Path = "/" + string(make([]byte, 600<<10))
	msgs := map[string]struct {
		msgs    []*alsv3.StreamAccessLogsMessage
		wantErr codes.Code
	}{
		"no identifier, empty and nil-field entries": {msgs: []*alsv3.StreamAccessLogsMessage{
			{},
			{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
				LogEntry: []*datav3.HTTPAccessLogEntry{{}, {Request: &datav3.HTTPRequestProperties{}}, {Response: &datav3.HTTPResponseProperties{}},
					{CommonProperties: &datav3.AccessLogCommon{IntermediateLogEntry: true}, Request: &datav3.HTTPRequestProperties{}}}}}},
			{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{}},
		}},
		"tcp entries are counted only": {msgs: []*alsv3.StreamAccessLogsMessage{
			{LogEntries: &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{
				LogEntry: []*datav3.TCPAccessLogEntry{{}, {}}}}},
		}},
		"huge field is capped": {msgs: []*alsv3.StreamAccessLogsMessage{
			{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
				LogEntry: []*datav3.HTTPAccessLogEntry{huge}}}},
		}},
		"message over the gRPC limit fails only its stream": {wantErr: codes.ResourceExhausted, msgs: []*alsv3.StreamAccessLogsMessage{
			{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
				LogEntry: []*datav3.HTTPAccessLogEntry{huge, huge}}}},
		}},
	}
	for name, tc := range msgs {
		t.Run(name, func(t *testing.T) {
			st, err := c.StreamAccessLogs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				if err := st.Send(m); err != nil {
					break // the server ended the stream; CloseAndRecv has the status
				}
			}
			_, err = st.CloseAndRecv()
			if status.Code(err) != tc.wantErr {
				t.Fatalf("stream ended with %v, want %v", err, tc.wantErr)
			}
		})
	}
	// The server still serves normal streams.
	if err := streamEntries(ctx, c, 1, 0, 10, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait()
	if got := testutil.ToFloat64(s.m.entries.WithLabelValues("tcp")); got != 2 {
		t.Errorf("tcp entries %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.m.entries.WithLabelValues("invalid")); got != 1 {
		t.Errorf("invalid entries %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.entries.WithLabelValues("intermediate")); got != 1 {
		t.Errorf("intermediate entries %v, want 1", got)
	}
	var capped bool
	n := 0
	for _, r := range ins.rows() {
		n++
		if len(r.Path) == maxPathBytes {
			capped = true
		}
		if len(r.Path) > maxPathBytes {
			t.Errorf("path of %d bytes stored", len(r.Path))
		}
	}
	if !capped || n != 2+1+10 {
		t.Errorf("rows %d (want 13), capped path seen %v", n, capped)
	}
}

func TestConfigValidationNamesFields(t *testing.T) {
	tests := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"batch rows":      {func(c *Config) { c.BatchRows = 0 }, "accesslog.batch_rows"},
		"flush interval":  {func(c *Config) { c.FlushInterval = 0 }, "accesslog.flush_interval"},
		"database":        {func(c *Config) { c.ClickHouse.Database = "a-b" }, "accesslog.clickhouse.database"},
		"spool max bytes": {func(c *Config) { c.SpoolMaxBytes = -1 }, "accesslog.spool_max_bytes"},
		"backoff":         {func(c *Config) { c.RetryMaxBackoff = time.Millisecond }, "accesslog.retry_min_backoff"},
		"clickhouse addr": {func(c *Config) { c.ClickHouse.Addr = []string{"nohost"} }, "accesslog.clickhouse.addr[0]"},
		"policy":          {func(c *Config) { c.StoreClientIP = 9 }, "accesslog.store_client_ip"},
		"cluster name":    {func(c *Config) { c.ClickHouse.Cluster = "a'b" }, "accesslog.clickhouse.cluster"},
		"replicated without cluster": {func(c *Config) { c.ClickHouse.Replicated = true },
			"accesslog.clickhouse.replicated"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mut(&cfg)
			_, err := New(cfg, nil, nil, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	ok := DefaultConfig()
	ok.ClickHouse.Cluster, ok.ClickHouse.Replicated = "smartlayer-prod.eu_1", true
	if err := ok.Validate(); err != nil {
		t.Errorf("a replicated cluster: %v", err)
	}
	if _, err := ParseClientIPPolicy("sometimes"); err == nil {
		t.Error("bad policy accepted")
	}
	for _, p := range []ClientIPPolicy{ClientIPAnonymous, ClientIPAlways, ClientIPNever} {
		var q ClientIPPolicy
		b, _ := p.MarshalText()
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("%v round trip: %v %v", p, q, err)
		}
	}
}

func TestSpoolOpenCleansTmpAndKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := sp.put(batchOf([]Row{{RequestID: fmt.Sprint(i), Unix: 1}})); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000009.batch.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp2, err := openSpool(dir, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000009.batch.tmp")); !os.IsNotExist(err) {
		t.Error(".tmp not removed")
	}
	for i := range 3 {
		f, ok := sp2.oldest()
		if !ok {
			t.Fatal("spool empty early")
		}
		b, err := sp2.read(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := batchRows(t, b)[0].RequestID; got != fmt.Sprint(i) {
			t.Fatalf("batch %d is %q", i, got)
		}
		if err := sp2.remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp2.put(batchOf([]Row{{Unix: 1}})); err != nil {
		t.Fatal(err)
	}
	if f, _ := sp2.oldest(); f.seq != 4 {
		t.Errorf("next seq %d, want 4 (never reuse a number)", f.seq)
	}
}

func TestNewFailuresLeaveNoMetricsBehind(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.SpoolDir = filepath.Join(file, "spool")
	if _, err := newService(bad, &fakeInserter{}, nil, nil, reg); err == nil {
		t.Fatal("spool under a file accepted")
	}
	s, err := newService(cfg, &fakeInserter{}, nil, nil, reg)
	if err != nil {
		t.Fatalf("retry after a failed New: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := newService(cfg, &fakeInserter{}, nil, nil, reg); err == nil {
		t.Fatal("second registration on one registry should fail, not panic")
	}
}

// TestFeedbackMarksOwnDenials: scoring leaves smartlayer's own 403/429 out
// of a client's error rate, so feedback must say which responses they were.
func TestFeedbackMarksOwnDenials(t *testing.T) {
	fb := &recordingFeedback{}
	s, err := New(DefaultConfig(), nil, fb, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	wait := runService(t, s)
	c := serveALS(t, s)
	denied := testEntry(9, 1)
	denied.Response.ResponseCode = wrapperspb.UInt32(403)
	denied.CommonProperties.ResponseFlags = &datav3.ResponseFlags{UnauthorizedDetails: &datav3.ResponseFlags_Unauthorized{
		Reason: datav3.ResponseFlags_Unauthorized_EXTERNAL_SERVICE}}
	upstream404 := testEntry(9, 2)
	upstream404.Response.ResponseCode = wrapperspb.UInt32(404)
	st, err := c.StreamAccessLogs(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "n"}, LogName: "als"},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{denied, upstream404}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	got := fb.calls["denied"]
	fb.mu.Unlock()
	if got != 1 || fb.total.Load() != 2 {
		t.Errorf("denied feedback %d of %d calls, want 1 of 2", got, fb.total.Load())
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait()
}

// TestBatchesOfBatchRows: rows arriving in messages of any size are sealed
// in batches of exactly batch_rows, each encoded once into a buffer sized
// from the last batch (no regrowth after the first), every row once.
func TestBatchesOfBatchRows(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchRows = 100
	type shape struct{ n, len, cap int }
	shapes := make(chan shape, 100)
	ins := &fakeInserter{fail: func(b *batch) error { shapes <- shape{b.n, len(b.data), cap(b.data)}; return nil }}
	s, err := newService(cfg, ins, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := runService(t, s)
	rows := make([]Row, 30)
	for i := range 40 { // 1,200 rows in messages of 30
		for j := range rows {
			rows[j] = Row{Unix: 1_764_000_000, RequestID: fmt.Sprint(i*30 + j), UserAgent: strings.Repeat("a", 700)}
		}
		s.add(rows)
	}
	if err := s.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	wait()
	close(shapes)
	n := 0
	for sh := range shapes {
		n++
		if sh.n != cfg.BatchRows {
			t.Errorf("batch of %d rows, batch_rows %d", sh.n, cfg.BatchRows)
		}
		if n > 1 && sh.cap > sh.len*5/4+64 {
			t.Errorf("batch %d: buffer cap %d for %d bytes: not sized from the last batch", n, sh.cap, sh.len)
		}
	}
	got := ins.rows()
	if n != 12 || len(got) != 1200 {
		t.Fatalf("%d batches with %d rows, want 12 with 1200", n, len(got))
	}
	// Two insert workers: batches arrive in any order, each row once.
	seen := make(map[string]bool, len(got))
	for _, r := range got {
		if seen[r.RequestID] || len(r.UserAgent) != 700 {
			t.Fatalf("row %q twice or changed", r.RequestID)
		}
		seen[r.RequestID] = true
	}
	for i := range 1200 {
		if !seen[fmt.Sprint(i)] {
			t.Fatalf("row %d missing", i)
		}
	}
}

// rawCodec sends and receives wire bytes as they are: a client that can
// send what no protobuf library would write.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// TestMalformedMessageEndsItsStream: bytes that are not a
// StreamAccessLogsMessage end their stream (gRPC answers Internal for any
// decode error) with a message that says so, counted and logged; the
// entries before them are stored and other streams go on.
func TestMalformedMessageEndsItsStream(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = 10 * time.Millisecond
	ins := &fakeInserter{}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	s, err := newService(cfg, ins, nil, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	wait := runService(t, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := s.NewServer()
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	ctx := testCtx(t)
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true},
		"/"+alsv3.AccessLogService_ServiceDesc.ServiceName+"/StreamAccessLogs")
	if err != nil {
		t.Fatal(err)
	}
	good := message(t, "edge-7", testEntry(0, 1), testEntry(0, 2))
	bad := []byte{byte(numMsgHTTPLogs<<3 | 2), 50, 1} // a length past the end
	for _, m := range [][]byte{good, bad} {
		if err := st.SendMsg(&m); err != nil {
			break
		}
	}
	_ = st.CloseSend()
	var reply []byte
	if err := st.RecvMsg(&reply); status.Code(err) != codes.Internal ||
		!strings.Contains(err.Error(), "malformed StreamAccessLogsMessage: unexpected EOF") {
		t.Fatalf("stream ended with %v, want Internal naming the malformed message", err)
	}
	if err := streamEntries(ctx, serveALS(t, s), 2, 0, 10, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait()
	if n := len(ins.rows()); n != 12 {
		t.Errorf("%d rows stored, want 2 before the bad message + 10", n)
	}
	if got := testutil.ToFloat64(s.m.malformed); got != 1 {
		t.Errorf("malformed_messages_total %v, want 1", got)
	}
	// The handler logs after gRPC has already ended the stream for the
	// client: wait for the line rather than race it.
	logged := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		l := logs.String()
		return l, strings.Contains(l, "malformed access log message") && strings.Contains(l, "peer=127.0.0.1:")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, ok := logged()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log does not name the malformed message and its peer:\n%s", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
