package payload

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// hostileBody is issue 17's attack: a JSON array of about n bytes whose
// strings are all distinct (no memo hit) and each pass a detector's
// pre-filter, led by one SQL injection.
func hostileBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`["'1' OR '1'='1' -- -"`)
	for i := 0; b.Len() < n-16; i++ {
		fmt.Fprintf(&b, `,"<a%d"`, i)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// unlimited is a Limits that no test body reaches.
func unlimited() Limits {
	return Limits{MaxValues: 1 << 30, MaxDetectorCalls: 1 << 30, MaxDecodedBytes: 1 << 30, MaxDecodeRounds: 1 << 30,
		MaxTime: time.Hour, HeavyAfter: 1 << 30, MaxConcurrentHeavy: 1, HeavyWait: time.Millisecond}
}

// padding is the hostile body without its SQL injection: what issue 17's
// helper addresses sent.
func padding(n int) []byte {
	b := hostileBody(n)
	return append([]byte("["), b[len(`["'1' OR '1'='1' -- -",`):]...)
}

func jsonInput(body []byte) *Input {
	return &Input{Path: "/api", ContentType: "application/json", Body: body}
}

// TestEachLimitIsTooComplex: every cap stops the inspection and, by
// default, denies it as payload.too_complex, naming the cap.
func TestEachLimitIsTooComplex(t *testing.T) {
	many := strings.Repeat("a=1&", 200) // 400 values, one distinct name
	cases := []struct {
		limit string
		set   func(*Limits)
		in    *Input
	}{
		{LimitValues, func(l *Limits) { l.MaxValues = 100 }, &Input{Path: "/", RawQuery: many}},
		{LimitDetectorCalls, func(l *Limits) { l.MaxDetectorCalls = 100 }, jsonInput(padding(4096))},
		{LimitDecodedBytes, func(l *Limits) { l.MaxDecodedBytes = 1000 }, jsonInput(padding(4096))},
		{LimitDecodeRounds, func(l *Limits) { l.MaxDecodeRounds = 10 }, &Input{Path: "/", RawQuery: "a=%252541&b=%252542&c=%252543&d=%252544"}},
		// 1ms is the smallest valid max_time; the validator's own copy is
		// shortened below so the test does not race the clock.
		{LimitTime, func(l *Limits) { l.MaxTime = time.Millisecond }, jsonInput(padding(4096))},
	}
	for _, c := range cases {
		t.Run(c.limit, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Limits = unlimited()
			if got := newTestValidator(t, cfg).Inspect(context.Background(), c.in); got.TooComplex != "" || got.Action != Allow {
				t.Fatalf("unlimited: %+v, want a clean allow", got)
			}
			c.set(&cfg.Limits)
			reg := prometheus.NewRegistry()
			v := newTestValidator(t, cfg, WithRegisterer(reg))
			if c.limit == LimitTime {
				v.maxTime = time.Nanosecond
			}
			res := v.Inspect(context.Background(), c.in)
			if res.TooComplex != c.limit || res.Action != Block || res.Reason != ReasonTooComplex || res.Rule != ReasonTooComplex+"."+c.limit {
				t.Fatalf("got %+v, want blocked as %s (%s)", res, ReasonTooComplex, c.limit)
			}
			if n := testutil.ToFloat64(v.cost.limits.WithLabelValues(c.limit)); n != 1 {
				t.Errorf("limits_hit_total{limit=%q} = %v, want 1", c.limit, n)
			}
		})
	}
}

// TestTooComplexActions: payload.too_complex allow and borderline let the
// request through, flagged; an attack found before the cut still blocks.
func TestTooComplexActions(t *testing.T) {
	for _, a := range []TooComplexAction{TooComplexAllow, TooComplexBorderline, TooComplexDeny} {
		t.Run(string(a), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TooComplex = a
			v := newTestValidator(t, cfg)
			// The actions are under test, not which limit cuts first: on a
			// loaded machine the time limit could (CI saw "time").
			v.maxTime = time.Hour
			res := v.Inspect(context.Background(), jsonInput(padding(65536)))
			if res.TooComplex != LimitDetectorCalls {
				t.Fatalf("TooComplex = %q, want %q", res.TooComplex, LimitDetectorCalls)
			}
			switch a {
			case TooComplexAllow:
				if res.Action != Allow || res.Borderline || res.Reason != "" {
					t.Errorf("allow: %+v", res)
				}
			case TooComplexBorderline:
				if res.Action != Allow || !res.Borderline || res.Rule != ReasonTooComplex+"."+LimitDetectorCalls {
					t.Errorf("borderline: %+v", res)
				}
			case TooComplexDeny:
				if res.Action != Block || res.Reason != ReasonTooComplex {
					t.Errorf("deny: %+v", res)
				}
			}
			// The hostile body's SQL injection comes first: found before the
			// cut, it blocks under its own reason whatever the action.
			res = v.Inspect(context.Background(), jsonInput(hostileBody(65536)))
			if res.Action != Block || res.Reason != ReasonSQLi || res.TooComplex != LimitDetectorCalls {
				t.Errorf("hostile body: %+v, want blocked as %s, cut at %s", res, ReasonSQLi, LimitDetectorCalls)
			}
		})
	}
}

// doneAfter is a context whose Done channel closes after n polls: the
// inspection must notice it between values and stop.
type doneAfter struct {
	context.Context
	n    atomic.Int64
	done chan struct{}
	once sync.Once
}

func (c *doneAfter) Done() <-chan struct{} {
	if c.n.Add(-1) <= 0 {
		c.once.Do(func() { close(c.done) })
	}
	return c.done
}

func (c *doneAfter) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

// TestCancelStopsInspection: once the caller's context ends (the answer
// was given, or Envoy went away), no more values are inspected.
func TestCancelStopsInspection(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits = unlimited()
	v := newTestValidator(t, cfg)
	ctx := &doneAfter{Context: context.Background(), done: make(chan struct{})}
	ctx.n.Store(3)
	s := v.pool.Get().(*scan)
	s.b.start(ctx, &v.cfg.Limits, time.Hour, nil, v.cost)
	s.run(jsonInput(padding(65536)), 2048)
	values, hit := s.b.values, s.b.hit
	s.b.finish()
	if hit != LimitCanceled {
		t.Fatalf("hit = %q, want %q", hit, LimitCanceled)
	}
	if values > 3*checkEvery+1 {
		t.Errorf("%d values looked at after the context ended at poll 3 (every %d values)", values, checkEvery)
	}

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if res := v.Inspect(canceled, jsonInput(padding(65536))); res.TooComplex != LimitCanceled || res.Action != Block {
		t.Errorf("canceled context: %+v", res)
	}
}

// TestHeavyShed: with every heavy slot taken, a heavy inspection waits
// heavy_wait, then is shed as too complex (counted); requests that stay
// below heavy_after never wait.
func TestHeavyShed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxConcurrentHeavy = 1
	cfg.Limits.HeavyWait = time.Millisecond
	reg := prometheus.NewRegistry()
	v := newTestValidator(t, cfg, WithRegisterer(reg))
	v.heavy <- struct{}{} // another heavy inspection holds the slot
	res := v.Inspect(context.Background(), jsonInput(padding(65536)))
	if res.TooComplex != LimitShed || res.Action != Block || res.Reason != ReasonTooComplex {
		t.Fatalf("heavy with no slot: %+v, want shed", res)
	}
	if n := testutil.ToFloat64(v.cost.shed); n != 1 {
		t.Errorf("heavy_shed_total = %v, want 1", n)
	}
	for _, in := range []*Input{
		{Path: "/api/products", RawQuery: "q=shoes&page=2", Headers: map[string]string{"user-agent": "Mozilla/5.0"}},
		jsonInput(jsonBody(8192)),
	} {
		if res := v.Inspect(context.Background(), in); res.TooComplex != "" || res.Action != Allow {
			t.Errorf("cheap request while the slot is taken: %+v", res)
		}
	}
	<-v.heavy
	res = v.Inspect(context.Background(), jsonInput(padding(65536)))
	if res.TooComplex != LimitDetectorCalls {
		t.Errorf("with a free slot: TooComplex %q, want %q", res.TooComplex, LimitDetectorCalls)
	}
	if len(v.heavy) != 0 {
		t.Errorf("slot not released: %d held", len(v.heavy))
	}
	if n := testutil.ToFloat64(v.cost.heavy); n != 1 {
		t.Errorf("heavy_inspections_total = %v, want 1", n)
	}
}

// TestDetectorCost: ordinary requests, including a 64 KiB API document,
// stay well inside the default limits; hostile shapes do not.
func TestDetectorCost(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxTime = time.Hour // the counts, not this machine's load
	v := newTestValidator(t, cfg)
	for i, c := range loadBenign(t) {
		if res := v.Inspect(context.Background(), benignInput(t, i, c)); res.TooComplex != "" {
			t.Fatalf("benign %s %q: too complex (%s)", c.Kind, c.Value, res.TooComplex)
		}
	}
	for _, n := range []int{1024, 8192, 65536} {
		if res := v.Inspect(context.Background(), jsonInput(jsonBody(n))); res.TooComplex != "" {
			t.Errorf("jsonBody(%d): too complex (%s)", n, res.TooComplex)
		}
	}
	for name, body := range map[string][]byte{
		"padding":        padding(65536),
		"one '<' string": []byte(`{"a":"` + strings.Repeat("<a0 ", 8000) + `"}`),
		"one long quote": []byte(`{"a":"` + strings.Repeat("'1' OR '1'='1' -- - ", 3200) + `"}`),
	} {
		if res := v.Inspect(context.Background(), jsonInput(body)); res.TooComplex == "" {
			t.Errorf("%s: inspected in full (%+v), want too complex", name, res)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DecisionBudget = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Limits.MaxTime = 50 * time.Millisecond
	cfg.TooComplex = "maybe"
	cfg.Limits.MaxValues = 0
	err := cfg.Validate()
	for _, key := range []string{"payload.limits.max_time", "payload.too_complex", "payload.limits.max_values"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want a problem with %s", err, key)
		}
	}
}
