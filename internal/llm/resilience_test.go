package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBreakerStateMachine(t *testing.T) {
	clk := newFakeClock()
	var changes []string
	b := newBreaker(3, 10*time.Second, clk.Now, func(from, to CircuitState) { changes = append(changes, from.String()+">"+to.String()) })
	mustAllow := func(wantProbe bool) {
		t.Helper()
		probe, ok := b.allow()
		if !ok || probe != wantProbe {
			t.Fatalf("allow() = probe %v ok %v, want probe %v ok true (state %s)", probe, ok, wantProbe, b.State())
		}
	}
	mustReject := func() {
		t.Helper()
		if _, ok := b.allow(); ok {
			t.Fatalf("allow() ok in state %s", b.State())
		}
	}

	// Two failures, a success resets, three failures open.
	for _, r := range []result{resultFailure, resultFailure, resultSuccess, resultFailure, resultFailure, resultNeutral} {
		mustAllow(false)
		b.record(false, r)
	}
	if b.State() != CircuitClosed {
		t.Fatalf("state %s after non-consecutive failures", b.State())
	}
	mustAllow(false)
	b.record(false, resultFailure)
	if b.State() != CircuitOpen {
		t.Fatalf("state %s after 3 consecutive failures", b.State())
	}
	mustReject()
	clk.Add(9 * time.Second)
	mustReject()

	// Cool-down over: one probe, others rejected while it runs.
	clk.Add(time.Second)
	mustAllow(true)
	mustReject()
	// The probe fails: open for another cool-down.
	b.record(true, resultFailure)
	if b.State() != CircuitOpen {
		t.Fatalf("state %s after failed probe", b.State())
	}
	mustReject()
	clk.Add(10 * time.Second)
	// A neutral probe (caller gave up) frees the probe slot, stays half-open.
	mustAllow(true)
	b.record(true, resultNeutral)
	if b.State() != CircuitHalfOpen {
		t.Fatalf("state %s after neutral probe", b.State())
	}
	mustAllow(true)
	b.record(true, resultSuccess)
	if b.State() != CircuitClosed {
		t.Fatalf("state %s after successful probe", b.State())
	}
	mustAllow(false)
	want := []string{"closed>open", "open>half_open", "half_open>open", "open>half_open", "half_open>closed"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("transitions %v, want %v", changes, want)
	}
}

// TestCircuitOpensAndCloses runs the breaker through the client against a
// failing, then recovering provider, with an injected clock.
func TestCircuitOpensAndCloses(t *testing.T) {
	var mu sync.Mutex
	healthy := false
	fake := newFakeLLM(t, func(_ int, _ fakeRequest, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		ok := healthy
		mu.Unlock()
		if !ok {
			apiError(w, http.StatusServiceUnavailable, nil)
			return
		}
		answer(w, blockJSON)
	})
	clk := newFakeClock()
	cfg := testConfig(fake.url())
	cfg.MaxRetries = 0
	cfg.BreakerFailures = 3
	cfg.BreakerCooldown = 30 * time.Second
	cfg.CacheTTL = 0
	c, reg := newTestClient(t, cfg, WithClock(clk.Now))
	ctx := context.Background()
	gauge := func() float64 { return testutil.ToFloat64(c.m.circuit) }

	for i := range 3 {
		if _, err := c.ClientVerdict(ctx, sampleSummary()); !errors.Is(err, ErrServer) {
			t.Fatalf("call %d: err %v, want ErrServer", i, err)
		}
	}
	if c.CircuitState() != CircuitOpen || gauge() != 2 {
		t.Fatalf("after 3 failures: state %s gauge %v", c.CircuitState(), gauge())
	}
	start := time.Now()
	if _, err := c.ClientVerdict(ctx, sampleSummary()); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("err %v, want ErrCircuitOpen", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Error("open circuit did not answer at once")
	}
	if fake.count() != 3 {
		t.Fatalf("open circuit let a request through: %d requests", fake.count())
	}

	// Probe fails: stays open.
	clk.Add(30 * time.Second)
	if _, err := c.ClientVerdict(ctx, sampleSummary()); !errors.Is(err, ErrServer) {
		t.Fatalf("probe err %v", err)
	}
	if c.CircuitState() != CircuitOpen {
		t.Fatalf("state %s after failed probe", c.CircuitState())
	}

	// Provider recovers; after the cool-down the probe closes the circuit.
	mu.Lock()
	healthy = true
	mu.Unlock()
	if _, err := c.ClientVerdict(ctx, sampleSummary()); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("before cool-down: err %v", err)
	}
	clk.Add(30 * time.Second)
	if _, err := c.ClientVerdict(ctx, sampleSummary()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if c.CircuitState() != CircuitClosed || gauge() != 0 {
		t.Fatalf("after good probe: state %s gauge %v", c.CircuitState(), gauge())
	}
	if got := testutil.ToFloat64(c.m.calls.WithLabelValues("client_verdict", "circuit_open")); got != 2 {
		t.Errorf("calls{circuit_open} = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "smartlayer_llm_circuit_state"); err != nil || n != 1 {
		t.Errorf("circuit gauge not registered: %d %v", n, err)
	}
}

// TestInvalidAnswersDoNotOpenTheCircuit: an attacker who makes the model
// answer garbage must not switch the LLM off for everyone.
func TestInvalidAnswersDoNotOpenTheCircuit(t *testing.T) {
	fake := newFakeLLM(t, func(_ int, _ fakeRequest, w http.ResponseWriter, _ *http.Request) {
		answer(w, `{"action":"MAYBE","confidence":0.5,"reason":"x"}`)
	})
	cfg := testConfig(fake.url())
	cfg.BreakerFailures = 2
	c, _ := newTestClient(t, cfg)
	for i := range 5 {
		s := sampleSummary()
		s.Score = i
		if _, err := c.ClientVerdict(context.Background(), s); !errors.Is(err, ErrInvalidAnswer) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if c.CircuitState() != CircuitClosed {
		t.Errorf("state %s, want closed", c.CircuitState())
	}
}

func TestCache(t *testing.T) {
	fake := newFakeLLM(t, always(payloadJSON))
	clk := newFakeClock()
	cfg := testConfig(fake.url())
	cfg.CacheTTL = time.Minute
	c, _ := newTestClient(t, cfg, WithClock(clk.Now))
	ctx := context.Background()
	p := samplePayload()

	if _, ok := c.CachedPayloadVerdict(p); ok {
		t.Fatal("cache hit before any call")
	}
	first, err := c.PayloadVerdict(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.PayloadVerdict(ctx, p)
	if err != nil || second != first {
		t.Fatalf("second call: %+v %v", second, err)
	}
	if fake.count() != 1 {
		t.Fatalf("requests = %d, want 1 (cache hit)", fake.count())
	}
	if v, ok := c.CachedPayloadVerdict(p); !ok || v != first {
		t.Errorf("CachedPayloadVerdict = %+v %v", v, ok)
	}
	if got := testutil.ToFloat64(c.m.cacheHits.WithLabelValues("payload_verdict")); got != 2 {
		t.Errorf("cache hits = %v, want 2", got)
	}
	// A different payload is a different key.
	other := p
	other.Payload = "id=2"
	if _, err := c.PayloadVerdict(ctx, other); err != nil {
		t.Fatal(err)
	}
	if fake.count() != 2 {
		t.Fatalf("requests = %d, want 2", fake.count())
	}
	// Past the TTL the answer is asked again.
	clk.Add(time.Minute)
	if _, err := c.PayloadVerdict(ctx, p); err != nil {
		t.Fatal(err)
	}
	if fake.count() != 3 {
		t.Fatalf("requests = %d after TTL, want 3", fake.count())
	}
	// Errors are not cached.
	fake.setHandler(always("garbage"))
	p.Payload = "id=3"
	for range 2 {
		if _, err := c.PayloadVerdict(ctx, p); !errors.Is(err, ErrInvalidAnswer) {
			t.Fatalf("err %v", err)
		}
	}
	if fake.count() != 5 {
		t.Errorf("requests = %d, want 5 (invalid answers not cached)", fake.count())
	}
}

func TestCacheBounded(t *testing.T) {
	clk := newFakeClock()
	c := newCache(time.Minute, 32, clk.Now)
	for i := range 1000 {
		c.put(makeKey(kindClient, "m", []byte(fmt.Sprint(i))), i)
		if c.len() > 32 {
			t.Fatalf("cache holds %d entries, limit 32", c.len())
		}
	}
	k := makeKey(kindClient, "m", []byte("last"))
	c.put(k, "v")
	if v, ok := c.get(k); !ok || v != "v" {
		t.Errorf("latest entry evicted")
	}
	if makeKey(kindClient, "m", []byte("x")) == makeKey(kindPayload, "m", []byte("x")) ||
		makeKey(kindClient, "m1", []byte("x")) == makeKey(kindClient, "m2", []byte("x")) {
		t.Error("cache key ignores kind or model")
	}
}

func TestConcurrencyBound(t *testing.T) {
	fake := newFakeLLM(t, func(_ int, _ fakeRequest, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(20 * time.Millisecond)
		answer(w, blockJSON)
	})
	cfg := testConfig(fake.url())
	cfg.MaxConcurrency = 2
	cfg.Timeout = 10 * time.Second
	c, _ := newTestClient(t, cfg)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := sampleSummary()
			s.Score = i
			if _, err := c.ClientVerdict(context.Background(), s); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := fake.maxIn.Load(); got > 2 || got < 1 {
		t.Errorf("max concurrent requests %d, want 1..2", got)
	}
	if fake.count() != 8 {
		t.Errorf("requests = %d, want 8", fake.count())
	}
}

// TestSlotWaitCountsAgainstTheDeadline: with every slot taken, a call fails
// with ErrTimeout at its deadline without reaching the provider.
func TestSlotWaitCountsAgainstTheDeadline(t *testing.T) {
	arrived := make(chan struct{}, 1)
	var fake *fakeLLM
	fake = newFakeLLM(t, func(_ int, _ fakeRequest, _ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		fake.hang(r)
	})
	cfg := testConfig(fake.url())
	cfg.MaxConcurrency = 1
	cfg.Timeout = 200 * time.Millisecond
	c, _ := newTestClient(t, cfg)
	busyCtx, stopBusy := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Narrative(busyCtx, []byte(`{}`)) // NarrativeTimeout: holds the slot for long
		done <- err
	}()
	<-arrived
	start := time.Now()
	if _, err := c.ClientVerdict(context.Background(), sampleSummary()); !errors.Is(err, ErrTimeout) {
		t.Errorf("err %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %s, want about the 200ms timeout", took)
	}
	stopBusy()
	if err := <-done; !errors.Is(err, ErrCanceled) {
		t.Errorf("busy call err %v, want ErrCanceled", err)
	}
	if fake.count() != 1 {
		t.Errorf("requests = %d, want 1", fake.count())
	}
}

func TestAsyncQueue(t *testing.T) {
	arrived := make(chan struct{}, 16)
	unblock := make(chan struct{})
	fake := newFakeLLM(t, func(_ int, _ fakeRequest, w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-unblock
		answer(w, blockJSON)
	})
	cfg := testConfig(fake.url())
	cfg.MaxConcurrency = 1
	cfg.QueueSize = 2
	cfg.Timeout = 10 * time.Second
	c, _ := newTestClient(t, cfg)

	var mu sync.Mutex
	results := map[string]int{}
	var wg sync.WaitGroup
	submit := func(key string, score int) bool {
		s := sampleSummary()
		s.Score = score
		wg.Add(1)
		ok := c.ClientVerdictAsync(key, s, func(v ClientVerdict, err error) {
			defer wg.Done()
			if err != nil || v.Action != ActionBlock {
				t.Errorf("%s: %+v %v", key, v, err)
			}
			mu.Lock()
			results[key]++
			mu.Unlock()
		})
		if !ok {
			wg.Done()
		}
		return ok
	}

	if !submit("a", 1) {
		t.Fatal("a dropped")
	}
	<-arrived // a is running: the worker is busy
	if submit("a", 2) {
		t.Error("second question for running key a accepted")
	}
	if !submit("b", 3) || !submit("c", 4) {
		t.Fatal("b or c dropped with room in the queue")
	}
	if got := testutil.ToFloat64(c.m.depth); got != 2 {
		t.Errorf("queue depth %v, want 2", got)
	}
	if submit("b", 5) {
		t.Error("second question for queued key b accepted")
	}
	if submit("d", 6) {
		t.Error("d accepted by a full queue")
	}
	close(unblock)
	wg.Wait()
	if fmt.Sprint(results) != "map[a:1 b:1 c:1]" {
		t.Errorf("callbacks %v, want each of a b c once", results)
	}
	for reason, want := range map[DropReason]float64{DropFull: 1, DropDuplicate: 2, DropClosed: 0} {
		if got := testutil.ToFloat64(c.m.drops.WithLabelValues(string(reason))); got != want {
			t.Errorf("drops{%s} = %v, want %v", reason, got, want)
		}
	}
	// Once answered, the key is free again (and the answer is cached).
	if !submit("a", 1) {
		t.Error("key a still pending after its answer")
	}
	wg.Wait()
	if got := testutil.ToFloat64(c.m.cacheHits.WithLabelValues("client_verdict")); got != 1 {
		t.Errorf("cache hits %v, want 1", got)
	}
}

func TestCloseCancelsQueuedQuestions(t *testing.T) {
	arrived := make(chan struct{}, 4)
	var fake *fakeLLM
	fake = newFakeLLM(t, func(_ int, _ fakeRequest, _ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		fake.hang(r)
	})
	cfg := testConfig(fake.url())
	cfg.MaxConcurrency = 1
	cfg.Timeout = 10 * time.Second
	c, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for i, key := range []string{"running", "queued"} {
		s := sampleSummary()
		s.Score = i
		if !c.ClientVerdictAsync(key, s, func(_ ClientVerdict, err error) { errs <- err }) {
			t.Fatalf("%s dropped", key)
		}
	}
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want DeadlineExceeded", err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrCanceled) {
			t.Errorf("callback err %v, want ErrCanceled", err)
		}
	}
	if c.PayloadVerdictAsync("late", samplePayload(), nil) {
		t.Error("submit accepted after Close")
	}
	if got := testutil.ToFloat64(c.m.drops.WithLabelValues("closed")); got != 1 {
		t.Errorf("drops{closed} = %v", got)
	}
}

func TestMetrics(t *testing.T) {
	fake := newFakeLLM(t, func(n int, _ fakeRequest, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			apiError(w, http.StatusInternalServerError, map[string]string{"Retry-After-Ms": "10"})
			return
		}
		answer(w, blockJSON)
	})
	c, reg := newTestClient(t, testConfig(fake.url()))
	if _, err := c.ClientVerdict(context.Background(), sampleSummary()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"calls ok":        testutil.ToFloat64(c.m.calls.WithLabelValues("client_verdict", "ok")),
		"failures 5xx":    testutil.ToFloat64(c.m.failures.WithLabelValues("client_verdict", "server_error")),
		"retries":         testutil.ToFloat64(c.m.retries.WithLabelValues("client_verdict")),
		"in flight after": 1 - testutil.ToFloat64(c.m.inFlight),
	} {
		if want != 1 {
			t.Errorf("%s = %v, want 1", name, want)
		}
	}
	if n := testutil.CollectAndCount(c.m.latency); n != 1 {
		t.Errorf("latency series = %d", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"smartlayer_llm_calls_total", "smartlayer_llm_call_duration_seconds", "smartlayer_llm_attempt_failures_total",
		"smartlayer_llm_retries_total", "smartlayer_llm_circuit_state", "smartlayer_llm_queue_depth", "smartlayer_llm_in_flight"} {
		if !names[want] {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
	if _, err := New(testConfig(fake.url()), reg, nil); err == nil {
		t.Error("second client on the same registry: want a registration error")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[string]struct {
		headers map[string]string
		want    time.Duration
	}{
		"none":           {want: 0},
		"seconds":        {headers: map[string]string{"Retry-After": "2"}, want: 2 * time.Second},
		"fractional":     {headers: map[string]string{"Retry-After": "0.5"}, want: 500 * time.Millisecond},
		"http date":      {headers: map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, want: 7 * time.Second},
		"date in past":   {headers: map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, want: 0},
		"ms wins":        {headers: map[string]string{"Retry-After-Ms": "150", "Retry-After": "9"}, want: 150 * time.Millisecond},
		"garbage":        {headers: map[string]string{"Retry-After": "soon"}, want: 0},
		"negative":       {headers: map[string]string{"Retry-After": "-3"}, want: 0},
		"absurdly large": {headers: map[string]string{"Retry-After": "1e300"}, want: 0},
		"bad ms, good s": {headers: map[string]string{"Retry-After-Ms": "x", "Retry-After": "1"}, want: time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			if got := parseRetryAfter(h, now); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	for _, retry := range []int{0, 1, 2, 3, 4, 15, 16, 39, 40, 63, 64, 1000} {
		d := backoff(retry)
		want := min(backoffBase<<min(retry, 20), backoffMax)
		if d < want/2 || d > want {
			t.Errorf("backoff(%d) = %s, want in [%s, %s]", retry, d, want/2, want)
		}
	}
}
