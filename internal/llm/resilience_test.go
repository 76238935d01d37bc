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
	wantState := func(want CircuitState, after string) {
		t.Helper()
		if b.State() != want {
			t.Fatalf("state %s after %s", b.State(), after)
		}
	}

	// Two failures, a success resets, three failures open.
	for _, r := range []result{resultFailure, resultFailure, resultSuccess, resultFailure, resultFailure, resultNeutral} {
		mustAllow(false)
		b.record(false, r)
	}
	wantState(CircuitClosed, "non-consecutive failures")
	mustAllow(false)
	b.record(false, resultFailure)
	wantState(CircuitOpen, "3 consecutive failures")
	mustReject()
	clk.Add(9 * time.Second)
	mustReject()

	// Cool-down over: one probe, others rejected while it runs.
	clk.Add(time.Second)
	mustAllow(true)
	mustReject()
	// The probe fails: open for another cool-down.
	b.record(true, resultFailure)
	wantState(CircuitOpen, "failed probe")
	mustReject()
	clk.Add(10 * time.Second)
	// A neutral probe (caller gave up) frees the probe slot, stays half-open.
	mustAllow(true)
	b.record(true, resultNeutral)
	wantState(CircuitHalfOpen, "neutral probe")
	mustAllow(true)
	b.record(true, resultSuccess)
	wantState(CircuitClosed, "successful probe")
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
		"smartlayer_llm_retries_total", "smartlayer_llm_circuit_state", "smartlayer_llm_in_flight"} {
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
