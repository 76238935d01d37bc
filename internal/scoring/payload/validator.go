package payload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/ask"
)

// Sample is what the LLM is asked about.
type Sample struct {
	// Hash identifies the normalised payload (Result.Hash).
	Hash string
	// Excerpt is the normalised suspicious content, "location: value"
	// lines, at most LLM.MaxExcerpt bytes. It is attacker-controlled data:
	// the adapter must present it to the model as data, not instructions.
	Excerpt string
	// Detectors that fired, e.g. ["sqli", "encoding_trick"].
	Detectors []string
	// Score is the stage 1 score.
	Score int
}

// Verdict is the LLM's answer.
type Verdict struct {
	Malicious  bool
	Confidence float64 // 0..1
	// Reason is the model's short explanation, for logs.
	Reason string
}

// Verdicts judges borderline payloads. internal/llm satisfies it through
// an adapter in internal/app. Implementations must honour ctx.
type Verdicts interface {
	PayloadVerdict(ctx context.Context, s Sample) (Verdict, error)
}

// Source says how a verdict became known.
type Source string

const (
	SourceCache Source = "cache" // the verdict cache, for a repeat of the payload
	SourceSync  Source = "sync"  // asked while the request waited (llm.mode sync)
	SourceAsync Source = "async" // asked in the background (llm.mode async)
)

// Malicious reports that a client sent a payload the LLM judged malicious
// (with at least payload.llm.min_confidence): the caller bans the client.
type Malicious struct {
	// Client is Input.Client of the request that carried the payload.
	Client string
	// Hash identifies the payload (Result.Hash).
	Hash string
	// Reason is the deny reason: ReasonLLM, or the detector's when stage 1
	// blocked the request anyway. Score is the stage 1 score.
	Reason string
	Score  int
	// Confidence of the verdict.
	Confidence float64
	Source     Source
}

// Option configures a Validator.
type Option func(*Validator)

// WithVerdicts sets the LLM used for borderline payloads. Without it,
// borderline payloads are allowed (LLMUnavailable).
func WithVerdicts(vs Verdicts) Option { return func(v *Validator) { v.llm = vs } }

// WithRegisterer registers the metrics; nil registers nothing.
func WithRegisterer(r prometheus.Registerer) Option { return func(v *Validator) { v.reg = r } }

// WithLogger sets the logger; nil discards.
func WithLogger(l *slog.Logger) Option { return func(v *Validator) { v.log = l } }

// WithClock replaces time.Now for verdict-cache expiry (tests).
func WithClock(now func() time.Time) Option { return func(v *Validator) { v.now = now } }

// WithMaliciousHook is told every time a client sent a payload the LLM
// judged malicious, whichever way the verdict became known: from the cache
// or a sync question, during Inspect with the request's context; from a
// background question, on a worker. The caller bans m.Client. It must not
// block for long.
func WithMaliciousHook(f func(ctx context.Context, m Malicious)) Option {
	return func(v *Validator) { v.malicious = f }
}

// Validator inspects payloads. It is safe for concurrent use. In async
// mode, Run must be running for borderline payloads to be asked about.
type Validator struct {
	cfg       Config
	llm       Verdicts
	reg       prometheus.Registerer
	log       *slog.Logger
	now       func() time.Time
	malicious func(context.Context, Malicious)
	m         *metrics
	cost      *costMetrics
	// heavy holds payload.limits.max_concurrent_heavy slots.
	heavy chan struct{}
	// maxTime is payload.limits.max_time in effect.
	maxTime time.Duration

	// live is what SetConfig last applied (detection settings and
	// exclusions; payload.llm.* keep their startup values).
	live atomic.Pointer[liveConfig]

	pool sync.Pool // *scan
	// direct: inspect value by value, never batched (batch.go); tests
	// compare the two.
	direct bool
	// ask queues, asks and caches verdicts by payload hash; nil without an
	// LLM.
	ask *ask.Asker[string, question, Verdict]
}

// question is one payload to ask about, and who sent it.
type question struct {
	sample Sample
	client string
	score  int
	sync   bool // Inspect waits: it reports failures itself
}

// New validates cfg and builds a Validator.
func New(cfg Config, opts ...Option) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("payload config: %w", err)
	}
	v := &Validator{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	if v.log == nil {
		v.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(v.reg)
	if err != nil {
		return nil, err
	}
	v.m = m
	v.live.Store(newLive(cfg))
	if v.cost, err = newCostMetrics(v.reg); err != nil {
		return nil, err
	}
	v.heavy = cfg.Limits.heavySlots()
	v.maxTime = cfg.Limits.maxTime(cfg.DecisionBudget)
	v.pool.New = func() any {
		s := &scan{cfg: &v.cfg}
		for i := range s.clean {
			s.clean[i] = map[memoKey]uint32{}
		}
		return s
	}
	if v.llm != nil {
		c := cfg.LLM
		v.ask, err = ask.New(ask.Config{QueueSize: c.QueueSize, Workers: c.Workers,
			CacheSize: c.CacheSize, CacheTTL: c.CacheTTL, Now: func() time.Time { return v.now() }},
			v.question, v.answered)
		if err != nil {
			return nil, fmt.Errorf("payload llm: %w", err)
		}
	}
	return v, nil
}

// Inspect runs the detectors on in and, for borderline payloads, stage 2
// according to payload.llm.mode. It never fails: LLM problems fail open. In
// sync mode it waits for the LLM at most until ctx is done.
//
// Stage 1 works within payload.limits and stops when ctx is done: an
// inspection cut short is decided by payload.too_complex (Result.TooComplex
// names the limit), and no work goes on after Inspect returns.
func (v *Validator) Inspect(ctx context.Context, in *Input) Result {
	s := v.pool.Get().(*scan)
	live := v.live.Load()
	s.cfg, s.ch.excl = &live.cfg, forPath(live.excl, in.Path)
	s.direct = v.direct
	s.hdr.cache = live.hdr
	s.b.start(ctx, &live.cfg.Limits, v.maxTime, v.heavy, v.cost)
	res := s.run(in, v.cfg.LLM.MaxExcerpt)
	s.b.finish()
	limit := s.b.hit
	v.cacheHeaders(&s.hdr, &res, limit)
	// Findings escape to the caller; the rest of scan is reused.
	s.reset()
	v.pool.Put(s)

	if limit != "" {
		v.cost.limits.WithLabelValues(limit).Inc()
		if limit == LimitShed {
			v.cost.shed.Inc()
		}
		applyTooComplex(&res, limit, v.cfg.TooComplex)
	}

	if res.BodyTruncated {
		v.m.truncated.Inc()
	}
	if res.BodySkipped != "" {
		v.m.skipped.WithLabelValues(res.BodySkipped).Inc()
	}
	for _, f := range res.Findings {
		v.m.findings.WithLabelValues(f.Detector).Inc()
	}
	if res.Score > 0 {
		v.stage2(ctx, in, &res)
	}
	switch {
	case res.Action == Block:
		v.m.decisions.WithLabelValues("block").Inc()
	case res.Borderline:
		v.m.decisions.WithLabelValues("borderline").Inc()
	default:
		v.m.decisions.WithLabelValues("allow").Inc()
	}
	return res
}

// cacheHeaders caches the request's inspected headers as clean when the
// whole request was: no finding, no score, no policy denial, no limit hit
// (a value cut short was not seen whole) and no exclusion used (a value
// clean only because a hit was waived on this path is not clean). Any
// finding anywhere keeps them all out: with batching (batch.go) which
// value fired is not known per header.
func (v *Validator) cacheHeaders(h *hdrState, res *Result, limit string) {
	if h.hits > 0 {
		v.m.hdrHits.Add(float64(h.hits))
	}
	if h.misses > 0 {
		v.m.hdrMisses.Add(float64(h.misses))
	}
	if len(h.add) == 0 || limit != "" || h.waived || res.Score != 0 || len(res.Findings) != 0 ||
		res.Action == Block || res.Borderline {
		return
	}
	for _, p := range h.add {
		h.cache.add(p.name, p.value)
	}
}

func (v *Validator) stage2(ctx context.Context, in *Input, res *Result) {
	if v.ask == nil {
		if res.Borderline && v.cfg.LLM.Mode != LLMOff {
			res.LLM = LLMUnavailable
		}
		return
	}
	if vd, ok := v.ask.Get(res.Hash); ok {
		res.LLM = LLMCached
		res.Confidence = vd.Confidence
		if v.blocks(vd) {
			v.m.cacheHits.WithLabelValues("malicious").Inc()
			v.known(ctx, in.Client, res, SourceCache)
		} else {
			v.m.cacheHits.WithLabelValues("benign").Inc()
		}
		return
	}
	if !res.Borderline || v.cfg.LLM.Mode == LLMOff {
		return
	}
	q := question{client: in.Client, score: res.Score,
		sample: Sample{Hash: res.Hash, Excerpt: res.Excerpt, Score: res.Score, Detectors: detectorsOf(res.Findings)}}
	if v.cfg.LLM.Mode == LLMAsync {
		switch v.ask.Submit(res.Hash, q) {
		case ask.Queued:
			v.m.asks.WithLabelValues("async").Inc()
			res.LLM = LLMQueued
		case ask.Pending:
			res.LLM = LLMPending
		case ask.Dropped:
			v.m.dropped.Inc()
			res.LLM = LLMDropped
		default: // closed: shutting down
			res.LLM = LLMDropped
		}
		return
	}
	v.m.asks.WithLabelValues("sync").Inc()
	q.sync = true
	vd, err := v.ask.Ask(ctx, res.Hash, q)
	if err != nil {
		v.m.verdicts.WithLabelValues("error").Inc()
		v.log.LogAttrs(ctx, slog.LevelWarn, "payload: no LLM verdict; allowing", slog.String("hash", res.Hash), slog.Any("err", err))
		res.LLM = LLMFailed
		return
	}
	res.LLM, res.Confidence = LLMAsked, vd.Confidence
	if v.blocks(vd) {
		v.known(ctx, in.Client, res, SourceSync)
	}
}

// known blocks a payload the LLM judged malicious and reports its sender.
func (v *Validator) known(ctx context.Context, client string, res *Result, src Source) {
	res.KnownMalicious = true
	if res.Action != Block {
		res.Action, res.Reason = Block, ReasonLLM
	}
	if v.malicious != nil {
		v.malicious(ctx, Malicious{Client: client, Hash: res.Hash, Reason: res.Reason, Score: res.Score,
			Confidence: res.Confidence, Source: src})
	}
}

func detectorsOf(fs []Finding) []string {
	var out []string
outer:
	for _, f := range fs {
		for _, d := range out {
			if d == f.Detector {
				continue outer
			}
		}
		out = append(out, f.Detector)
	}
	return out
}

// blocks is the one confidence rule: malicious and at least
// payload.llm.min_confidence sure.
func (v *Validator) blocks(vd Verdict) bool {
	return vd.Malicious && vd.Confidence >= v.cfg.LLM.MinConfidence
}

// question asks the LLM about one payload within payload.llm.timeout and
// checks the answer; internal/ask caches it. Background failures are
// counted and logged here, sync ones by stage2.
func (v *Validator) question(ctx context.Context, hash string, q question) (Verdict, error) {
	actx, cancel := context.WithTimeout(ctx, v.cfg.LLM.Timeout)
	vd, err := v.llm.PayloadVerdict(actx, q.sample)
	cancel()
	if err == nil && !(vd.Confidence >= 0 && vd.Confidence <= 1) {
		err = fmt.Errorf("confidence %v out of 0..1", vd.Confidence)
	}
	if err != nil {
		err = fmt.Errorf("payload verdict %s: %w", hash, err)
		// Shutdown (Run's context ended) is no LLM error.
		if !q.sync && (ctx.Err() == nil || !errors.Is(err, context.Canceled)) {
			v.m.verdicts.WithLabelValues("error").Inc()
			v.log.LogAttrs(ctx, slog.LevelWarn, "payload: no LLM verdict", slog.String("hash", hash), slog.Any("err", err))
		}
		return Verdict{}, err
	}
	if vd.Malicious {
		v.m.verdicts.WithLabelValues("malicious").Inc()
	} else {
		v.m.verdicts.WithLabelValues("benign").Inc()
	}
	return vd, nil
}

// answered runs on a worker after a background verdict is cached.
func (v *Validator) answered(ctx context.Context, hash string, q question, vd Verdict) {
	if !v.blocks(vd) {
		return
	}
	v.log.LogAttrs(ctx, slog.LevelInfo, "payload judged malicious", slog.String("hash", hash),
		slog.Float64("confidence", vd.Confidence), slog.String("reason", vd.Reason))
	if v.malicious != nil {
		v.malicious(ctx, Malicious{Client: q.client, Hash: hash, Reason: ReasonLLM, Score: q.score,
			Confidence: vd.Confidence, Source: SourceAsync})
	}
}

// Run asks the background questions with payload.llm.workers workers until
// ctx is done, then returns nil: the questions being asked are canceled and
// the queued ones abandoned (they were only ever advisory), and later
// borderline payloads are not asked about. Call it once, e.g. from the
// errgroup in internal/app.
func (v *Validator) Run(ctx context.Context) error {
	if v.ask == nil {
		<-ctx.Done()
		return nil
	}
	v.ask.Start()
	<-ctx.Done()
	_ = v.ask.Close(ctx) // ctx has ended: cancel at once
	return nil
}
