package payload

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sample is what the LLM is asked about.
type Sample struct {
	// Hash identifies the normalised payload (Result.Hash).
	Hash string
	// Excerpt is the normalised suspicious content, "location: value"
	// lines, at most LLMMaxExcerpt bytes. It is attacker-controlled data:
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
// an adapter in cmd/. Implementations must honour ctx.
type Verdicts interface {
	PayloadVerdict(ctx context.Context, s Sample) (Verdict, error)
}

// VerdictEvent reports a background verdict to the hook.
type VerdictEvent struct {
	Sample  Sample
	Client  string // Input.Client of the request that triggered the ask
	Verdict Verdict
	// Block: malicious with confidence above MinConfidence; later identical
	// payloads are blocked from the cache.
	Block bool
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

// WithVerdictHook is called from the background worker for every async
// verdict, so the caller can ban ev.Client when ev.Block. It must not block
// for long.
func WithVerdictHook(f func(ctx context.Context, ev VerdictEvent)) Option {
	return func(v *Validator) { v.hook = f }
}

// Validator inspects payloads. It is safe for concurrent use. In async
// mode, Run must be running for borderline payloads to be asked about.
type Validator struct {
	cfg  Config
	llm  Verdicts
	reg  prometheus.Registerer
	log  *slog.Logger
	now  func() time.Time
	hook func(context.Context, VerdictEvent)
	m    *metrics

	pool    sync.Pool // *scan
	queue   chan job
	syncSem chan struct{}

	mu       sync.Mutex
	cache    map[string]*list.Element
	lru      *list.List // of *cacheEntry, most recent first
	inflight map[string]struct{}
}

type job struct {
	sample Sample
	client string
}

type cacheEntry struct {
	hash    string
	verdict Verdict
	expires time.Time
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
	v.pool.New = func() any {
		s := &scan{cfg: &v.cfg}
		for i := range s.clean {
			s.clean[i] = map[string]struct{}{}
		}
		return s
	}
	v.queue = make(chan job, cfg.LLMQueueSize)
	v.syncSem = make(chan struct{}, cfg.LLMWorkers)
	v.cache = make(map[string]*list.Element)
	v.lru = list.New()
	v.inflight = make(map[string]struct{})
	return v, nil
}

// Inspect runs the detectors on in and, for borderline payloads, stage 2
// according to LLMMode. It never fails: LLM problems fail open. In sync
// mode it waits for the LLM at most until ctx is done.
func (v *Validator) Inspect(ctx context.Context, in *Input) Result {
	s := v.pool.Get().(*scan)
	res := s.run(in, v.cfg.LLMMaxExcerpt)
	// Findings escape to the caller; the rest of scan is reused.
	s.reset()
	v.pool.Put(s)

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

func (v *Validator) stage2(ctx context.Context, in *Input, res *Result) {
	if vd, ok := v.cached(res.Hash); ok {
		res.LLM = LLMCached
		res.Confidence = vd.Confidence
		if v.blocks(vd) {
			v.m.cacheHits.WithLabelValues("malicious").Inc()
			res.KnownMalicious = true
			if res.Action != Block {
				res.Action, res.Reason = Block, ReasonLLM
			}
		} else {
			v.m.cacheHits.WithLabelValues("benign").Inc()
		}
		return
	}
	if !res.Borderline || v.cfg.LLMMode == LLMOff {
		return
	}
	if v.llm == nil {
		res.LLM = LLMUnavailable
		return
	}
	sample := Sample{Hash: res.Hash, Excerpt: res.Excerpt, Score: res.Score, Detectors: detectorsOf(res.Findings)}
	if v.cfg.LLMMode == LLMAsync {
		res.LLM = v.enqueue(job{sample: sample, client: in.Client})
		return
	}
	v.m.asks.WithLabelValues("sync").Inc()
	vd, err := v.askSync(ctx, sample)
	if err != nil {
		v.m.verdicts.WithLabelValues("error").Inc()
		v.log.LogAttrs(ctx, slog.LevelWarn, "payload llm ask failed, allowing", slog.String("hash", sample.Hash), slog.Any("err", err))
		res.LLM = LLMFailed
		return
	}
	res.LLM, res.Confidence = LLMAsked, vd.Confidence
	if v.blocks(vd) {
		res.Action, res.Reason, res.KnownMalicious = Block, ReasonLLM, true
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

func (v *Validator) blocks(vd Verdict) bool {
	return vd.Malicious && vd.Confidence > v.cfg.MinConfidence
}

// enqueue offers a job without blocking: a full queue drops it (counted),
// and a payload already being asked about is not asked twice.
func (v *Validator) enqueue(j job) LLMOutcome {
	v.mu.Lock()
	if _, busy := v.inflight[j.sample.Hash]; busy {
		v.mu.Unlock()
		return LLMPending
	}
	select {
	case v.queue <- j:
		v.inflight[j.sample.Hash] = struct{}{}
		v.mu.Unlock()
		v.m.asks.WithLabelValues("async").Inc()
		return LLMQueued
	default:
		v.mu.Unlock()
		v.m.dropped.Inc()
		return LLMDropped
	}
}

func (v *Validator) askSync(ctx context.Context, s Sample) (Verdict, error) {
	select {
	case v.syncSem <- struct{}{}:
	case <-ctx.Done():
		return Verdict{}, fmt.Errorf("wait for llm slot: %w", ctx.Err())
	}
	defer func() { <-v.syncSem }()
	vd, err := v.ask(ctx, s)
	if err != nil {
		return Verdict{}, err
	}
	return vd, nil
}

// ask calls the LLM, checks the answer and caches it.
func (v *Validator) ask(ctx context.Context, s Sample) (Verdict, error) {
	vd, err := v.llm.PayloadVerdict(ctx, s)
	if err != nil {
		return Verdict{}, fmt.Errorf("payload verdict %s: %w", s.Hash, err)
	}
	if vd.Confidence < 0 || vd.Confidence > 1 {
		return Verdict{}, fmt.Errorf("payload verdict %s: confidence %v out of 0..1", s.Hash, vd.Confidence)
	}
	if vd.Malicious {
		v.m.verdicts.WithLabelValues("malicious").Inc()
	} else {
		v.m.verdicts.WithLabelValues("benign").Inc()
	}
	v.store(s.Hash, vd)
	return vd, nil
}

// Run serves background asks with LLMWorkers workers until ctx is done,
// then returns nil; queued asks not yet started are abandoned (they were
// only ever advisory). Call it once, e.g. from the errgroup in cmd/.
func (v *Validator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range v.cfg.LLMWorkers {
		wg.Go(func() { v.worker(ctx) })
	}
	wg.Wait()
	return nil
}

func (v *Validator) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-v.queue:
			v.serve(ctx, j)
		}
	}
}

func (v *Validator) serve(ctx context.Context, j job) {
	defer func() {
		v.mu.Lock()
		delete(v.inflight, j.sample.Hash)
		v.mu.Unlock()
	}()
	actx, cancel := context.WithTimeout(ctx, v.cfg.LLMTimeout)
	vd, err := v.ask(actx, j.sample)
	cancel()
	if err != nil {
		if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
			v.m.verdicts.WithLabelValues("error").Inc()
			v.log.LogAttrs(ctx, slog.LevelWarn, "payload llm ask failed", slog.String("hash", j.sample.Hash), slog.Any("err", err))
		}
		return
	}
	ev := VerdictEvent{Sample: j.sample, Client: j.client, Verdict: vd, Block: v.blocks(vd)}
	if ev.Block {
		v.log.LogAttrs(ctx, slog.LevelInfo, "payload judged malicious", slog.String("hash", j.sample.Hash),
			slog.Float64("confidence", vd.Confidence), slog.String("reason", vd.Reason))
	}
	if v.hook != nil {
		v.hook(ctx, ev)
	}
}

func (v *Validator) cached(hash string) (Verdict, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	el, ok := v.cache[hash]
	if !ok {
		return Verdict{}, false
	}
	e := el.Value.(*cacheEntry)
	if !v.now().Before(e.expires) {
		v.lru.Remove(el)
		delete(v.cache, hash)
		return Verdict{}, false
	}
	v.lru.MoveToFront(el)
	return e.verdict, true
}

func (v *Validator) store(hash string, vd Verdict) {
	v.mu.Lock()
	defer v.mu.Unlock()
	exp := v.now().Add(v.cfg.VerdictTTL)
	if el, ok := v.cache[hash]; ok {
		e := el.Value.(*cacheEntry)
		e.verdict, e.expires = vd, exp
		v.lru.MoveToFront(el)
		return
	}
	v.cache[hash] = v.lru.PushFront(&cacheEntry{hash: hash, verdict: vd, expires: exp})
	for v.lru.Len() > v.cfg.VerdictCacheSize {
		old := v.lru.Back()
		v.lru.Remove(old)
		delete(v.cache, old.Value.(*cacheEntry).hash)
	}
}
