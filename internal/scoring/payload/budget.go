package payload

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
	"github.com/smartlayer/smartlayer/internal/setting"
)

// Issue 17: inspection cost is attacker-controlled. A body of distinct
// short strings that each pass a detector's pre-filter costs about 3 µs of
// CPU per string, so 64 KiB of them cost 20–25 ms — more than the decision
// budget under a little concurrency. Every inspection therefore runs on a
// budget (payload.limits.*), checked per value; an inspection that runs out
// stops at once and is answered by payload.too_complex (deny by default),
// never by the fail mode: server.fail_mode is for our failures, not for
// what a request costs.

// ReasonTooComplex: the inspection hit one of payload.limits (or was shed
// under heavy load) before it could clear the request.
const ReasonTooComplex = "payload.too_complex"

// The limits an inspection can hit: Result.TooComplex and the "limit"
// label of smartlayer_payload_limits_hit_total.
const (
	LimitValues        = "values"
	LimitDetectorCalls = "detector_calls"
	LimitDecodedBytes  = "decoded_bytes"
	LimitDecodeRounds  = "decode_rounds"
	LimitTime          = "time"
	LimitCanceled      = "canceled" // the caller's context ended (answer given, or Envoy gone)
	LimitShed          = "shed"     // no heavy slot within payload.limits.heavy_wait
)

func limitNames() []string {
	return []string{LimitValues, LimitDetectorCalls, LimitDecodedBytes, LimitDecodeRounds, LimitTime, LimitCanceled, LimitShed}
}

// TooComplexAction is what a request whose inspection was cut short gets
// (payload.too_complex).
type TooComplexAction string

const (
	// TooComplexDeny blocks it with ReasonTooComplex (the default): what
	// was not inspected may be an attack.
	TooComplexDeny TooComplexAction = "deny"
	// TooComplexBorderline allows it as a borderline payload (the LLM is
	// asked about whatever was found before the cut, if anything).
	TooComplexBorderline TooComplexAction = "borderline"
	// TooComplexAllow allows it: the uninspected rest goes through.
	TooComplexAllow TooComplexAction = "allow"
)

// Limits bound the work of one inspection (payload.limits.*). The defaults
// keep issue 17's hostile 64 KiB body (BenchmarkInspect/hostile_64k) at
// about 1.5 ms of CPU on the 2-core AMD EPYC test machine, where it took
// 22–25 ms unbounded; every realistic body in the tests stays well inside.
type Limits struct {
	// MaxValues caps the values looked at — query parameters, headers,
	// cookies, JSON keys and strings, form fields — including the ones a
	// per-request memo answers without running the detectors
	// (payload.limits.max_values).
	MaxValues int `koanf:"max_values"`
	// MaxDetectorCalls caps the detector runs, the expensive part, each
	// weighted by what it costs (detectorCost: about a microsecond a unit;
	// 1 for a short plain value, 3 for one with < > ' ` ; | $, more for
	// long values) (payload.limits.max_detector_calls). The cap is checked
	// before each run, so no run goes past it.
	MaxDetectorCalls int `koanf:"max_detector_calls"`
	// MaxDecodedBytes caps the bytes fed to the decoders, each decode
	// round counted (payload.limits.max_decoded_bytes).
	MaxDecodedBytes int `koanf:"max_decoded_bytes"`
	// MaxDecodeRounds caps the decode rounds of all values together; a
	// value takes one round, each nested encoding one more, at most four
	// (payload.limits.max_decode_rounds).
	MaxDecodeRounds int `koanf:"max_decode_rounds"`
	// MaxTime bounds one inspection's wall time, read every few values
	// (payload.limits.max_time): a backstop, since on a busy machine wall
	// time runs ahead of CPU; the counts above bound the CPU. It must be
	// below server.decision_budget, so the payload stage answers
	// too_complex before the budget's fail mode would; 0 means half of it.
	MaxTime time.Duration `koanf:"max_time"`
	// HeavyAfter: an inspection that has made this many detector calls
	// (counted as for MaxDetectorCalls) is heavy and needs one of MaxConcurrentHeavy slots to go on
	// (payload.limits.heavy_after). Requests without a body and ordinary
	// bodies finish far below it and never wait.
	HeavyAfter int `koanf:"heavy_after"`
	// MaxConcurrentHeavy bounds the heavy inspections running at once
	// (payload.limits.max_concurrent_heavy); 0 means half of GOMAXPROCS,
	// at least 1, so cheap Checks keep CPU.
	MaxConcurrentHeavy int `koanf:"max_concurrent_heavy"`
	// HeavyWait is how long a heavy inspection waits for a slot before it
	// is shed as too complex (payload.limits.heavy_wait).
	HeavyWait time.Duration `koanf:"heavy_wait"`
}

// DefaultLimits returns payload.limits' defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxValues:          16384,
		MaxDetectorCalls:   1536,
		MaxDecodedBytes:    256 << 10,
		MaxDecodeRounds:    2048,
		MaxTime:            0,
		HeavyAfter:         256,
		MaxConcurrentHeavy: 0,
		HeavyWait:          5 * time.Millisecond,
	}
}

func (l Limits) validate(p *setting.Problems, decisionBudget time.Duration) {
	p.AtLeast("limits.max_values", l.MaxValues, 1)
	p.AtLeast("limits.max_detector_calls", l.MaxDetectorCalls, 1)
	p.AtLeast("limits.max_decoded_bytes", l.MaxDecodedBytes, 1)
	p.AtLeast("limits.max_decode_rounds", l.MaxDecodeRounds, 1)
	if l.MaxTime < 0 || (l.MaxTime > 0 && l.MaxTime < time.Millisecond) {
		p.Add("limits.max_time", l.MaxTime, "must be 0 (half of server.decision_budget) or at least 1ms")
	}
	if decisionBudget > 0 && l.MaxTime >= decisionBudget {
		p.Add("limits.max_time", l.MaxTime, "must be below server.decision_budget (%s): the payload stage answers too_complex before the fail mode would", decisionBudget)
	}
	p.AtLeast("limits.heavy_after", l.HeavyAfter, 1)
	p.NonNegative("limits.max_concurrent_heavy", l.MaxConcurrentHeavy)
	p.AtLeastDuration("limits.heavy_wait", l.HeavyWait, 100*time.Microsecond)
}

func validTooComplex(p *setting.Problems, a TooComplexAction) {
	p.OneOf("too_complex", string(a), string(TooComplexDeny), string(TooComplexAllow), string(TooComplexBorderline))
}

// maxTime is MaxTime, or half the decision budget when it is 0 (25ms
// without one, as with the default budget).
func (l Limits) maxTime(decisionBudget time.Duration) time.Duration {
	switch {
	case l.MaxTime > 0:
		return l.MaxTime
	case decisionBudget > 0:
		return decisionBudget / 2
	}
	return 25 * time.Millisecond
}

// heavySlots returns the semaphore for MaxConcurrentHeavy.
func (l Limits) heavySlots() chan struct{} {
	n := l.MaxConcurrentHeavy
	if n == 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return make(chan struct{}, n)
}

// The clock and the context are read before every large value, every
// checkCost units of detector work (detectorCost: about a microsecond
// each) and every checkEvery values (a value the detectors skip costs
// well under a microsecond), so a deadline is overrun by well under
// 0.1 ms. Reading them every 16 values instead cost 2.5% of
// BenchmarkInspect/json_8k's CPU time in time.Now (pprof; 108 ns a call
// on the test machine's kvm clock).
const (
	checkEvery     = 128
	checkCost      = 32
	bigValue       = 4096
	deadlineMargin = 2 * time.Millisecond
)

// budget is one inspection's account. The zero budget (no limits) is never
// used: start sets it up per Inspect.
type budget struct {
	lim      *Limits
	ctx      context.Context
	deadline time.Time
	slots    chan struct{} // heavy slots; nil: no gate
	m        *costMetrics
	holding  bool          // this inspection holds a slot
	waited   time.Duration // time spent waiting for a slot

	values, calls, decoded, rounds int
	nextCheck                      int  // calls at which detectors reads the clock
	noWait                         bool // shed without waiting (restart)
	// hit names the limit that stopped the inspection; once set, every
	// later value is skipped.
	hit string
}

func (b *budget) start(ctx context.Context, lim *Limits, maxTime time.Duration, slots chan struct{}, m *costMetrics) {
	*b = budget{lim: lim, ctx: ctx, slots: slots, m: m, deadline: time.Now().Add(maxTime), nextCheck: checkCost}
	// Answer a little before the caller's deadline, so that it is this
	// inspection's too_complex, not the caller's budget, that decides.
	if d, ok := ctx.Deadline(); ok && d.Add(-deadlineMargin).Before(b.deadline) {
		b.deadline = d.Add(-deadlineMargin)
	}
}

// finish releases the heavy slot, if held.
func (b *budget) finish() {
	if b.holding {
		<-b.slots
		b.holding = false
		b.m.inFlight.Dec()
	}
	b.ctx = nil
}

// value accounts one value about to be looked at; false: stop, the
// inspection is over budget.
func (b *budget) value() bool {
	if b.hit != "" {
		return false
	}
	b.values++
	if b.values > b.lim.MaxValues {
		b.hit = LimitValues
		return false
	}
	if b.values%checkEvery == 0 {
		return b.inTime()
	}
	return true
}

// decode accounts the first decode round of a value of n bytes; false:
// stop.
func (b *budget) decode(n int) bool {
	if b.hit != "" {
		return false
	}
	b.rounds++
	b.decoded += n
	switch {
	case b.decoded > b.lim.MaxDecodedBytes:
		b.hit = LimitDecodedBytes
		return false
	case b.rounds > b.lim.MaxDecodeRounds:
		b.hit = LimitDecodeRounds
		return false
	}
	if n >= bigValue {
		return b.inTime()
	}
	return true
}

// detectorCost is what running the detectors on a normalised value of n
// bytes with character classes cls counts against MaxDetectorCalls: about
// its CPU time in microseconds on the 2-core test machine. A plain value
// costs 1 plus a unit per 128 bytes; one with characters that open the
// costly checks (< > ' ` ; | $: libinjection, the regexps) 3 plus a unit
// per 32 bytes, or per 4 bytes when it has a '<', which the HTML regexps
// read at about 300 ns a byte (BenchmarkInspect/hostile_64k,
// TestDetectorCost).
func detectorCost(n int, cls uint64) int {
	switch {
	case cls&cLT != 0:
		return 3 + n/4
	case cls&dangerChars != 0:
		return 3 + n/32
	}
	return 1 + n/128
}

// detectors accounts one detector run; false: stop before it.
func (b *budget) detectors(n int, cls uint64) bool {
	if b.hit != "" {
		return false
	}
	b.calls += detectorCost(n, cls)
	if b.calls > b.lim.MaxDetectorCalls {
		b.hit = LimitDetectorCalls
		return false
	}
	if !b.holding && b.calls >= b.lim.HeavyAfter && b.slots != nil {
		return b.heavy()
	}
	if b.calls >= b.nextCheck {
		b.nextCheck = b.calls + checkCost
		return b.inTime()
	}
	return true
}

// decodedMore accounts the decode rounds after a value's first: rounds
// more, each over about n bytes. The work is done by then; a value over
// the limit stops the inspection before the next one.
func (b *budget) decodedMore(rounds, n int) {
	if rounds <= 0 || b.hit != "" {
		return
	}
	b.rounds += rounds
	b.decoded += rounds * n
	switch {
	case b.decoded > b.lim.MaxDecodedBytes:
		b.hit = LimitDecodedBytes
	case b.rounds > b.lim.MaxDecodeRounds:
		b.hit = LimitDecodeRounds
	}
}

// inTime reads the clock and the context.
func (b *budget) inTime() bool {
	select {
	case <-b.ctx.Done():
		b.hit = LimitCanceled
		if b.ctx.Err() == context.DeadlineExceeded {
			b.hit = LimitTime
		}
		return false
	default:
	}
	if time.Now().After(b.deadline) {
		b.hit = LimitTime
		return false
	}
	return true
}

// restart zeroes the counts for a second pass over the same request
// (batch.go). A pass that was shed is shed again at once: it waited its
// heavy_wait already.
func (b *budget) restart() {
	b.noWait = b.hit == LimitShed
	b.values, b.calls, b.decoded, b.rounds, b.nextCheck, b.hit = 0, 0, 0, 0, checkCost, ""
}

// heavy takes a heavy slot, waiting at most payload.limits.heavy_wait (and
// never past the deadline or the context); false: shed.
func (b *budget) heavy() bool {
	if b.noWait {
		b.hit = LimitShed
		return false
	}
	select {
	case b.slots <- struct{}{}:
		b.took()
		return true
	default:
	}
	t0 := time.Now()
	wait := min(b.lim.HeavyWait, time.Until(b.deadline))
	if wait <= 0 {
		b.hit = LimitShed
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		b.took()
		b.waited = time.Since(t0)
		return true
	case <-t.C:
		b.hit = LimitShed
	case <-b.ctx.Done():
		b.hit = LimitCanceled
	}
	b.waited = time.Since(t0)
	return false
}

func (b *budget) took() {
	b.holding = true
	b.m.heavy.Inc()
	b.m.inFlight.Inc()
}

// applyTooComplex decides a request whose inspection was cut short by
// limit, per payload.too_complex. A request already blocked by a detector
// stays blocked under the detector's reason: the attack found before the
// cut is the better answer.
func applyTooComplex(res *Result, limit string, action TooComplexAction) {
	res.TooComplex = limit
	if res.Action == Block {
		return
	}
	switch action {
	case TooComplexAllow:
	case TooComplexBorderline:
		res.Borderline = true
		res.Rule = ReasonTooComplex + "." + limit
	default:
		res.Action, res.Borderline = Block, false
		res.Reason, res.Rule = ReasonTooComplex, ReasonTooComplex+"."+limit
	}
}

// costMetrics count what the limits did.
type costMetrics struct {
	limits   *prometheus.CounterVec
	shed     prometheus.Counter
	heavy    prometheus.Counter
	inFlight prometheus.Gauge
}

func newCostMetrics(reg prometheus.Registerer) (*costMetrics, error) {
	m := &costMetrics{
		limits: prom.CounterVec(metricPrefix+"limits_hit_total",
			"Inspections cut short, by the payload.limits cap they hit (shed: no heavy slot in time).", "limit"),
		shed: prom.Counter(metricPrefix+"heavy_shed_total", "Heavy inspections shed: no slot within payload.limits.heavy_wait."),
		heavy: prom.Counter(metricPrefix+"heavy_inspections_total",
			"Inspections that became heavy (payload.limits.heavy_after detector calls) and took a slot."),
		inFlight: prom.Gauge(metricPrefix+"heavy_in_flight", "Heavy inspections running now."),
	}
	for _, l := range limitNames() {
		m.limits.WithLabelValues(l)
	}
	if err := prom.Register(reg, m.limits, m.shed, m.heavy, m.inFlight); err != nil {
		return nil, fmt.Errorf("register payload metrics: %w", err)
	}
	return m, nil
}
