package authz

import (
	"context"
	"net/http"
	"strings"
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
			ContentType: r.ContentType(), Client: r.ClientKey, PartialBody: r.BodyTruncated,
		})
		v := Verdict{Score: res.Score, Rule: res.Rule}
		if f, ok := strongest(res.Findings); ok {
			v.Field, v.Excerpt = f.Location, redactedExcerpt(f.Location, f.Excerpt)
		}
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

// strongest is the finding with the highest weight (the first of equals).
func strongest(fs []payload.Finding) (payload.Finding, bool) {
	if len(fs) == 0 {
		return payload.Finding{}, false
	}
	best := fs[0]
	for _, f := range fs[1:] {
		if f.Weight > best.Weight {
			best = f
		}
	}
	return best, true
}

// maxExcerpt bounds the excerpt kept in logs, metadata and the access log.
const maxExcerpt = 64

// redactedExcerpt keeps a short piece of the value that fired, except where
// values are credentials: the authorization and cookie headers and
// anything that looks like a password field only name the field.
func redactedExcerpt(field, excerpt string) string {
	lf := strings.ToLower(field)
	for _, secret := range []string{"authorization", "cookie", "password", "passwd", "secret", "token", "api_key", "apikey"} {
		if strings.Contains(lf, secret) {
			return "[redacted]"
		}
	}
	if len(excerpt) > maxExcerpt {
		excerpt = strings.ToValidUTF8(excerpt[:maxExcerpt], "")
	}
	return excerpt
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
