package payload

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeVerdicts records every ask and answers with verdict/err; with hold
// set it signals started and waits for release or ctx.
type fakeVerdicts struct {
	mu      sync.Mutex
	samples []Sample
	verdict Verdict
	err     error
	hold    bool
	started chan struct{}
	release chan struct{}
}

func newFake(v Verdict) *fakeVerdicts {
	return &fakeVerdicts{verdict: v, started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (f *fakeVerdicts) PayloadVerdict(ctx context.Context, s Sample) (Verdict, error) {
	f.mu.Lock()
	f.samples = append(f.samples, s)
	hold := f.hold
	f.mu.Unlock()
	f.started <- struct{}{}
	if hold {
		select {
		case <-f.release:
		case <-ctx.Done():
			return Verdict{}, ctx.Err()
		}
	}
	return f.verdict, f.err
}

func (f *fakeVerdicts) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.samples)
}

// A borderline payload (shell_injection weight 2) and a second, different one.
var (
	borderA = &Input{Path: "/", RawQuery: "q=foo+%7C+cat", Client: "10.0.0.1"}
	borderB = &Input{Path: "/", RawQuery: "q=bar+%7C+head", Client: "10.0.0.2"}
)

type llmEnv struct {
	v    *Validator
	fake *fakeVerdicts
	reg  *prometheus.Registry
	now  time.Time
	evs  chan Malicious
}

func newLLMEnv(t *testing.T, mode LLMMode, vd Verdict, mut ...func(*Config)) *llmEnv {
	t.Helper()
	cfg := DefaultConfig()
	cfg.LLM.Mode = mode
	for _, m := range mut {
		m(&cfg)
	}
	e := &llmEnv{fake: newFake(vd), reg: prometheus.NewRegistry(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), evs: make(chan Malicious, 16)}
	var mu sync.Mutex
	e.v = newTestValidator(t, cfg, WithVerdicts(e.fake), WithRegisterer(e.reg),
		WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return e.now }),
		WithMaliciousHook(func(_ context.Context, m Malicious) { e.evs <- m }))
	return e
}

// run starts the background workers until the test ends.
func (e *llmEnv) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

func TestAsyncMaliciousVerdictBlocksRepeats(t *testing.T) {
	e := newLLMEnv(t, LLMAsync, Verdict{Malicious: true, Confidence: 0.95, Reason: "command injection"})
	e.run(t)
	ctx := context.Background()

	first := e.v.Inspect(ctx, borderA)
	if first.Action != Allow || !first.Borderline || first.LLM != LLMQueued {
		t.Fatalf("first: action %v borderline %v llm %q, want allow, borderline, queued", first.Action, first.Borderline, first.LLM)
	}
	ev := <-e.evs
	if ev != (Malicious{Client: "10.0.0.1", Hash: first.Hash, Reason: ReasonLLM, Score: 2, Confidence: 0.95, Source: SourceAsync}) {
		t.Fatalf("event %+v", ev)
	}
	if s := e.fake.samples[0]; !strings.Contains(s.Excerpt, "foo | cat") || len(s.Detectors) != 1 || s.Detectors[0] != "shell_injection" {
		t.Errorf("sample %+v", s)
	}

	// Same payload, other client, other encoding: blocked from the cache.
	again := e.v.Inspect(ctx, &Input{Path: "/", RawQuery: "q=foo%20|%20cat", Client: "10.9.9.9"})
	if again.Action != Block || again.Reason != ReasonLLM || !again.KnownMalicious || again.LLM != LLMCached || again.Confidence != 0.95 {
		t.Fatalf("repeat: %+v", again)
	}
	// Its sender is reported too, during Inspect.
	if ev := <-e.evs; ev.Client != "10.9.9.9" || ev.Source != SourceCache || ev.Hash != first.Hash {
		t.Fatalf("cache-hit event %+v", ev)
	}
	// A different payload is still only borderline.
	if other := e.v.Inspect(ctx, borderB); other.Action != Allow || other.LLM != LLMQueued {
		t.Fatalf("other payload: %+v", other)
	}
	if ev := <-e.evs; ev.Client != "10.0.0.2" || ev.Source != SourceAsync {
		t.Fatalf("second payload's event %+v", ev)
	}
	if e.fake.calls() != 2 {
		t.Errorf("asks = %d, want 2", e.fake.calls())
	}
	if got := counter(t, e.v.m.asks.WithLabelValues("async")); got != 2 {
		t.Errorf("llm_asks_total{async} = %v", got)
	}
	if got := counter(t, e.v.m.verdicts.WithLabelValues("malicious")); got != 2 {
		t.Errorf("llm_verdicts_total{malicious} = %v", got)
	}
	if got := counter(t, e.v.m.cacheHits.WithLabelValues("malicious")); got != 1 {
		t.Errorf("llm_cache_hits_total{malicious} = %v", got)
	}
}

func TestVerdictThreshold(t *testing.T) {
	tests := map[string]struct {
		vd    Verdict
		block bool
	}{
		"above": {vd: Verdict{Malicious: true, Confidence: 0.86}, block: true},
		// min_confidence 0.85: a verdict exactly that sure counts.
		"at":         {vd: Verdict{Malicious: true, Confidence: 0.85}, block: true},
		"just below": {vd: Verdict{Malicious: true, Confidence: 0.8499}},
		"below":      {vd: Verdict{Malicious: true, Confidence: 0.5}},
		"benign":     {vd: Verdict{Malicious: false, Confidence: 0.99}},
		"zero conf.": {vd: Verdict{Malicious: true}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newLLMEnv(t, LLMSync, tc.vd)
			res := e.v.Inspect(context.Background(), borderA)
			if (res.Action == Block) != tc.block || res.LLM != LLMAsked || res.KnownMalicious != tc.block {
				t.Fatalf("sync: %+v", res)
			}
			// The verdict is cached either way: no second ask.
			if tc.block {
				if ev := <-e.evs; ev.Source != SourceSync || ev.Client != borderA.Client || ev.Reason != ReasonLLM {
					t.Fatalf("sync event %+v", ev)
				}
			}
			res = e.v.Inspect(context.Background(), borderA)
			if (res.Action == Block) != tc.block || res.LLM != LLMCached || e.fake.calls() != 1 {
				t.Fatalf("cached: %+v after %d asks", res, e.fake.calls())
			}
			if tc.block {
				if ev := <-e.evs; ev.Source != SourceCache {
					t.Fatalf("cache event %+v", ev)
				}
			}
			if len(e.evs) != 0 {
				t.Fatalf("%d unexpected events", len(e.evs))
			}
		})
	}
}

func TestSyncFailsOpen(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		e := newLLMEnv(t, LLMSync, Verdict{Malicious: true, Confidence: 1})
		e.fake.hold = true
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-e.fake.started; cancel() }() // the decision budget runs out mid-ask
		res := e.v.Inspect(ctx, borderA)
		if res.Action != Allow || res.LLM != LLMFailed {
			t.Fatalf("%+v", res)
		}
		if got := counter(t, e.v.m.verdicts.WithLabelValues("error")); got != 1 {
			t.Errorf("llm_verdicts_total{error} = %v", got)
		}
	})
	t.Run("error", func(t *testing.T) {
		e := newLLMEnv(t, LLMSync, Verdict{})
		e.fake.err = errors.New("503 from provider")
		if res := e.v.Inspect(context.Background(), borderA); res.Action != Allow || res.LLM != LLMFailed {
			t.Fatalf("%+v", res)
		}
		// Failures are not cached: the next request asks again.
		e.v.Inspect(context.Background(), borderA)
		if e.fake.calls() != 2 {
			t.Errorf("asks = %d, want 2", e.fake.calls())
		}
	})
	t.Run("bad confidence", func(t *testing.T) {
		e := newLLMEnv(t, LLMSync, Verdict{Malicious: true, Confidence: 7})
		if res := e.v.Inspect(context.Background(), borderA); res.Action != Allow || res.LLM != LLMFailed {
			t.Fatalf("%+v", res)
		}
	})
}

func TestAsyncQueueBounded(t *testing.T) {
	e := newLLMEnv(t, LLMAsync, Verdict{}, func(c *Config) { c.LLM.QueueSize = 1 })
	ctx := context.Background()
	// No worker runs: the first ask fills the queue.
	if res := e.v.Inspect(ctx, borderA); res.LLM != LLMQueued {
		t.Fatalf("first %q", res.LLM)
	}
	if res := e.v.Inspect(ctx, borderA); res.LLM != LLMPending {
		t.Fatalf("same payload again %q, want pending", res.LLM)
	}
	if res := e.v.Inspect(ctx, borderB); res.LLM != LLMDropped || res.Action != Allow {
		t.Fatalf("queue full %q %v, want dropped allow", res.LLM, res.Action)
	}
	if got := counter(t, e.v.m.dropped); got != 1 {
		t.Errorf("llm_asks_dropped_total = %v", got)
	}
	if e.fake.calls() != 0 {
		t.Errorf("asked %d times without a worker", e.fake.calls())
	}
}

func TestLLMNotAsked(t *testing.T) {
	tests := map[string]struct {
		mode    LLMMode
		noLLM   bool
		in      *Input
		outcome LLMOutcome
	}{
		"off":         {mode: LLMOff, in: borderA, outcome: LLMNone},
		"no verdicts": {mode: LLMSync, noLLM: true, in: borderA, outcome: LLMUnavailable},
		"clean":       {mode: LLMSync, in: &Input{Path: "/", RawQuery: "q=shoes"}, outcome: LLMNone},
		"already bad": {mode: LLMSync, in: &Input{Path: "/", RawQuery: "q=%27+OR+%271%27%3D%271"}, outcome: LLMNone},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.LLM.Mode = tc.mode
			fake := newFake(Verdict{Malicious: true, Confidence: 1})
			opts := []Option{WithVerdicts(fake)}
			if tc.noLLM {
				opts = nil
			}
			v := newTestValidator(t, cfg, opts...)
			res := v.Inspect(context.Background(), tc.in)
			if res.LLM != tc.outcome || fake.calls() != 0 {
				t.Fatalf("llm %q after %d asks, want %q and none", res.LLM, fake.calls(), tc.outcome)
			}
		})
	}
}

func TestVerdictCacheExpiryAndEviction(t *testing.T) {
	t.Run("ttl", func(t *testing.T) {
		e := newLLMEnv(t, LLMSync, Verdict{Malicious: true, Confidence: 0.9}, func(c *Config) { c.LLM.CacheTTL = time.Hour })
		ctx := context.Background()
		e.v.Inspect(ctx, borderA)
		e.now = e.now.Add(59 * time.Minute)
		if res := e.v.Inspect(ctx, borderA); res.LLM != LLMCached {
			t.Fatalf("within TTL: %q", res.LLM)
		}
		e.now = e.now.Add(2 * time.Minute)
		if res := e.v.Inspect(ctx, borderA); res.LLM != LLMAsked || e.fake.calls() != 2 {
			t.Fatalf("after TTL: %q, %d asks", res.LLM, e.fake.calls())
		}
	})
	t.Run("lru", func(t *testing.T) {
		e := newLLMEnv(t, LLMSync, Verdict{}, func(c *Config) { c.LLM.CacheSize = 1 })
		ctx := context.Background()
		e.v.Inspect(ctx, borderA)
		e.v.Inspect(ctx, borderB) // evicts A
		if res := e.v.Inspect(ctx, borderB); res.LLM != LLMCached {
			t.Fatalf("B: %q", res.LLM)
		}
		if res := e.v.Inspect(ctx, borderA); res.LLM != LLMAsked || e.fake.calls() != 3 {
			t.Fatalf("A after eviction: %q, %d asks", res.LLM, e.fake.calls())
		}
	})
}

func TestSampleTruncated(t *testing.T) {
	e := newLLMEnv(t, LLMSync, Verdict{}, func(c *Config) { c.LLM.MaxExcerpt = 64 })
	e.v.Inspect(context.Background(), &Input{Path: "/", RawQuery: "q=" + strings.Repeat("a", 300) + "+%7C+cat"})
	if e.fake.calls() != 1 {
		t.Fatalf("asks = %d", e.fake.calls())
	}
	if s := e.fake.samples[0]; len(s.Excerpt) > 64 || s.Excerpt == "" || s.Hash == "" || s.Score != 2 {
		t.Fatalf("sample %+v (excerpt %d bytes)", s, len(s.Excerpt))
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	e := newLLMEnv(t, LLMAsync, Verdict{})
	e.fake.hold = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.v.Run(ctx) }()
	e.v.Inspect(context.Background(), borderA)
	<-e.fake.started
	cancel() // the in-flight ask sees its context end
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The interrupted ask is neither cached nor counted as an LLM error, and
	// nothing is queued after shutdown.
	if res := e.v.Inspect(context.Background(), borderA); res.LLM != LLMDropped || res.Action != Allow {
		t.Fatalf("after shutdown: %q", res.LLM)
	}
	if got := counter(t, e.v.m.verdicts.WithLabelValues("error")); got != 0 {
		t.Errorf("llm_verdicts_total{error} = %v", got)
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := newTestValidator(t, DefaultConfig(), WithRegisterer(reg))
	v.Inspect(context.Background(), &Input{Path: "/", ContentType: "image/png", Body: []byte("\x89PNG\r\n\x1a\n")})
	v.Inspect(context.Background(), &Input{Path: "/", RawQuery: "q=%3Cscript%3Ealert(1)%3C/script%3E"})
	want := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		want[mf.GetName()] = true
	}
	for _, n := range []string{"smartlayer_payload_inspections_total", "smartlayer_payload_findings_total",
		"smartlayer_payload_bodies_truncated_total", "smartlayer_payload_bodies_skipped_total",
		"smartlayer_payload_llm_asks_dropped_total", "smartlayer_payload_llm_verdicts_total"} {
		if !want[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	if got := counter(t, v.m.skipped.WithLabelValues("binary")); got != 1 {
		t.Errorf("bodies_skipped_total{binary} = %v", got)
	}
	if got := counter(t, v.m.findings.WithLabelValues("xss")); got != 1 {
		t.Errorf("findings_total{xss} = %v", got)
	}
	if got := counter(t, v.m.decisions.WithLabelValues("block")); got != 1 {
		t.Errorf("inspections_total{block} = %v", got)
	}
	if _, err := New(DefaultConfig(), WithRegisterer(reg)); err == nil {
		t.Error("registering twice succeeded")
	}
}
