package authz

import (
	"context"
	"net/http"
	"time"

	"github.com/smartlayer/smartlayer/internal/quota"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// The adapters below turn each module's own result into a Verdict. The
// interfaces list only what Check calls, so tests can hand in fakes.

// BehaviorChecker is what the behaviour stage needs from internal/scoring.
type BehaviorChecker interface {
	Check(ctx context.Context, r *scoring.Request) (scoring.Outcome, error)
}

// BehaviorStage scores the client and enforces its bans. timeout bounds the
// store round trip (store.redis.timeout); zero means the Check's budget.
func BehaviorStage(b BehaviorChecker, timeout time.Duration) Stage {
	return StageFunc(func(ctx context.Context, r *scoring.Request) (Verdict, error) {
		ctx, cancel := withTimeout(ctx, timeout)
		defer cancel()
		out, err := b.Check(ctx, r)
		if err != nil {
			return Verdict{}, err
		}
		v := Verdict{Score: out.Score}
		if out.Deny {
			v.Deny, v.Status, v.Reason = true, http.StatusForbidden, out.Reason
		}
		return v, nil
	})
}

// PayloadInspector is what the payload stage needs from
// internal/scoring/payload.
type PayloadInspector interface {
	Inspect(ctx context.Context, in *payload.Input) payload.Result
}

// PayloadStage inspects path, query, headers and body. A payload the LLM
// already judged malicious is blocked; banning its sender is the payload
// validator's to report (payload.WithMaliciousHook), not this stage's.
// Inspection bounds itself (payload.limits, its max_time below
// server.decision_budget): what a body costs is answered
// payload.too_complex, never by the budget's fail mode.
func PayloadStage(p PayloadInspector) Stage {
	return StageFunc(func(ctx context.Context, r *scoring.Request) (Verdict, error) {
		res := p.Inspect(ctx, &payload.Input{
			Path: r.Path, RawQuery: r.RawQuery, Headers: r.Headers, Body: r.Body,
			ContentType: r.ContentType(), Client: r.ClientKey,
		})
		v := Verdict{Score: res.Score}
		if res.Action != payload.Block {
			return v, nil
		}
		v.Deny, v.Status, v.Reason = true, http.StatusForbidden, res.Reason
		// Too costly to inspect is no verdict on the content: the request
		// still counts against the quota (Pipeline.charge).
		v.Charge = res.Reason == payload.ReasonTooComplex
		return v, nil
	})
}

// PayloadOnBudget is the payload stage's answer when the decision budget
// runs out while it inspects (NamedStage.OnBudget): the request's cost,
// decided as payload.too_complex says (borderline and allow let it
// through).
func PayloadOnBudget(a payload.TooComplexAction) *Verdict {
	if a != payload.TooComplexDeny {
		return &Verdict{}
	}
	return &Verdict{Deny: true, Status: http.StatusForbidden, Reason: payload.ReasonTooComplex}
}

// QuotaTaker is what the quota stage needs from internal/quota.
type QuotaTaker interface {
	Take(ctx context.Context, k quota.Key, now time.Time) (quota.Result, error)
}

// QuotaStage checks and counts the caller's plan quota. timeout bounds the
// store round trip (store.redis.timeout); zero means the Check's budget.
//
// Anonymous callers are counted by client address, IPv6 grouped by its
// ipv6Prefix network (behavior.ipv6_prefix), as behaviour groups them.
func QuotaStage(q QuotaTaker, timeout time.Duration, ipv6Prefix int) Stage {
	return StageFunc(func(ctx context.Context, r *scoring.Request) (Verdict, error) {
		ctx, cancel := withTimeout(ctx, timeout)
		defer cancel()
		res, err := q.Take(ctx, quota.Key{Subject: r.QuotaKey(ipv6Prefix), Plan: r.Plan, Path: r.Path}, r.Time)
		if err != nil {
			return Verdict{}, err
		}
		v := Verdict{Headers: quotaHeaders(res)}
		switch res.Decision {
		case quota.Forbidden:
			v.Deny, v.Status, v.Reason = true, http.StatusForbidden, res.Reason()
		case quota.Denied:
			v.Deny, v.Status, v.Reason = true, http.StatusTooManyRequests, res.Reason()
		}
		return v, nil
	})
}

func quotaHeaders(res quota.Result) []Header {
	hs := res.Headers()
	if len(hs) == 0 {
		return nil
	}
	out := make([]Header, len(hs))
	for i, h := range hs {
		out[i] = Header{Key: h.Name, Value: h.Value}
	}
	return out
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
