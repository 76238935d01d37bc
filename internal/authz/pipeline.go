package authz

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// NamedStage is a stage with its module name and mode.
type NamedStage struct {
	Module string
	Mode   Mode
	Stage  Stage
	// SkipAllowListed skips the stage for clients in the allow list
	// (behaviour scoring: allow-listed clients are never banned).
	SkipAllowListed bool
	// Counts: the stage counts requests (quota); it also runs after an
	// earlier stage's denial that says Verdict.Charge.
	Counts bool
	// OnBudget, when set, is the answer instead of server.fail_mode if the
	// decision budget runs out while this stage runs in enforce mode, or
	// before it ran for a request with a body: the stage's time is the
	// request's doing, not ours. Payload inspection bounds itself below
	// the budget, but a machine too busy to let it finish (attack load
	// included) must not let a body through uninspected.
	OnBudget *Verdict
}

// Pipeline is one immutable configuration of the Check pipeline: CIDR lists
// first, then the stages in order. Hot reload builds a new Pipeline and
// swaps it in atomically.
type Pipeline struct {
	Allow  []netip.Prefix
	Deny   []netip.Prefix
	Stages []NamedStage
	// FailOpen decides what an error or budget overrun answers.
	FailOpen bool
	Identity Identity
}

// StageError says which stage could not decide.
type StageError struct {
	Module string
	Err    error
}

func (e *StageError) Error() string { return fmt.Sprintf("%s stage: %v", e.Module, e.Err) }
func (e *StageError) Unwrap() error { return e.Err }

// decide runs the stages on r. It returns the decision, and an error when a
// stage failed (the decision is then the fail-mode one).
func (p *Pipeline) decide(ctx context.Context, r *scoring.Request) (Decision, error) {
	return p.run(ctx, r, nil)
}

// progress is what a pipeline run has got to, read by decideWithin when
// the budget runs out.
type progress struct {
	// next is the stage running or to run; nil once none with OnBudget
	// is left.
	next atomic.Pointer[NamedStage]
	// denied is the denial once one stage has denied (the counting stages
	// may still run): the budget running out then changes nothing.
	denied atomic.Pointer[Decision]
}

// onBudget is the answer when the budget runs out at this point, or nil
// for the fail mode.
func (pr *progress) onBudget(r *scoring.Request) (Decision, bool) {
	if d := pr.denied.Load(); d != nil {
		return *d, true
	}
	st := pr.next.Load()
	if st == nil {
		return Decision{}, false
	}
	d := Decision{Allow: true, User: r.User, Plan: r.Plan, RequestID: r.ID}
	if st.OnBudget.Deny {
		d.deny(st.Module, *st.OnBudget)
	}
	return d, true
}

// run is decide, reporting its progress to pr (when not nil).
func (p *Pipeline) run(ctx context.Context, r *scoring.Request, pr *progress) (Decision, error) {
	d := Decision{Allow: true, User: r.User, Plan: r.Plan, RequestID: r.ID}
	allowListed := contains(p.Allow, r.ClientIP)
	if !allowListed && contains(p.Deny, r.ClientIP) {
		d.deny(ModuleLists, Verdict{Reason: ReasonDenyCIDR})
		return d, nil
	}
	var allowHeaders []Header
	for i := range p.Stages {
		s := &p.Stages[i]
		if s.Mode == Off || (allowListed && s.SkipAllowListed) {
			continue
		}
		if pr != nil {
			pr.at(p.Stages[i:], len(r.Body) > 0)
		}
		v, err := s.Stage.Evaluate(ctx, r)
		if err != nil {
			return p.failDecision(r, ReasonStageError), &StageError{Module: s.Module, Err: err}
		}
		if s.Module == ModuleBehavior || d.Score == 0 {
			d.Score = v.Score
		}
		switch s.Module {
		case ModuleBehavior:
			d.BehaviorScore = v.Score
		case ModulePayload:
			d.PayloadScore = v.Score
		}
		if !v.Deny || s.Mode == Shadow {
			// Moving on: a budget that runs out from here is the next
			// stage's (a denial keeps the stage current until it is
			// recorded below, so the budget never answers over it).
			if pr != nil {
				pr.at(p.Stages[i+1:], len(r.Body) > 0)
			}
		}
		if !v.Deny {
			allowHeaders = append(allowHeaders, v.Headers...)
			continue
		}
		if s.Mode == Shadow {
			// Dry run flips the verdict last: record, then carry on.
			if !d.Shadow {
				d.Shadow, d.ShadowModule, d.ShadowReason = true, s.Module, v.Reason
				d.Rule, d.Field, d.Excerpt = v.Rule, v.Field, v.Excerpt
			}
			continue
		}
		d.deny(s.Module, v)
		if pr != nil {
			dd := d
			pr.denied.Store(&dd)
		}
		if v.Charge {
			p.charge(ctx, r, p.Stages[i+1:], allowListed)
		}
		return d, nil
	}
	d.Headers = allowHeaders
	return d, nil
}

// at records that rest[0] is about to run: the stage whose OnBudget
// answers is rest[0] when it has one, else the next such stage when the
// request has a body.
func (pr *progress) at(rest []NamedStage, body bool) {
	for i := range rest {
		st := &rest[i]
		if st.OnBudget != nil && st.Mode == Enforce && (i == 0 || body) {
			pr.next.Store(st)
			return
		}
	}
	pr.next.Store(nil)
}

// charge runs the counting stages after a denial that still counts
// (Verdict.Charge). Their verdicts and errors change nothing: the request
// is denied already, and a store error must not turn that denial into the
// fail mode's answer.
//
// Why after the payload stage and not before it: the quota stage stays
// last, so a request payload denies for an attack it found is not charged
// to the plan (a false positive costs the customer nothing) and is never a
// store round trip; only payload.too_complex, which is about what the
// request costs and not what it is, counts — otherwise the cheap 403 it
// answers would let anyone probe for free, and the helpers of issue 17
// could send cost without spending quota.
func (p *Pipeline) charge(ctx context.Context, r *scoring.Request, rest []NamedStage, allowListed bool) {
	for _, s := range rest {
		if !s.Counts || s.Mode == Off || (allowListed && s.SkipAllowListed) {
			continue
		}
		_, _ = s.Stage.Evaluate(ctx, r)
	}
}

func (d *Decision) deny(module string, v Verdict) {
	d.Allow = false
	d.Module = module
	d.Reason = v.Reason
	d.Status = v.Status
	d.Rule, d.Field, d.Excerpt = v.Rule, v.Field, v.Excerpt
	if v.Score != 0 {
		d.Score = v.Score
	}
	d.Headers = v.Headers
}

// failDecision is the answer when the pipeline cannot decide.
func (p *Pipeline) failDecision(r *scoring.Request, reason string) Decision {
	d := Decision{Allow: p.FailOpen, Module: ModuleFailMode, Reason: reason, User: r.User, Plan: r.Plan, RequestID: r.ID}
	if !d.Allow {
		d.Status = 503
	}
	return d
}

func contains(list []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// errBudget marks a decision cut short by the decision budget.
var errBudget = errors.New("decision budget exceeded")
