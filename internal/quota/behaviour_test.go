package quota

import (
	"context"
	"testing"
	"time"
)

type step struct {
	at      time.Duration // after base
	plan    string        // default "free"
	path    string        // default "/api/generate/"
	subject string        // default the test's subject
	want    Decision
	win     Window
	remain  int64
	retry   time.Duration // checked on Denied
	route   string        // checked when set
}

var behaviour = map[string]struct {
	plans plans
	steps []step
}{
	"per_minute slides": {
		plans: plans{"free": {"/api/generate/": {"per_minute": 2}}},
		steps: []step{
			{at: 10 * time.Second, want: Allowed, win: PerMinute, remain: 1},
			{at: 20 * time.Second, want: Allowed, win: PerMinute, remain: 0},
			// curr 2 = limit: wait for the next bucket, where the 2 weigh
			// 2·(60−e)/60 ≤ 1 from e = 30 s: 1 s + 30 s.
			{at: 59 * time.Second, want: Denied, win: PerMinute, retry: 31 * time.Second},
			{at: 89*time.Second + 999*time.Millisecond, want: Denied, win: PerMinute, retry: time.Millisecond},
			{at: 90 * time.Second, want: Allowed, win: PerMinute, remain: 0},
			{at: 150 * time.Second, want: Allowed, win: PerMinute, remain: 0},
			{at: 150 * time.Second, want: Denied, win: PerMinute, retry: 30 * time.Second},
		},
	},
	"per_hour": {
		plans: plans{"free": {"/api/generate/": {"per_hour": 3}}},
		steps: []step{
			{at: 0, want: Allowed, win: PerHour, remain: 2},
			{at: time.Minute, want: Allowed, win: PerHour, remain: 1},
			{at: 2 * time.Minute, want: Allowed, win: PerHour, remain: 0},
			// Next bucket, 3·(60−e)/60 ≤ 2 from e = 20 min: 50 + 20 min.
			{at: 10 * time.Minute, want: Denied, win: PerHour, retry: 70 * time.Minute},
			{at: 80*time.Minute - time.Millisecond, want: Denied, win: PerHour, retry: time.Millisecond},
			{at: 80 * time.Minute, want: Allowed, win: PerHour, remain: 0},
		},
	},
	"per_day": {
		plans: plans{"free": {"/api/generate/": {"per_day": 2}}},
		steps: []step{
			{at: 0, want: Allowed, win: PerDay, remain: 1},
			{at: time.Hour, want: Allowed, win: PerDay, remain: 0},
			{at: 2 * time.Hour, want: Denied, win: PerDay, retry: 34 * time.Hour},
			{at: 36*time.Hour - time.Millisecond, want: Denied, win: PerDay, retry: time.Millisecond},
			{at: 36 * time.Hour, want: Allowed, win: PerDay, remain: 0},
		},
	},
	"lifetime never resets": {
		plans: plans{"free": {"/api/generate/": {"lifetime": 2}}},
		steps: []step{
			{at: 0, want: Allowed, win: Lifetime, remain: 1},
			{at: time.Second, want: Allowed, win: Lifetime, remain: 0},
			{at: 2 * time.Second, want: Denied, win: Lifetime},
			{at: 400 * 24 * time.Hour, want: Denied, win: Lifetime},
		},
	},
	"plan forbidden and unrouted": {
		plans: plans{
			"free":    {"/api/generate/": {"per_minute": 5}},
			"premium": {"/api/generate/": {"per_minute": 5}, "/api/analytics/": {"per_minute": 5}},
		},
		steps: []step{
			{path: "/api/analytics/", want: Forbidden, route: "/api/analytics/"},
			{plan: "gold", want: Forbidden, route: "/api/generate/"},
			{path: "/api/other", want: NoRoute},
			{path: "/api/analytics", want: Forbidden, route: "/api/analytics/"}, // quota.trailing_slash: ignore
			{plan: "premium", path: "/api/analytics/", want: Allowed, win: PerMinute, remain: 4},
			{path: "/api/%67enerate/?x=1", want: Allowed, win: PerMinute, remain: 4, route: "/api/generate/"},
		},
	},
	"plans count independently": {
		plans: plans{
			"free":    {"/api/generate/": {"per_minute": 1}},
			"premium": {"/api/generate/": {"per_minute": 2}},
		},
		steps: []step{
			{want: Allowed, win: PerMinute, remain: 0},
			{want: Denied, win: PerMinute, retry: 2 * time.Minute},
			{plan: "premium", want: Allowed, win: PerMinute, remain: 1},
			{plan: "premium", want: Allowed, win: PerMinute, remain: 0},
			{want: Denied, win: PerMinute, retry: 2 * time.Minute},
			{subject: "bob", want: Allowed, win: PerMinute, remain: 0},
		},
	},
	"denied consumes no lifetime": {
		plans: plans{"free": {"/api/generate/": {"per_day": 1, "lifetime": 2}}},
		steps: []step{
			{at: 0, want: Allowed, win: PerDay, remain: 0},
			{at: time.Minute, want: Denied, win: PerDay, retry: 48*time.Hour - time.Minute},
			{at: 2 * time.Minute, want: Denied, win: PerDay, retry: 48*time.Hour - 2*time.Minute},
			// Had the denials counted, lifetime would be spent by now.
			{at: 48 * time.Hour, want: Allowed, win: Lifetime, remain: 0},
			{at: 96 * time.Hour, want: Denied, win: Lifetime},
		},
	},
	"tightest window reported": {
		plans: plans{"free": {"/api/generate/": {"per_minute": 10, "per_hour": 3, "lifetime": 100}}},
		steps: []step{
			{want: Allowed, win: PerHour, remain: 2},
			{want: Allowed, win: PerHour, remain: 1},
		},
	},
	"ties go to the longer window": {
		plans: plans{"free": {"/api/generate/": {"per_minute": 2, "per_day": 2}}},
		steps: []step{
			{want: Allowed, win: PerDay, remain: 1},
		},
	},
	"longest wait wins among denying windows": {
		plans: plans{"free": {"/api/generate/": {"per_minute": 1, "per_day": 1}}},
		steps: []step{
			{want: Allowed, win: PerDay, remain: 0},
			{at: 10 * time.Second, want: Denied, win: PerDay, retry: 48*time.Hour - 10*time.Second},
		},
	},
	"zero limit never admits": {
		plans: plans{"free": {"/api/generate/": {"per_minute": 0}}},
		steps: []step{
			{want: Denied, win: PerMinute},
			{at: time.Hour, want: Denied, win: PerMinute},
		},
	},
	"prefix and template routes count all their paths together": {
		plans: plans{"free": {"/api/export/*": {"per_minute": 1}, "/users/{id}/export": {"per_minute": 1}}},
		steps: []step{
			{path: "/api/export/a.csv", want: Allowed, win: PerMinute, route: "/api/export/*"},
			{path: "/api/export/b.csv", want: Denied, win: PerMinute, retry: 2 * time.Minute, route: "/api/export/*"},
			{path: "/users/1/export", want: Allowed, win: PerMinute, route: "/users/{id}/export"},
			{path: "/users/2/export", want: Denied, win: PerMinute, retry: 2 * time.Minute},
			{path: "/users/2/export/x", want: NoRoute},
		},
	},
}

func TestBehaviour(t *testing.T) {
	for bname, newLimiter := range backends() {
		t.Run(bname, func(t *testing.T) {
			for name, tc := range behaviour {
				t.Run(name, func(t *testing.T) {
					l := newLimiter(t, mustCompile(t, tc.plans))
					subject := uniq(t, "alice")
					for i, s := range tc.steps {
						k := Key{Subject: subject, Plan: "free", Path: "/api/generate/"}
						if s.plan != "" {
							k.Plan = s.plan
						}
						if s.path != "" {
							k.Path = s.path
						}
						if s.subject != "" {
							k.Subject = subject + "/" + s.subject
						}
						res, err := l.Take(context.Background(), k, base.Add(s.at))
						if err != nil {
							t.Fatalf("step %d: Take: %v", i, err)
						}
						checkStep(t, i, s, res)
					}
				})
			}
		})
	}
}

func checkStep(t *testing.T, i int, s step, res Result) {
	t.Helper()
	if res.Decision != s.want {
		t.Fatalf("step %d: decision %v, want %v (%+v)", i, res.Decision, s.want, res)
	}
	if s.route != "" && res.Route != s.route {
		t.Errorf("step %d: route %q, want %q", i, res.Route, s.route)
	}
	switch s.want {
	case Allowed:
		if res.Window != s.win || res.Remaining != s.remain {
			t.Errorf("step %d: window %v remaining %d, want %v %d (%+v)", i, res.Window, res.Remaining, s.win, s.remain, res)
		}
	case Denied:
		if res.Window != s.win || res.RetryAfter != s.retry || res.Remaining != 0 {
			t.Errorf("step %d: window %v retry %v remaining %d, want %v %v 0 (%+v)", i, res.Window, res.RetryAfter, res.Remaining, s.win, s.retry, res)
		}
		if want := windowReasons[s.win]; res.Reason() != want {
			t.Errorf("step %d: reason %q, want %q", i, res.Reason(), want)
		}
	case Forbidden:
		if res.Reason() != ReasonPlanForbidden {
			t.Errorf("step %d: reason %q", i, res.Reason())
		}
	}
}

// A request that passes per_minute but fails per_day must not spend
// per_minute: after raising per_day, the minute budget is whole.
func TestDeniedConsumesNothing(t *testing.T) {
	for bname, newLimiter := range backends() {
		t.Run(bname, func(t *testing.T) {
			l := newLimiter(t, mustCompile(t, plans{"free": {"/api/generate/": {"per_minute": 3, "per_day": 1}}}))
			k := Key{Subject: uniq(t, "carol"), Plan: "free", Path: "/api/generate/"}
			now := base.Add(5 * time.Second)
			want := []Decision{Allowed, Denied, Denied, Denied, Denied}
			for i, w := range want {
				res, err := l.Take(context.Background(), k, now)
				if err != nil || res.Decision != w {
					t.Fatalf("take %d: %v %v, want %v", i, res.Decision, err, w)
				}
				if w == Denied && res.Window != PerDay {
					t.Fatalf("take %d: denied by %v, want per_day", i, res.Window)
				}
			}
			l.SetTable(mustCompile(t, plans{"free": {"/api/generate/": {"per_minute": 3, "per_day": 100}}}))
			for i, remain := range []int64{1, 0} {
				res, err := l.Take(context.Background(), k, now)
				if err != nil || res.Decision != Allowed || res.Window != PerMinute || res.Remaining != remain {
					t.Fatalf("after reload take %d: %+v %v, want allowed per_minute remaining %d", i, res, err, remain)
				}
			}
			if res, _ := l.Take(context.Background(), k, now); res.Decision != Denied || res.Window != PerMinute {
				t.Fatalf("4th in the minute: %+v, want denied per_minute", res)
			}
		})
	}
}

// SetTable changes limits and keeps the counts.
func TestHotReloadKeepsCounters(t *testing.T) {
	for bname, newLimiter := range backends() {
		t.Run(bname, func(t *testing.T) {
			p := func(limit int64) plans {
				return plans{"free": {"/api/generate/": {"per_hour": limit, "lifetime": limit}}}
			}
			l := newLimiter(t, mustCompile(t, p(3)))
			k := Key{Subject: uniq(t, "dave"), Plan: "free", Path: "/api/generate/"}
			take := func() Result {
				t.Helper()
				res, err := l.Take(context.Background(), k, base)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			take()
			take()
			l.SetTable(mustCompile(t, p(5)))
			if res := take(); res.Decision != Allowed || res.Remaining != 2 || res.Limit != 5 {
				t.Fatalf("after raising to 5: %+v, want allowed, 2 of 5 remaining", res)
			}
			l.SetTable(mustCompile(t, p(2)))
			if res := take(); res.Decision != Denied || res.Limit != 2 {
				t.Fatalf("after lowering to 2: %+v, want denied", res)
			}
			// Lowered below the count: remaining clamps at 0.
			l.SetTable(mustCompile(t, p(4)))
			if res := take(); res.Decision != Allowed || res.Remaining != 0 {
				t.Fatalf("after raising to 4: %+v, want allowed, 0 remaining", res)
			}
		})
	}
}
