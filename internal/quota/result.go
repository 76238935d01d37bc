package quota

import (
	"strconv"
	"time"
)

// Decision is the outcome of one Take.
type Decision uint8

const (
	// Unknown is the zero Decision, returned only with an error.
	Unknown Decision = iota
	// NoRoute: no configured route matches the path; the request is not limited.
	NoRoute
	// Allowed: every window of the caller's plan admitted the request, and it
	// was counted.
	Allowed
	// Denied: a window is exhausted (429); nothing was counted.
	Denied
	// Forbidden: the route is configured, but not for the caller's plan (403).
	Forbidden
)

var decisionNames = [...]string{"unknown", "no_route", "allowed", "denied", "forbidden"}

// String returns the metric label for d.
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "unknown"
}

// The closed set of reasons a quota denial carries (module "quota").
const (
	ReasonPlanForbidden = "quota.plan_forbidden"
	ReasonPerMinute     = "quota.per_minute"
	ReasonPerHour       = "quota.per_hour"
	ReasonPerDay        = "quota.per_day"
	ReasonLifetime      = "quota.lifetime"
)

var windowReasons = [numWindows]string{ReasonPerMinute, ReasonPerHour, ReasonPerDay, ReasonLifetime}

// Result describes one quota decision and the window the client should pace
// itself by.
type Result struct {
	Decision Decision
	// Route is the matched route key ("" for NoRoute).
	Route string
	// Window is the denying window (Denied) or the tightest one (Allowed):
	// the fewest requests remaining, ties going to the longer window. When
	// several windows deny, it is the one with the longest RetryAfter (lifetime
	// first, as it never comes back). Meaningless for NoRoute and Forbidden.
	Window Window
	// Limit is Window's configured limit.
	Limit int64
	// Remaining is how many more requests Window admits now (after counting
	// this one when Allowed).
	Remaining int64
	// Reset is the time until Window has forgotten every counted request and
	// Remaining is back to Limit; with the sliding-window counter a request
	// weighs in for up to two window lengths. 0 for Lifetime, which never resets.
	Reset time.Duration
	// RetryAfter (Denied only) is the time until a request would be admitted
	// if nothing else is counted meanwhile. 0 on a denial means retrying will
	// not help: the lifetime limit is spent, or the limit is 0.
	RetryAfter time.Duration
}

// Reason returns the closed-set reason for a denial ("" when allowed):
// quota.plan_forbidden, quota.per_minute, quota.per_hour, quota.per_day or
// quota.lifetime.
func (r Result) Reason() string {
	switch r.Decision {
	case Forbidden:
		return ReasonPlanForbidden
	case Denied:
		if r.Window < numWindows {
			return windowReasons[r.Window]
		}
	}
	return ""
}

// Header is one response header. Names are lowercase, as Envoy sends them.
type Header struct{ Name, Value string }

// AppendHeaders appends the rate-limit headers for r to dst: RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset (IETF draft, delta seconds) and the
// same values as X-RateLimit-*, plus Retry-After when Denied and retrying can
// help. Reset headers are left out when the window never resets (lifetime).
// NoRoute and Forbidden results have no headers. Seconds are rounded up, so
// a client never comes back too early.
func (r Result) AppendHeaders(dst []Header) []Header {
	if r.Decision != Allowed && r.Decision != Denied {
		return dst
	}
	if r.Decision == Denied && r.RetryAfter > 0 {
		dst = append(dst, Header{"retry-after", strconv.FormatInt(ceilSeconds(r.RetryAfter), 10)})
	}
	limit := strconv.FormatInt(r.Limit, 10)
	remaining := strconv.FormatInt(r.Remaining, 10)
	dst = append(dst,
		Header{"ratelimit-limit", limit},
		Header{"ratelimit-remaining", remaining},
	)
	var reset string
	if r.Window != Lifetime {
		reset = strconv.FormatInt(ceilSeconds(r.Reset), 10)
		dst = append(dst, Header{"ratelimit-reset", reset})
	}
	dst = append(dst,
		Header{"x-ratelimit-limit", limit},
		Header{"x-ratelimit-remaining", remaining},
	)
	if r.Window != Lifetime {
		dst = append(dst, Header{"x-ratelimit-reset", reset})
	}
	return dst
}

// Headers returns AppendHeaders(nil).
func (r Result) Headers() []Header { return r.AppendHeaders(nil) }

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// counts is what a backend saw for one plan route, before this request: one
// slide per configured timed window (in planRoute.timed order) and the
// lifetime count.
type counts struct {
	slides [numTimed]slide
	life   int64
}

// admitted is the decision both backends make; the Lua script mirrors it.
func admitted(pr *planRoute, c *counts) bool {
	for i, tl := range pr.timed {
		if !c.slides[i].admits(tl.limit) {
			return false
		}
	}
	return pr.life < 0 || c.life+1 <= pr.life
}

// decide turns the counts a backend saw, and whether it counted the request,
// into a Result.
func decide(pr *planRoute, c *counts, allowed bool) Result {
	res := Result{Route: pr.route}
	if allowed {
		res.Decision = Allowed
		first := true
		pick := func(w Window, limit, remaining int64, reset time.Duration) {
			// <=: ties go to the later, longer window.
			if first || remaining <= res.Remaining {
				res.Window, res.Limit, res.Remaining, res.Reset = w, limit, remaining, reset
				first = false
			}
		}
		for i, tl := range pr.timed {
			s := c.slides[i]
			s.curr++
			pick(tl.win, tl.limit, s.remaining(tl.limit), time.Duration(s.reset())*time.Millisecond)
		}
		if pr.life >= 0 {
			pick(Lifetime, pr.life, max(pr.life-c.life-1, 0), 0)
		}
		return res
	}

	res.Decision = Denied
	found, never := false, false
	var retry int64
	pick := func(w Window, limit, remaining, resetMs, retryMs int64, ok bool) {
		// A window that never admits beats any retry time; otherwise the
		// longest wait wins; ties go to the later, longer window.
		better := !found || !ok || (!never && retryMs >= retry)
		if better {
			res.Window, res.Limit, res.Remaining = w, limit, remaining
			res.Reset = time.Duration(resetMs) * time.Millisecond
			retry, never, found = retryMs, !ok, true
		}
	}
	for i, tl := range pr.timed {
		s := c.slides[i]
		if s.admits(tl.limit) {
			continue
		}
		ms, ok := s.retryAfter(tl.limit)
		pick(tl.win, tl.limit, s.remaining(tl.limit), s.reset(), ms, ok)
	}
	if pr.life >= 0 && c.life+1 > pr.life {
		pick(Lifetime, pr.life, max(pr.life-c.life, 0), 0, 0, false)
	}
	if !found {
		// The backend denied although these counts admit: it saw newer
		// counts than it reported, which the Lua script never does. Report the
		// first window without promising a retry time.
		res.Window = Lifetime
		if len(pr.timed) > 0 {
			res.Window, res.Limit = pr.timed[0].win, pr.timed[0].limit
		} else {
			res.Limit = pr.life
		}
		return res
	}
	if !never {
		res.RetryAfter = time.Duration(retry) * time.Millisecond
	}
	return res
}
