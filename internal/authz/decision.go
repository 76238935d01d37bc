package authz

import (
	"context"
	"net/http"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// Module names, used as metric labels and in dynamic metadata.
const (
	ModuleLists    = "lists"
	ModuleBehavior = "behavior"
	ModulePayload  = "payload"
	ModuleQuota    = "quota"
	ModuleFailMode = "failmode"
	// ModuleRequest decides requests that are not requests: no HTTP
	// attributes at all. Not our failure, so not the fail mode.
	ModuleRequest = "request"
)

// Reasons the pipeline itself produces; stages bring their own closed sets.
const (
	ReasonDenyCIDR        = "lists.deny_cidr"
	ReasonMalformed       = "request.malformed"
	ReasonStageError      = "failmode.stage_error"
	ReasonBudgetExceeded  = "failmode.budget_exceeded"
	ReasonInternalFailure = "failmode.internal"
)

// Header is one header to add to a response.
type Header struct{ Key, Value string }

// Verdict is what one stage says about a request.
type Verdict struct {
	Deny bool
	// Status is the HTTP status of a denial; 0 means 403.
	Status int
	// Reason is from the stage's closed set, e.g. "behavior.request_burst".
	Reason string
	Score  int
	// Rule names the rule that fired within Reason's family
	// ("payload.sqli.tautology"); Field says where ("query.q",
	// "body.$.items[3].name", "header.referer"); Excerpt is a short,
	// redacted piece of the value. They explain a denial in the logs,
	// the metadata and the access log — never to the client.
	Rule, Field, Excerpt string
	// Headers go to the client on denial and, for allowed requests, are
	// added to the upstream's response (e.g. RateLimit-* headers).
	Headers []Header
	// Charge: the denial still counts against the caller's quota. The
	// pipeline runs the later Counts stages for their counting only
	// (payload.too_complex: a request too costly to inspect must not be a
	// free probe).
	Charge bool
}

// Stage is one module of the Check pipeline. Evaluate must honour ctx's
// deadline; an error means "cannot decide" and the fail mode applies.
type Stage interface {
	Evaluate(ctx context.Context, r *scoring.Request) (Verdict, error)
}

// StageFunc adapts a function to Stage.
type StageFunc func(ctx context.Context, r *scoring.Request) (Verdict, error)

// Evaluate calls f.
func (f StageFunc) Evaluate(ctx context.Context, r *scoring.Request) (Verdict, error) {
	return f(ctx, r)
}

// Mode says whether a stage's denials are enforced.
type Mode int

// Stage modes. Shadow records what a stage would deny and allows.
const (
	Enforce Mode = iota
	Shadow
	Off
)

// Decision is the pipeline's answer for one request.
type Decision struct {
	Allow  bool
	Status int
	Module string
	Reason string
	Score  int
	// Shadow is set when a shadow-mode stage would have denied.
	Shadow       bool
	ShadowModule string
	ShadowReason string
	// Rule, Field and Excerpt explain the denial (or the shadow denial).
	Rule, Field, Excerpt string
	// BehaviorScore and PayloadScore are each module's own score (Score
	// is the one that decided).
	BehaviorScore, PayloadScore int

	// User and Plan are the identity authz decided with (from verified
	// sources); the access log stores them from the metadata.
	User      string
	Plan      string
	RequestID string
	// Headers: for a denial, sent to the client; for an allowed request,
	// added to the upstream response.
	Headers []Header
	// Strip names client-sent x-smartlayer-* request headers that are not
	// ours: an allowed request reaches the upstream without them.
	Strip []string
}

func (d *Decision) status() int {
	if d.Allow {
		return 0
	}
	if d.Status == 0 {
		return http.StatusForbidden
	}
	return d.Status
}
