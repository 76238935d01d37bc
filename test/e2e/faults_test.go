package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/smartlayer/smartlayer/internal/testenv"
	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

// metric sums the samples of a metric on authz's /metrics whose label set
// contains every one of labels (e.g. `kind="stage"`).
func metric(t *testing.T, p *authzProcess, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return sum
}

// stopAuthz sends SIGTERM and returns the exit code, failing after timeout.
func stopAuthz(t *testing.T, p *authzProcess, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-done
		t.Fatalf("authz still running %v after SIGTERM", timeout)
		return -1
	}
}

// alsEntry is a minimal HTTP access-log entry with its own request id.
func alsEntry(id string, i int) *alsdatav3.HTTPAccessLogEntry {
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	return &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: &alsdatav3.AccessLogCommon{
			DownstreamRemoteAddress:    addr(fmt.Sprintf("198.18.%d.%d", i/250%250, i%250+1), 40000),
			DownstreamLocalAddress:     addr("10.0.0.10", 8080),
			StartTime:                  timestamppb.Now(),
			TimeToLastDownstreamTxByte: durationpb.New(12 * time.Millisecond),
			UpstreamCluster:            "app",
			AccessLogType:              alsdatav3.AccessLogType_DownstreamEnd,
		},
		ProtocolVersion: alsdatav3.HTTPAccessLogEntry_HTTP11,
		Request: &alsdatav3.HTTPRequestProperties{
			RequestMethod: corev3.RequestMethod_GET, Scheme: "http", Authority: "api.example.com",
			Path: fmt.Sprintf("/products/%d", i%500), UserAgent: browserUA, RequestId: id,
		},
		Response: &alsdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseBodyBytes: 512},
	}
}

// alsLoad streams access-log entries on one stream, the way one Envoy's
// gRPC access logger does, at about rate entries a second.
type alsLoad struct {
	sent atomic.Int64
	// keepOpen leaves the stream open after the last entry, as Envoy
	// does: it never ends its access-log stream.
	keepOpen bool
}

// run sends batches until ctx ends or total entries went out, then closes
// the stream after the server has read everything.
func (l *alsLoad) run(ctx context.Context, conn grpc.ClientConnInterface, node string, rate, total int) error {
	stream, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	const tick = 20 * time.Millisecond
	per := max(1, rate*int(tick)/int(time.Second))
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	first := true
	for int(l.sent.Load()) < total {
		select {
		case <-ctx.Done():
			total = 0
			continue
		case <-ticker.C:
		}
		n := min(per, total-int(l.sent.Load()))
		entries := make([]*alsdatav3.HTTPAccessLogEntry, n)
		for k := range entries {
			entries[k] = alsEntry(envoysim.NewRequestID(), int(l.sent.Load())+k)
		}
		msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
		if first {
			msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{
				Node: &corev3.Node{Id: node, Cluster: "edge"}, LogName: "smartlayer"}
			first = false
		}
		if err := stream.Send(msg); err != nil {
			return fmt.Errorf("send after %d entries: %w", l.sent.Load(), err)
		}
		l.sent.Add(int64(n))
	}
	if l.keepOpen {
		return nil
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("close stream: %w", err)
	}
	return nil
}

// waitRows polls ClickHouse until db.access_log holds want rows, then
// checks each request id is there exactly once.
func waitRows(t *testing.T, chAddr, db string, want int64, timeout time.Duration) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows, ids uint64
	waitFor(t, timeout, "access log rows", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(request_id) FROM "+db+".access_log").Scan(&rows, &ids); err != nil {
			return err
		}
		if rows < uint64(want) {
			return fmt.Errorf("%d of %d rows", rows, want)
		}
		return nil
	})
	if rows != uint64(want) || ids != uint64(want) {
		t.Fatalf("access_log: %d rows, %d request ids; want %d of each", rows, ids, want)
	}
}

const faultRedisConfig = `
server: {decision_budget: 50ms, fail_mode: allow}
store:
  backend: redis
  redis: {addrs: [%q], timeout: 5ms}
`

// TestRedisRestartUnderLoad kills Redis under a steady load of Checks: every
// Check still answers quickly, by the fail mode (allow), and decisions are
// normal again once Redis is back.
func TestRedisRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	redis := testenv.StartRedis(t)
	p := startAuthz(t, fmt.Sprintf(faultRedisConfig, redis.Addr))
	env := envoysim.New(p.authzConn, nil, upstream, "edge-redis-fault")

	type obs struct {
		start, end time.Time
		res        envoysim.Result
		err        error
	}
	var (
		mu   sync.Mutex
		seen []obs
		stop = make(chan struct{})
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Many clients at a gentle pace each, so no behaviour rule
				// denies: every answer is about the store, not the traffic.
				i := next.Add(1)
				r := get(fmt.Sprintf("198.51.%d.%d", 100+w, i%200+1), fmt.Sprintf("/products/%d", i%50), browserUA)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				o := obs{start: time.Now()}
				o.res, o.err = env.Do(ctx, r)
				o.end = time.Now()
				cancel()
				mu.Lock()
				seen = append(seen, o)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	errsBefore := metric(t, p, "smartlayer_check_errors_total")
	time.Sleep(time.Second) // load with Redis up, for comparison
	redis.Stop()
	down := time.Now()
	time.Sleep(3 * time.Second)
	up := time.Now()
	redis.Start()
	errsAfter := metric(t, p, "smartlayer_check_errors_total")
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	var during, failmode, total int
	var maxDuring, maxAll time.Duration
	for _, o := range seen {
		total++
		took := o.end.Sub(o.start)
		maxAll = max(maxAll, took)
		if o.err != nil {
			t.Errorf("Check at %v failed: %v", o.start.Sub(down), o.err)
			continue
		}
		if o.start.After(down) && o.end.Before(up) {
			during++
			maxDuring = max(maxDuring, took)
			if !o.res.Allowed {
				t.Errorf("Check during the outage denied: %d %s", o.res.Status, o.res.Reason)
			}
			if o.res.Metadata["module"] == "failmode" {
				failmode++
			}
		}
	}
	t.Logf("%d Checks, %d during the 3 s outage (%d by the fail mode); slowest during the outage %v, overall %v",
		total, during, failmode, maxDuring, maxAll)
	if during < 20 {
		t.Fatalf("only %d Checks during the outage", during)
	}
	// Fail-open answers: the behaviour stage cannot read its state, so the
	// pipeline answers by fail_mode — most, not necessarily all, Checks
	// (a connection handshake may fail before the stage starts).
	if failmode < during*9/10 {
		t.Errorf("%d of %d Checks during the outage answered by the fail mode", failmode, during)
	}
	if maxDuring > time.Second {
		t.Errorf("slowest Check during the outage took %v, want < 1s", maxDuring)
	}
	if errsAfter-errsBefore < float64(failmode) {
		t.Errorf("smartlayer_check_errors_total rose by %v, want ≥ %d", errsAfter-errsBefore, failmode)
	}

	// Redis is back: behaviour decides again.
	waitFor(t, 10*time.Second, "normal decisions after restart", func() error {
		res, err := env.Do(ctxFor(t, 5*time.Second), get("192.0.2.10", "/products", ""))
		if err != nil {
			return err
		}
		if res.Allowed || res.Reason != "behavior.empty_user_agent" {
			return fmt.Errorf("empty user agent: allowed=%v reason=%q module=%v", res.Allowed, res.Reason, res.Metadata["module"])
		}
		return nil
	})
	res, err := env.Do(ctxFor(t, 5*time.Second), get("198.51.100.250", "/products", browserUA))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allowed || res.Metadata["module"] == "failmode" {
		t.Fatalf("browser after restart: allowed=%v metadata %v", res.Allowed, res.Metadata)
	}
}

const faultALSConfig = `
store: {backend: memory}
accesslog:
  clickhouse: {addr: [%q], database: %s}
  flush_interval: %s
  batch_rows: %d
  retry_max_backoff: 1s
  spool_dir: %s
server: {shutdown_timeout: 5s}
`

// TestClickHouseOutageDuringIngest stops ClickHouse for 20 s in the middle
// of a steady access-log stream: every entry lands exactly once.
func TestClickHouseOutageDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	const (
		rate   = 5000 // issue 11's figure
		total  = rate * 26
		outage = 20 * time.Second
	)
	ch := testenv.StartClickHouse(t)
	db := fmt.Sprintf("fault_%d", time.Now().UnixNano())
	p := startAuthz(t, fmt.Sprintf(faultALSConfig, ch.Addr, db, "200ms", 5000, t.TempDir()))
	waitRows(t, ch.Addr, db, 0, 30*time.Second) // schema created

	var load alsLoad
	done := make(chan error, 1)
	go func() { done <- load.run(context.Background(), p.alsConn, "edge-ch-fault", rate, total) }()
	waitFor(t, 10*time.Second, "entries before the outage", func() error {
		if n := load.sent.Load(); n < 3*rate {
			return fmt.Errorf("%d sent", n)
		}
		return nil
	})
	ch.Stop()
	t.Logf("ClickHouse stopped after %d entries", load.sent.Load())
	time.Sleep(outage)
	t.Logf("ClickHouse restarting after %d entries", load.sent.Load())
	ch.Start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("stream stuck after %d entries", load.sent.Load())
	}
	waitRows(t, ch.Addr, db, total, 30*time.Second)
	t.Logf("%d entries, all in ClickHouse exactly once; %v batches spooled, %v replayed", total,
		metric(t, p, "smartlayer_accesslog_spooled_batches_total"), metric(t, p, "smartlayer_accesslog_replayed_batches_total"))
}

// TestStartsWithClickHouseDown: authz starts and serves with ClickHouse
// unreachable (a rollout during a ClickHouse outage must not crash-loop),
// spools the access log, and delivers every entry exactly once when
// ClickHouse comes back.
func TestStartsWithClickHouseDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	const total = 5000
	ch := testenv.StartClickHouse(t)
	ch.Stop()
	db := fmt.Sprintf("chdown_%d", time.Now().UnixNano())
	p := startAuthz(t, fmt.Sprintf(faultALSConfig, ch.Addr, db, "200ms", 1000, t.TempDir()))
	var load alsLoad
	if err := load.run(ctxFor(t, 30*time.Second), p.alsConn, "edge-chdown", 2500, total); err != nil {
		t.Fatal(err)
	}
	ch.Start()
	waitRows(t, ch.Addr, db, total, 60*time.Second)
}

// heldRowsSetup starts ClickHouse and returns a config under which rows
// wait in memory (long flush interval, huge batches) until shutdown.
func heldRowsSetup(t *testing.T, name, spool string) (*testenv.Server, string, string) {
	t.Helper()
	ch := testenv.StartClickHouse(t)
	db := fmt.Sprintf("%s_%d", name, time.Now().UnixNano())
	return ch, db, fmt.Sprintf(faultALSConfig, ch.Addr, db, "30s", 1_000_000, spool)
}

// TestSIGTERMWithOpenStream: Envoy keeps its access-log stream open across
// authz's SIGTERM. authz ends the stream itself, flushes every row it
// received and exits within drain_delay + shutdown_timeout (the pod's
// grace period is sized to that), losing nothing.
func TestSIGTERMWithOpenStream(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	const total = 20000
	ch, db, cfg := heldRowsSetup(t, "openstream", t.TempDir())
	p := startAuthz(t, cfg)
	waitRows(t, ch.Addr, db, 0, 30*time.Second) // schema created
	load := alsLoad{keepOpen: true}
	if err := load.run(ctxFor(t, 30*time.Second), p.alsConn, "edge-open", 10000, total); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "entries received", func() error {
		if got := metric(t, p, "smartlayer_accesslog_entries_received_total", `kind="http"`); got != total {
			return fmt.Errorf("received %v of %d", got, total)
		}
		return nil
	})
	const grace = 5*time.Second + 5*time.Second // default drain_delay + faultALSConfig's shutdown_timeout
	start := time.Now()
	if code := stopAuthz(t, p, 2*grace); code != 0 {
		t.Fatalf("authz exited %d after SIGTERM, want 0\n%s", code, p.out)
	}
	if took := time.Since(start); took > grace+2*time.Second {
		t.Errorf("shutdown with an open stream took %v; the grace period is %v", took, grace)
	}
	waitRows(t, ch.Addr, db, total, 30*time.Second)
}

// TestSIGTERMSpoolsBufferedRows sends SIGTERM while rows sit in memory and
// ClickHouse is down: authz spools them, exits 0, and the next authz on the
// same spool delivers them exactly once.
func TestSIGTERMSpoolsBufferedRows(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	const total = 20000
	spool := t.TempDir()
	ch, db, cfg := heldRowsSetup(t, "sigterm", spool)
	p := startAuthz(t, cfg)
	waitRows(t, ch.Addr, db, 0, 30*time.Second) // schema created
	ch.Stop()

	var load alsLoad
	if err := load.run(ctxFor(t, 30*time.Second), p.alsConn, "edge-sigterm", 10000, total); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, p, "smartlayer_accesslog_entries_received_total", `kind="http"`); got != total {
		t.Fatalf("authz received %v entries, want %d", got, total)
	}
	if code := stopAuthz(t, p, 20*time.Second); code != 0 {
		t.Fatalf("authz exited %d after SIGTERM, want 0\n%s", code, p.out)
	}
	files, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("nothing spooled\n%s", p.out)
	}
	t.Logf("spooled %d file(s) on SIGTERM", len(files))

	ch.Start()
	startAuthz(t, cfg)
	waitRows(t, ch.Addr, db, total, 30*time.Second)
}

// TestHangingLLMFailsOpen points authz at an LLM that never answers: Checks
// stay fast and the grey-zone client it was asked about is not banned.
func TestHangingLLMFailsOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	var asked atomic.Int64
	release := make(chan struct{})
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			asked.Add(1)
			// Hang until the test ends: a client that gives up does not
			// always close the connection, so r.Context() may never end.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(llm.Close)
	t.Cleanup(func() { close(release) }) // runs first
	p := startAuthz(t, fmt.Sprintf(`
store: {backend: memory}
behavior: {llm: {timeout: 1s}}
llm: {base_url: %q, model: hang-1, max_retries: 0}
`, llm.URL+"/v1"))
	env := envoysim.New(p.authzConn, nil, upstream, "edge-llm-hang")

	var (
		mu      sync.Mutex
		slowest time.Duration
	)
	do := func(r *envoysim.Request) envoysim.Result {
		start := time.Now()
		res, err := env.Do(ctxFor(t, 5*time.Second), r)
		took := time.Since(start)
		if err != nil {
			t.Error(err)
			return res
		}
		mu.Lock()
		slowest = max(slowest, took)
		mu.Unlock()
		return res
	}

	// Ordinary users alongside.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt) // before the connections close, also on t.Fatal
	for u := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(700 * time.Millisecond): // under rate_suspect (20 per 10 s)
				}
				pages := []string{"/", "/products", "/cart", "/products/shoes", "/faq"}
				if res := do(get(fmt.Sprintf("198.51.100.%d", 20+u), pages[(i+u)%len(pages)], browserUA)); !res.Allowed {
					t.Errorf("ordinary user denied: %s", res.Reason)
				}
			}
		}()
	}

	// curl on sensitive paths scores 2+4 = 6 after the 20-request grace
	// period: grey (≥ 4), below the ban (8). Under 20 requests per 10 s
	// and only 6 distinct endpoints, no other signal adds to it.
	paths := []string{"/admin", "/wp-admin", "/api/token", "/admin/login", "/admin/users", "/api/token/refresh"}
	grey := 0
	for i := range 30 {
		res := do(get("192.0.2.40", paths[i%len(paths)], "curl/8.5.0"))
		if !res.Allowed {
			t.Fatalf("grey-zone client denied at request %d: %s (metadata %v)", i+1, res.Reason, res.Metadata)
		}
		if s, _ := res.Metadata["score"].(float64); s >= 4 {
			grey++
		}
		time.Sleep(550 * time.Millisecond)
	}
	if grey == 0 {
		t.Fatal("the client never reached the grey zone; the test proves nothing")
	}
	// The LLM was asked and authz gave up waiting; the client is still
	// allowed afterwards (no ban from a verdict that never came).
	abandoned := `msg="behavior: no LLM verdict; client not banned" client=192.0.2.40 err="llm client_verdict: timeout`
	waitFor(t, 15*time.Second, "an abandoned LLM call", func() error {
		if !strings.Contains(p.out.String(), abandoned) {
			return fmt.Errorf("%d LLM calls, none given up yet", asked.Load())
		}
		return nil
	})
	for i := range 3 {
		if res := do(get("192.0.2.40", paths[i], "curl/8.5.0")); !res.Allowed {
			t.Fatalf("grey-zone client denied after the LLM timed out: %s", res.Reason)
		}
		time.Sleep(550 * time.Millisecond)
	}
	halt()
	t.Logf("%d grey answers, %d LLM calls, slowest Check %v", grey, asked.Load(), slowest)
	if slowest > time.Second {
		t.Errorf("slowest Check took %v, want < 1s", slowest)
	}
}
