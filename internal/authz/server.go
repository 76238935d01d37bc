// Package authz is Envoy's external authorization (ext_authz v3) server:
// it turns each CheckRequest into a scoring.Request, runs the pipeline —
// CIDR lists, behaviour, payload, quota — within the decision budget, and
// answers with an OK or Denied CheckResponse carrying dynamic metadata for
// the access log.
package authz

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/smartlayer/smartlayer/internal/logging"
	"github.com/smartlayer/smartlayer/internal/prom"
	"github.com/smartlayer/smartlayer/internal/scoring"
)

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	pipeline atomic.Pointer[Pipeline]
	budget   atomic.Int64 // time.Duration
	now      func() time.Time
	logger   *slog.Logger
	m        *metrics
	decided  DecisionRecorder
	warns    *logging.Sampler
	denials  *logging.Sampler
	runner   *runner
	// denyDetail shows the client the deny reason (body and
	// x-smartlayer-reason); off by default.
	denyDetail bool
}

// maxIdleRunners bounds the pipeline goroutines kept between Checks:
// Envoy keeps tens of Checks in flight per authz replica; a burst above
// this gets goroutines of its own that end afterwards.
const maxIdleRunners = 256

// Option configures a Server.
type Option func(*Server)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// DecisionRecorder remembers the requests authz let through, so that
// access-log feedback counts only for them (scoring.Decisions).
type DecisionRecorder interface {
	Record(requestID, clientKey string)
}

// WithDecisionRecorder records every allowed request; it must not block.
func WithDecisionRecorder(r DecisionRecorder) Option { return func(s *Server) { s.decided = r } }

// WithDenyDetail shows clients why they were denied (server.deny_detail:
// reason). Off, a denial says only its status and the request id.
func WithDenyDetail(on bool) Option { return func(s *Server) { s.denyDetail = on } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithRegisterer registers the server's metrics.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(s *Server) { s.m = newMetrics(r) }
}

// NewServer returns a Server running p with the given decision budget.
func NewServer(p *Pipeline, budget time.Duration, opts ...Option) *Server {
	s := &Server{now: time.Now, logger: slog.New(slog.DiscardHandler), warns: logging.NewSampler(10 * time.Second),
		denials: logging.NewSampler(time.Second), runner: newRunner(maxIdleRunners)}
	for _, o := range opts {
		o(s)
	}
	if s.m == nil {
		s.m = newMetrics(nil)
	}
	s.Swap(p, budget)
	return s
}

// Swap installs a new pipeline and budget; Checks in flight finish on the
// old one.
func (s *Server) Swap(p *Pipeline, budget time.Duration) {
	s.pipeline.Store(p)
	s.budget.Store(int64(budget))
}

// Register adds the service to a gRPC server: Check as Check answers, with
// the response encoded by appendResponse (wire.go). The server needs
// ServerCodec.
func (s *Server) Register(g *grpc.Server) { g.RegisterService(&checkServiceDesc, s) }

// Check answers one ext_authz request. It never returns an error for a
// request it could read: every failure becomes the fail-mode decision, so
// Envoy's own failure_mode_allow is only a last resort.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	d, err := s.decide(ctx, req, nameHints{})
	if err != nil {
		return nil, err
	}
	return toResponse(&d, s.denyDetail), nil
}

// decide is Check's decision, before it is put into a response.
// names: what the decoder found out about req's header names.
func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest, names nameHints) (Decision, error) {
	if err := ctx.Err(); err != nil {
		// Envoy gave up already (its timeout or a reset): do no work.
		return Decision{}, status.FromContextError(err).Err()
	}
	t0 := time.Now()
	p := s.pipeline.Load()
	d := s.check(ctx, p, req, s.now(), names)
	s.m.observe(&d, time.Since(t0))
	return d, nil
}

func (s *Server) check(ctx context.Context, p *Pipeline, req *authv3.CheckRequest, now time.Time, names nameHints) Decision {
	r, ok := toRequestNames(req, &p.Identity, now, names)
	if !ok {
		s.m.errors.WithLabelValues("parse").Inc()
		s.logger.Debug("check request without http attributes", "request_id", r.ID)
		// Envoy always sends the HTTP attributes: a CheckRequest without
		// them comes from something else on the port. Deny it, whatever
		// the fail mode (which is for our failures, not for bad input).
		return Decision{Status: http.StatusBadRequest, Module: ModuleRequest, Reason: ReasonMalformed,
			Plan: r.Plan, RequestID: r.ID}
	}
	d, err := s.decideWithin(ctx, p, r)
	if !names.noOwn {
		d.Strip = ownHeadersSent(r.Headers)
	}
	if d.Allow && s.decided != nil {
		// Cloned: the id shares its memory with the request's other
		// strings (decoder's arena), which the record would keep.
		s.decided.Record(strings.Clone(r.ID), r.ClientKey)
	}
	if !d.Allow && err == nil {
		// Why a request was denied, for the operator (the client is told
		// only its status): one line per reason per second, with how many
		// like it were not logged.
		if ok, held := s.denials.Allow(d.Reason, now); ok {
			s.logger.Info("request denied", "module", d.Module, "reason", d.Reason, "rule", d.Rule,
				"field", d.Field, "excerpt", d.Excerpt, "behavior_score", d.BehaviorScore,
				"payload_score", d.PayloadScore, "client", r.ClientKey, "request_id", r.ID,
				"similar_suppressed", held)
		}
	}
	if err != nil {
		kind := "stage"
		if errors.Is(err, errBudget) {
			kind = "budget"
		}
		s.m.errors.WithLabelValues(kind).Inc()
		// One line per cause per interval: during a store outage every
		// Check fails the same way, and the metric carries the count.
		cause := kind
		var se *StageError
		if errors.As(err, &se) {
			cause += "/" + se.Module
		}
		if ok, held := s.warns.Allow(cause, now); ok {
			s.logger.Warn("check failed; applying fail mode", "err", err, "fail_open", p.FailOpen,
				"client", r.ClientKey, "request_id", r.ID, "similar_suppressed", held)
		}
	}
	return d
}

// ownHeadersSent lists the x-smartlayer-* request headers a client sent
// (the upstream trusts our headers; a client's copy must not get through).
// Plan and score are overwritten anyway; the rest is removed.
func ownHeadersSent(h map[string]string) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, ownHeaderPrefix) && k != HeaderPlan && k != HeaderScore {
			out = append(out, k)
		}
	}
	return out
}

// decideWithin runs the pipeline under the decision budget. The pipeline
// runs on its own goroutine so a stage that overruns (a slow store, a sync
// LLM call) cannot hold Envoy past the budget: the answer goes out and the
// straggler finishes on its own (runner).
func (s *Server) decideWithin(ctx context.Context, p *Pipeline, r *scoring.Request) (Decision, error) {
	budget := time.Duration(s.budget.Load())
	bctx := newBudgetCtx(ctx, budget)
	c := s.runner.call(p, r, bctx)
	pr := &c.pr
	pr.at(p.Stages, len(r.Body) > 0)
	s.runner.start(c)
	expired := c.startTimer(budget)
	defer func() {
		c.timer.Stop()
		bctx.end(false) // the straggler of a run cut short: done
		c.release()
	}()
	select {
	case <-c.done:
		return c.d, c.err
	case <-expired:
		bctx.end(true)
	case <-ctx.Done():
		bctx.endParent()
	}
	select {
	case <-c.done:
		if c.err == nil {
			// Decided as the budget ran out: the decision
			// stands. (An error now is the budget's doing: a
			// stage that saw its context end.)
			return c.d, nil
		}
	default:
	}
	if d, ok := pr.onBudget(r); ok {
		// Decided already, or the request's own cost: not the fail mode.
		s.m.errors.WithLabelValues("budget_stage").Inc()
		return d, nil
	}
	return p.failDecision(r, ReasonBudgetExceeded), errBudget
}

type panicError struct{ v any }

func (e panicError) Error() string { return "panic: " + toString(e.v) }

func toString(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	default:
		return "non-error panic value"
	}
}

type metrics struct {
	checks *prometheus.CounterVec
	// allowed: checks{decision="allow"} of a Check no module denied and
	// the fail mode did not answer, nearly every Check; looked up once.
	allowed  *prom.Child
	shadow   *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_checks_total",
			Help: "Check decisions by decision, module and reason.",
		}, []string{"decision", "module", "reason"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_shadow_denials_total",
			Help: "Requests a shadow-mode module would have denied.",
		}, []string{"module", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_check_errors_total",
			Help: "Checks answered by the fail mode, by kind (parse, stage, budget); budget_stage: the budget ran out in a stage whose time is the request's doing (payload), answered by that stage's OnBudget verdict, not the fail mode.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartlayer_check_duration_seconds",
			Help:    "Time to decide one Check.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
	}
	m.allowed = prom.NewChild(m.checks, "allow", "", "")
	for _, k := range []string{"parse", "stage", "budget", "budget_stage"} {
		m.errors.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.shadow, m.errors, m.duration)
	}
	return m
}

func (m *metrics) observe(d *Decision, took time.Duration) {
	decision := "allow"
	if !d.Allow {
		decision = "deny"
	}
	if d.Allow && d.Module == "" && d.Reason == "" {
		m.allowed.Inc()
	} else {
		m.checks.WithLabelValues(decision, d.Module, d.Reason).Inc()
	}
	if d.Shadow {
		m.shadow.WithLabelValues(d.ShadowModule, d.ShadowReason).Inc()
	}
	m.duration.Observe(took.Seconds())
}
