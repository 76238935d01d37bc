package scoring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/ask"
)

// Behavior is django-smart-layer's AIAnomalyDetector: it records each
// request in a State, applies Decide, bans, and asks the LLM about grey-zone
// clients in the background.
//
// Safe for concurrent use. Close stops the LLM workers.
type Behavior struct {
	cfg      atomic.Pointer[BehaviorConfig]
	state    State
	verdicts Verdicts
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	// ask holds the grey-zone questions (one per client), their workers
	// and the verdict cache; nil without an LLM.
	ask *ask.Asker[string, question, ClientVerdict]
}

// Option tunes a Behavior.
type Option func(*Behavior)

// WithClock sets the clock used where no request time is at hand: LLM bans
// and requests without a Time. Tests pass a fake one.
func WithClock(now func() time.Time) Option { return func(b *Behavior) { b.now = now } }

// NewBehavior validates cfg and starts cfg.LLM.Workers workers when v is not
// nil. A nil v (no LLM configured) never bans grey-zone clients. A nil
// logger discards; a nil reg registers no metrics.
func NewBehavior(cfg BehaviorConfig, st State, v Verdicts, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Behavior, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("behavior config: %w", err)
	}
	if st == nil {
		return nil, errors.New("behavior: nil State")
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("behavior metrics: %w", err)
	}
	b := &Behavior{state: st, verdicts: v, log: logger, m: m, now: time.Now}
	for _, o := range opts {
		o(b)
	}
	c := cloneConfig(cfg)
	b.cfg.Store(&c)
	if v != nil {
		b.ask, err = ask.New(ask.Config{
			QueueSize: cfg.LLM.QueueSize, Workers: cfg.LLM.Workers,
			CacheSize: cfg.LLM.CacheSize, CacheTTL: cfg.LLM.CacheTTL,
			Now: func() time.Time { return b.now() },
		}, b.answer, nil)
		if err != nil {
			return nil, fmt.Errorf("behavior llm: %w", err)
		}
		b.ask.Start()
	}
	return b, nil
}

func cloneConfig(c BehaviorConfig) BehaviorConfig {
	c.SuspiciousUserAgents = append([]string(nil), c.SuspiciousUserAgents...)
	c.SensitivePaths = append([]string(nil), c.SensitivePaths...)
	return c
}

// Config returns the configuration in use.
func (b *Behavior) Config() BehaviorConfig { return cloneConfig(*b.cfg.Load()) }

// SetConfig swaps the configuration atomically (hot reload). The LLM queue
// size, worker count and verdict cache size and TTL keep their start-up
// values.
func (b *Behavior) SetConfig(cfg BehaviorConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("behavior config: %w", err)
	}
	c := cloneConfig(cfg)
	b.cfg.Store(&c)
	return nil
}

// Key returns the state key of a client key (see ClientKey).
func (b *Behavior) Key(clientKey string) string {
	return ClientKey(clientKey, b.cfg.Load().IPv6Prefix)
}

func (b *Behavior) requestKey(r *Request, cfg *BehaviorConfig) string {
	if r.ClientIP.IsValid() {
		return addrKey(r.ClientIP, cfg.IPv6Prefix, r.ClientKey)
	}
	return ClientKey(r.ClientKey, cfg.IPv6Prefix)
}

// Check records r and decides. A store error returns the error and a zero
// Outcome: the caller applies its fail mode. A failure to store a ban after a
// deny decision is logged and counted, and the request is still denied.
func (b *Behavior) Check(ctx context.Context, r *Request) (Outcome, error) {
	cfg := b.cfg.Load()
	now := r.Time
	if now.IsZero() {
		now = b.now()
	}
	key := b.requestKey(r, cfg)
	st, err := b.state.Check(ctx, Observe(*cfg, key, r, now))
	if err != nil {
		b.m.storeErrors.WithLabelValues("check").Inc()
		return Outcome{}, fmt.Errorf("behavior check %s: %w", key, err)
	}
	out := Decide(*cfg, r, st, now)
	if st.Ban == nil && st.Requests > int64(cfg.GraceRequests) && out.Reason == "" {
		b.m.score.Observe(float64(out.Score))
	}
	if out.Grey && b.ask != nil {
		if v, ok := b.ask.Get(key); ok {
			if v.blocks(cfg.LLM.MinConfidence) {
				out.Grey, out.Deny, out.Reason = false, true, ReasonScore
				out.Signals = append(out.Signals, SignalLLMBlock)
			}
		} else {
			b.enqueue(key, r, out, st, cfg)
		}
	}
	if out.Deny && out.Reason != ReasonBanned {
		ban, err := b.state.Ban(ctx, key, b.banRequest(cfg, out.Reason, out.Score, now))
		if err != nil {
			b.m.storeErrors.WithLabelValues("ban").Inc()
			b.log.WarnContext(ctx, "behavior: ban not stored; denying this request only",
				"client", key, "reason", out.Reason, "err", err)
		} else {
			out.Ban = &ban
			b.m.bans.WithLabelValues(out.Reason).Inc()
			b.log.InfoContext(ctx, "behavior: banned", "client", key, "reason", out.Reason,
				"score", out.Score, "signals", out.Signals, "expires", ban.Expires, "offence", ban.Offence)
		}
	}
	switch {
	case out.Deny:
		b.m.decisions.WithLabelValues(out.Reason).Inc()
	case out.Grey:
		b.m.grey.Inc()
	default:
		b.m.allowed.Inc()
	}
	return out, nil
}

func (b *Behavior) banRequest(cfg *BehaviorConfig, reason string, score int, now time.Time) BanRequest {
	return BanRequest{
		Reason: reason, Score: score, Now: now,
		TTL: cfg.BanTTL, Escalate: true, Factor: cfg.BanEscalation,
		MaxTTL: cfg.BanMaxTTL, OffenceMemory: cfg.OffenceMemory,
	}
}

// UpstreamResponse is a response from the access log, for ObserveResponses.
type UpstreamResponse struct {
	// ClientIP is the downstream address Envoy saw.
	ClientIP string
	Status   int
	// OwnDenial: smartlayer denied the request; not the upstream's answer.
	OwnDenial bool
	At        time.Time
	// RequestID binds the response to a request authz decided (Decisions).
	RequestID string
}

// ObserveResponses feeds the error windows from the access log, one ALS
// message's responses in one store round trip. Our own denials and
// responses without a status are not the upstream's answers and are left
// out.
func (b *Behavior) ObserveResponses(ctx context.Context, rs []UpstreamResponse) error {
	cfg := b.cfg.Load()
	obs := make([]ObservedResponse, 0, len(rs))
	for _, r := range rs {
		if r.OwnDenial || r.Status <= 0 {
			continue
		}
		obs = append(obs, ObservedResponse{ClientKey: ClientKey(r.ClientIP, cfg.IPv6Prefix), IsError: r.Status >= 400, At: r.At})
	}
	if len(obs) == 0 {
		return nil
	}
	if err := b.state.ObserveResponses(ctx, obs, cfg.windows()); err != nil {
		b.m.storeErrors.WithLabelValues("observe_response").Inc()
		return fmt.Errorf("behavior observe %d responses: %w", len(obs), err)
	}
	return nil
}

// Ban bans a client with the escalating policy (repeat offences within
// behavior.offence_memory ban longer). Payload inspection calls it when a
// known-malicious payload repeats; reason should be a closed-set reason such
// as "payload.sqli". An active ban is returned unchanged.
func (b *Behavior) Ban(ctx context.Context, clientKey, reason string, score int, now time.Time) (Ban, error) {
	cfg := b.cfg.Load()
	key := ClientKey(clientKey, cfg.IPv6Prefix)
	ban, err := b.state.Ban(ctx, key, b.banRequest(cfg, reason, score, now))
	if err != nil {
		b.m.storeErrors.WithLabelValues("ban").Inc()
		return Ban{}, fmt.Errorf("behavior ban %s: %w", key, err)
	}
	b.m.bans.WithLabelValues(metricReason(reason)).Inc()
	return ban, nil
}

// AddBan bans a client or a network for ttl (an operator's ban: kept apart
// from automatic bans and never evicted; it replaces an active manual ban
// and does not count as an offence). ttl ≤ 0 means behavior.ban_ttl;
// shorter than a second is rounded up to a second. See BanKey for the key;
// a network wider than behavior.min_ban_prefix_v4/v6 is refused with an
// error wrapping ErrBanTooWide.
func (b *Behavior) AddBan(ctx context.Context, clientKey, reason string, ttl time.Duration, now time.Time) (Ban, error) {
	cfg := b.cfg.Load()
	if ttl <= 0 {
		ttl = cfg.BanTTL
	}
	ttl = max(ttl, time.Second)
	key, err := BanKey(clientKey, cfg.IPv6Prefix, cfg.MinBanPrefixV4, cfg.MinBanPrefixV6)
	if err != nil {
		return Ban{}, err
	}
	ban, err := b.state.Ban(ctx, key, BanRequest{Reason: reason, Now: now, TTL: ttl, Manual: true})
	if err != nil {
		b.m.storeErrors.WithLabelValues("ban").Inc()
		return Ban{}, fmt.Errorf("behavior add ban %s: %w", key, err)
	}
	b.m.bans.WithLabelValues("manual").Inc()
	return ban, nil
}

// Unban lifts a client's ban and forgets its offences and windows. It
// reports whether a ban was active.
func (b *Behavior) Unban(ctx context.Context, clientKey string, now time.Time) (bool, error) {
	// Any width: a network banned under a narrower minimum can be lifted.
	key, _ := BanKey(clientKey, b.cfg.Load().IPv6Prefix, 0, 0)
	ok, err := b.state.Unban(ctx, key, now)
	if err != nil {
		b.m.storeErrors.WithLabelValues("unban").Inc()
		return false, fmt.Errorf("behavior unban %s: %w", key, err)
	}
	if b.ask != nil {
		b.ask.Forget(key)
	}
	return ok, nil
}

// ListBans lists active bans (at most limit; limit ≤ 0 means 10000).
func (b *Behavior) ListBans(ctx context.Context, now time.Time, limit int) ([]Ban, error) {
	if limit <= 0 {
		limit = 10000
	}
	bans, err := b.state.Bans(ctx, now, limit)
	if err != nil {
		b.m.storeErrors.WithLabelValues("list_bans").Inc()
		return nil, fmt.Errorf("behavior list bans: %w", err)
	}
	return bans, nil
}

// metricReason keeps the bans_total label set closed.
func metricReason(reason string) string {
	switch reason {
	case ReasonEmptyUserAgent, ReasonRequestBurst, ReasonErrorRate, ReasonScore, reasonLLM:
		return reason
	}
	if len(reason) > 8 && reason[:8] == "payload." {
		return "payload"
	}
	return "other"
}

// reasonLLM is the ban reason after a BLOCK verdict.
const reasonLLM = "behavior.llm"

func (b *Behavior) enqueue(key string, r *Request, out Outcome, st ClientState, cfg *BehaviorConfig) {
	// Cloned: the request's strings share memory with all its headers
	// (authz's decoder), which a queued question would keep.
	q := question{score: out.Score, summary: ClientSummary{
		ClientKey: key, UserAgent: strings.Clone(r.UserAgent()), Method: strings.Clone(r.Method),
		Path:  strings.Clone(CleanPath(r.Path)),
		Score: out.Score, Signals: append([]string(nil), out.Signals...),
		Requests: st.Requests, RecentRequests: st.RecentRequests, RateWindow: cfg.RateWindow,
		Responses: st.Responses, Errors: st.Errors, ErrorWindow: cfg.ErrorWindow,
		DistinctEndpoints: st.DistinctEndpoints, SequentialRun: st.SequentialRun, IdleBurst: st.IdleBurst,
	}}
	switch b.ask.Submit(key, q) {
	case ask.Queued:
		b.m.llmQuestions.Inc()
	case ask.Dropped:
		b.m.llmFailures.WithLabelValues(llmFailQueueFull).Inc()
	}
}

// answer asks about one client (from a worker) and bans on a confident
// BLOCK. An error leaves the client alone (fail open) and is not cached,
// so the next grey request asks again.
func (b *Behavior) answer(ctx context.Context, key string, q question) (ClientVerdict, error) {
	cfg := b.cfg.Load()
	actx, cancel := context.WithTimeout(ctx, cfg.LLM.Timeout)
	v, err := b.verdicts.ClientVerdict(actx, q.summary)
	cancel()
	if err == nil {
		err = v.validate()
	}
	now := b.now()
	if err != nil {
		reason := llmFailError
		switch {
		case errors.Is(err, errInvalidVerdict):
			reason = llmFailInvalid
		case errors.Is(err, context.DeadlineExceeded):
			reason = llmFailTimeout
		}
		b.m.llmFailures.WithLabelValues(reason).Inc()
		b.log.Warn("behavior: no LLM verdict; client not banned", "client", key, "err", err)
		return ClientVerdict{}, err
	}
	action := "allow"
	if v.Action == VerdictBlock {
		action = "block"
		if !v.blocks(cfg.LLM.MinConfidence) {
			action = "block_low_confidence"
		}
	}
	b.m.llmVerdicts.WithLabelValues(action).Inc()
	if action == "block" {
		sctx, cancel := context.WithTimeout(ctx, cfg.LLM.StoreTimeout)
		ban, err := b.state.Ban(sctx, key, b.banRequest(cfg, reasonLLM, q.score, now))
		cancel()
		if err != nil {
			b.m.storeErrors.WithLabelValues("ban").Inc()
			b.m.llmFailures.WithLabelValues(llmFailBan).Inc()
			b.log.Warn("behavior: LLM said BLOCK but the ban was not stored", "client", key, "err", err)
			return ClientVerdict{}, err // not cached: the next grey request asks again
		}
		b.m.bans.WithLabelValues(reasonLLM).Inc()
		b.log.Info("behavior: banned after LLM verdict", "client", key, "confidence", v.Confidence,
			"llm_reason", v.Reason, "expires", ban.Expires)
	}
	return v, nil
}

// Close stops the LLM workers: the questions being asked are canceled and
// the queued ones abandoned. It does not close the State.
func (b *Behavior) Close() error {
	if b.ask == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = b.ask.Close(ctx) // an ended context: cancel at once
	return nil
}
