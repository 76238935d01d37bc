// Package llm asks an OpenAI-compatible chat-completions API for three
// structured judgements: a grey-zone client verdict, a borderline payload
// verdict and the daily report narrative.
//
// It is a plain client: a call's deadline is the caller's context, retries
// stay inside it, and a circuit breaker stops calling a failing provider.
// Queueing, concurrency bounds, verdict caches and timeouts belong to each
// use (behaviour scoring and payload validation, through internal/ask; the
// reporter's report.narrative_timeout). Untrusted text reaches the model only
// as JSON inside a delimited data block, and every answer is validated
// against its schema; an invalid answer is an error, never a guess. Callers
// fail open on any error (see ErrDisabled and the other sentinels in
// errors.go).
package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/prometheus/client_golang/prometheus"
)

// Retry backoff when the provider gives no Retry-After.
const (
	backoffBase = 200 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// idleConnsPerHost keeps connections to the provider for reuse.
const idleConnsPerHost = 8

// Client is safe for concurrent use. The zero value is not usable: build
// one with New or Disabled.
type Client struct {
	cfg      Config
	disabled bool
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	chat      openai.ChatCompletionService
	transport *http.Transport
	breaker   *breaker
	// noSchema is set once the provider rejected response_format; from then on
	// the schema travels only in the prompt.
	noSchema atomic.Bool
}

// Option adjusts a Client beyond Config; tests use them.
type Option func(*options)

type options struct {
	now       func() time.Time
	transport http.RoundTripper
}

// WithClock sets the clock of the circuit breaker.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTransport replaces the HTTP transport (default: a private clone of
// http.DefaultTransport, closed by Close).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// New builds a client. An empty cfg.BaseURL gives a disabled client whose
// calls return ErrDisabled at once. reg may be nil (metrics not registered),
// logger may be nil (discard). Close releases idle connections.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		logger.Info("llm disabled: no base_url; grey-zone checks and report narrative fail open")
		return &Client{cfg: cfg, disabled: true, log: logger, m: m, now: time.Now}, nil
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{
		cfg: cfg,
		log: logger.With("component", "llm", "model", cfg.Model),
		m:   m,
		now: o.now,
	}
	rt := o.transport
	if rt == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
		// Calls in flight are bounded by the callers' workers
		// (behavior.llm.workers + payload.llm.workers, and the reporter).
		c.transport.MaxIdleConnsPerHost = idleConnsPerHost
		rt = c.transport
	}
	// NewChatCompletionService, not openai.NewClient: the latter also reads
	// OPENAI_* variables from the environment, and our config is the only
	// source of truth. Retries are ours (MaxRetries 0 here): the SDK's would
	// sleep past our deadline and hide attempts from the breaker and metrics.
	c.chat = openai.NewChatCompletionService(
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIKey(cfg.APIKey.Reveal()),
		option.WithHTTPClient(&http.Client{Transport: rt}),
		option.WithMaxRetries(0),
	)
	c.breaker = newBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, o.now, func(from, to CircuitState) {
		m.circuit.Set(float64(to))
		c.log.Warn("llm circuit breaker", "from", from.String(), "to", to.String())
	})
	if cfg.Output == OutputText {
		c.noSchema.Store(true)
	}
	c.log.Info("llm enabled", "config", cfg)
	return c, nil
}

// Disabled returns a client without a provider: every call returns
// ErrDisabled at once.
func Disabled() *Client {
	m, _ := newMetrics(nil) // nil registerer: cannot fail
	return &Client{disabled: true, log: slog.New(slog.DiscardHandler), m: m, now: time.Now}
}

// Enabled reports whether the client talks to a provider.
func (c *Client) Enabled() bool { return !c.disabled }

// CircuitState returns the breaker's state (CircuitClosed when disabled).
func (c *Client) CircuitState() CircuitState {
	if c.disabled {
		return CircuitClosed
	}
	return c.breaker.State()
}

// Close releases the idle connections. Calls still work afterwards.
func (c *Client) Close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// ClientVerdict asks whether a grey-zone client should be blocked, until
// ctx ends.
func (c *Client) ClientVerdict(ctx context.Context, s ClientSummary) (ClientVerdict, error) {
	input, err := clientInput(s)
	if err != nil {
		return ClientVerdict{}, &Error{Op: string(kindClient), Reason: ReasonRejected, Err: fmt.Errorf("encode summary: %w", err)}
	}
	return call(ctx, c, &clientSpec, clientIntro, input, parseClientVerdict)
}

// PayloadVerdict asks whether a borderline payload is an attack, until ctx
// ends.
func (c *Client) PayloadVerdict(ctx context.Context, p PayloadSample) (PayloadVerdict, error) {
	input, err := payloadInput(p)
	if err != nil {
		return PayloadVerdict{}, &Error{Op: string(kindPayload), Reason: ReasonRejected, Err: fmt.Errorf("encode sample: %w", err)}
	}
	return call(ctx, c, &payloadSpec, payloadIntro, input, parsePayloadVerdict)
}

// Narrative asks for the daily report's prose from the aggregates JSON
// (at most 64 KiB), until ctx ends (the reporter bounds it with
// report.narrative_timeout).
func (c *Client) Narrative(ctx context.Context, aggregatesJSON []byte) (Narrative, error) {
	if c.disabled {
		c.m.calls.WithLabelValues(string(kindNarrative), string(ReasonDisabled)).Inc()
		return Narrative{}, ErrDisabled
	}
	input, err := narrativeInput(aggregatesJSON)
	if err != nil {
		// The caller's bug, not the provider's: no call, no breaker change.
		return Narrative{}, &Error{Op: string(kindNarrative), Reason: ReasonRejected, Err: err}
	}
	return call(ctx, c, &narrativeSpec, narrativeIntro, input, parseNarrative)
}

// call runs one question: breaker, attempts with retries inside ctx's
// deadline, validation, metrics.
func call[T any](ctx context.Context, c *Client, sp *spec, intro string, input []byte, parse func(string) (T, error)) (T, error) {
	var zero T
	k := string(sp.kind)
	if c.disabled {
		c.m.calls.WithLabelValues(k, string(ReasonDisabled)).Inc()
		return zero, ErrDisabled
	}
	if err := ctx.Err(); err != nil {
		// Out of time before the call: says nothing about the provider.
		c.m.calls.WithLabelValues(k, string(ctxReason(ctx))).Inc()
		return zero, &Error{Op: k, Reason: ctxReason(ctx), Err: err}
	}
	probe, ok := c.breaker.allow()
	if !ok {
		c.m.calls.WithLabelValues(k, string(ReasonCircuitOpen)).Inc()
		return zero, &Error{Op: k, Reason: ReasonCircuitOpen}
	}
	c.m.inFlight.Inc()
	start := time.Now()
	v, e := attempts(ctx, c, sp, dataMessage(intro, input), parse)
	c.m.latency.WithLabelValues(k).Observe(time.Since(start).Seconds())
	c.m.inFlight.Dec()

	if e != nil {
		c.breaker.record(probe, breakerResult(e))
		c.m.calls.WithLabelValues(k, string(e.Reason)).Inc()
		c.log.Debug("llm call failed", "kind", k, "reason", e.Reason, "status", e.Status, "attempts", e.Attempts, "err", e.Err)
		return zero, e
	}
	c.breaker.record(probe, resultSuccess)
	c.m.calls.WithLabelValues(k, string(ReasonOK)).Inc()
	return v, nil
}

// attempts makes HTTP attempts until one gives an answer, a non-retryable
// error occurs, MaxRetries is used up, or the next wait would pass the deadline.
func attempts[T any](ctx context.Context, c *Client, sp *spec, user string, parse func(string) (T, error)) (T, *Error) {
	var zero T
	k := string(sp.kind)
	retriesLeft := c.cfg.MaxRetries
	useSchema := !c.noSchema.Load()
	fellBack := false
	for n := 1; ; n++ {
		text, ex := c.complete(ctx, sp, user, useSchema)
		if ex == nil {
			if fellBack && !c.noSchema.Swap(true) {
				c.log.Warn("llm provider rejects response_format json_schema; sending the schema in the prompt only from now on")
			}
			v, err := parse(text)
			if err != nil {
				return zero, &Error{Op: k, Reason: ReasonInvalidAnswer, Status: http.StatusOK, Attempts: n, Err: err}
			}
			return v, nil
		}
		e := ex.classify(ctx)
		e.Op, e.Attempts = k, n
		c.m.failures.WithLabelValues(k, string(e.Reason)).Inc()
		if ctx.Err() != nil {
			return zero, e
		}
		// A provider that does not know response_format json_schema answers
		// 400/422: ask once more without it, at once and without using up a
		// retry. The answer is validated against the same schema either way.
		if useSchema && (ex.status == http.StatusBadRequest || ex.status == http.StatusUnprocessableEntity) {
			useSchema, fellBack = false, true
			continue
		}
		if !ex.retryable() || retriesLeft == 0 {
			return zero, e
		}
		delay := ex.retryAfter
		if delay <= 0 {
			delay = backoff(c.cfg.MaxRetries - retriesLeft)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= delay {
			return zero, e // waiting would pass the deadline: give up now
		}
		retriesLeft--
		c.m.retries.WithLabelValues(k).Inc()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return zero, &Error{Op: k, Reason: ctxReason(ctx), Attempts: n, Status: ex.status, RetryAfter: ex.retryAfter, Err: ctx.Err()}
		}
	}
}

// backoff is exponential with full jitter: base·2^n, capped.
func backoff(retry int) time.Duration {
	d := backoffMax
	if retry < 16 { // larger shifts overflow
		d = min(backoffBase<<retry, backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// exchange is what one failed HTTP attempt left behind.
type exchange struct {
	status     int // last HTTP status, 0 when none
	retryAfter time.Duration
	// unusable: the provider answered 2xx but the completion had no answer.
	unusable bool
	err      error
}

// complete makes one chat-completions request and returns the answer text.
func (c *Client) complete(ctx context.Context, sp *spec, user string, useSchema bool) (string, *exchange) {
	var ex exchange
	// The middleware sees the raw response, whatever the SDK makes of the
	// body: status and Retry-After survive a non-JSON error page.
	capture := option.WithMiddleware(func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(req)
		if res != nil {
			ex.status = res.StatusCode
			ex.retryAfter = parseRetryAfter(res.Header, time.Now())
		}
		return res, err
	})
	resp, err := c.chat.New(ctx, c.params(sp, user, useSchema), capture)
	if err != nil {
		ex.err = err
		return "", &ex
	}
	if len(resp.Choices) == 0 {
		ex.err, ex.unusable = errors.New("no choices in completion"), true
		return "", &ex
	}
	msg := resp.Choices[0].Message
	if msg.Refusal != "" {
		return "", &exchange{status: ex.status, err: &AnswerError{Problem: "model refused: " + excerpt(msg.Refusal)}}
	}
	if fr := resp.Choices[0].FinishReason; fr == "length" || fr == "content_filter" {
		return "", &exchange{status: ex.status, err: &AnswerError{Problem: "answer cut off (finish_reason " + fr + ")", Excerpt: excerpt(msg.Content)}}
	}
	return msg.Content, nil
}

// params builds the chat-completions request body.
func (c *Client) params(sp *spec, user string, useSchema bool) openai.ChatCompletionNewParams {
	params := openai.ChatCompletionNewParams{
		Model: shared.ChatModel(c.cfg.Model),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(sp.system),
			openai.UserMessage(user),
		},
	}
	if c.cfg.Temperature != nil {
		params.Temperature = openai.Float(*c.cfg.Temperature)
	}
	if useSchema {
		params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &sp.format}
	}
	return params
}

// classify turns an exchange into an Error with a Reason.
func (ex *exchange) classify(ctx context.Context) *Error {
	e := &Error{Status: ex.status, RetryAfter: ex.retryAfter, Err: ex.err}
	var ae *AnswerError
	switch {
	case ctx.Err() != nil:
		e.Reason = ctxReason(ctx)
	case errors.As(ex.err, &ae):
		e.Reason = ReasonInvalidAnswer
	case ex.unusable:
		e.Reason = ReasonBadResponse
	case ex.status == 0:
		var ne net.Error
		if errors.As(ex.err, &ne) && ne.Timeout() {
			e.Reason = ReasonTimeout
		} else {
			e.Reason = ReasonUnavailable
		}
	case ex.status == http.StatusTooManyRequests:
		e.Reason = ReasonRateLimited
	case ex.status == http.StatusRequestTimeout || ex.status == http.StatusConflict || ex.status >= 500:
		e.Reason = ReasonServerError
	case ex.status >= 400:
		e.Reason = ReasonRejected
	default: // 2xx/3xx but the SDK could not use the body
		e.Reason = ReasonBadResponse
	}
	return e
}

// retryable: 429, 408, 409, 5xx, and failures without an HTTP answer.
func (ex *exchange) retryable() bool {
	var ae *AnswerError
	if errors.As(ex.err, &ae) || ex.unusable {
		return false
	}
	return ex.status == 0 || ex.status == http.StatusTooManyRequests || ex.status == http.StatusRequestTimeout ||
		ex.status == http.StatusConflict || ex.status >= 500
}

// ctxReason names why the caller's context ended: its deadline passed
// (timeout) or it was canceled.
func ctxReason(ctx context.Context) Reason {
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ReasonCanceled
	}
	return ReasonTimeout
}

// breakerResult decides what an error says about the provider's health.
// Invalid answers and input-dependent rejections (400, 413, 422) say nothing:
// counting them would let an attacker open the circuit, and so switch the
// LLM off for everyone, by sending payloads the model answers badly.
func breakerResult(e *Error) result {
	switch e.Reason {
	case ReasonInvalidAnswer:
		return resultSuccess
	case ReasonCanceled:
		return resultNeutral
	case ReasonRejected:
		switch e.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return resultFailure // configuration: bad key, unknown model or URL
		}
		return resultNeutral
	}
	return resultFailure
}

// parseRetryAfter reads retry-after-ms (OpenAI), then Retry-After in seconds
// or as an HTTP date. It returns 0 when absent or unparsable.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e9 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e6 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
