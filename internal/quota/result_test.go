package quota

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	cases := map[string]struct {
		res  Result
		want []Header
	}{
		"allowed": {
			res: Result{Decision: Allowed, Window: PerMinute, Limit: 2, Remaining: 1, Reset: 110*time.Second + time.Millisecond},
			want: []Header{
				{"ratelimit-limit", "2"}, {"ratelimit-remaining", "1"}, {"ratelimit-reset", "111"},
				{"x-ratelimit-limit", "2"}, {"x-ratelimit-remaining", "1"}, {"x-ratelimit-reset", "111"},
			},
		},
		"denied rounds retry up": {
			res: Result{Decision: Denied, Window: PerDay, Limit: 100, Reset: 2 * time.Hour, RetryAfter: 1500 * time.Millisecond},
			want: []Header{
				{"retry-after", "2"},
				{"ratelimit-limit", "100"}, {"ratelimit-remaining", "0"}, {"ratelimit-reset", "7200"},
				{"x-ratelimit-limit", "100"}, {"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "7200"},
			},
		},
		"lifetime spent: no retry, no reset": {
			res: Result{Decision: Denied, Window: Lifetime, Limit: 1000},
			want: []Header{
				{"ratelimit-limit", "1000"}, {"ratelimit-remaining", "0"},
				{"x-ratelimit-limit", "1000"}, {"x-ratelimit-remaining", "0"},
			},
		},
		"forbidden":  {res: Result{Decision: Forbidden, Route: "/a"}},
		"no route":   {res: Result{Decision: NoRoute}},
		"error zero": {res: Result{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.res.Headers(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Headers() =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

// The headers a real Take produces, end to end, on both backends.
func TestTakeHeaders(t *testing.T) {
	for bname, newLimiter := range backends() {
		t.Run(bname, func(t *testing.T) {
			l := newLimiter(t, mustCompile(t, plans{"free": {"/api/generate/": {"per_minute": 2, "per_day": 100}}}))
			k := Key{Subject: uniq(t, "erin"), Plan: "free", Path: "/api/generate/"}
			now := base.Add(10 * time.Second)
			res, _ := l.Take(context.Background(), k, now)
			want := []Header{
				{"ratelimit-limit", "2"}, {"ratelimit-remaining", "1"}, {"ratelimit-reset", "110"},
				{"x-ratelimit-limit", "2"}, {"x-ratelimit-remaining", "1"}, {"x-ratelimit-reset", "110"},
			}
			if got := res.Headers(); !reflect.DeepEqual(got, want) {
				t.Errorf("allowed headers =\n%v\nwant\n%v", got, want)
			}
			_, _ = l.Take(context.Background(), k, now)
			res, _ = l.Take(context.Background(), k, now.Add(20*time.Second))
			// curr 2 at e = 30 s: next bucket from e'' = 30 s → 30 s + 30 s.
			want = []Header{
				{"retry-after", "60"},
				{"ratelimit-limit", "2"}, {"ratelimit-remaining", "0"}, {"ratelimit-reset", "90"},
				{"x-ratelimit-limit", "2"}, {"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "90"},
			}
			if got := res.Headers(); !reflect.DeepEqual(got, want) {
				t.Errorf("denied headers =\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// simulate replays a window from the slide's instant, one millisecond at a
// time, without adding requests, and returns when the first request would be
// admitted and when the window is empty: the reference for retryAfter and
// reset.
func simulate(s slide, limit int64) (admitAt, emptyAt int64) {
	admitAt, emptyAt = -1, -1
	prev, curr, e := s.prev, s.curr, s.e
	for t := int64(0); t <= 3*s.w; t++ {
		cur := slide{w: s.w, e: e, prev: prev, curr: curr}
		if admitAt < 0 && cur.admits(limit) {
			admitAt = t
		}
		if emptyAt < 0 && cur.weighted() == 0 {
			emptyAt = t
		}
		if e++; e == s.w {
			e, prev, curr = 0, curr, 0
		}
	}
	return admitAt, emptyAt
}

func TestSlideAgainstSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		w := int64(1 + rng.IntN(200))
		limit := int64(rng.IntN(8))
		s := slide{w: w, e: rng.Int64N(w), prev: int64(rng.IntN(10)), curr: int64(rng.IntN(10))}
		admitAt, emptyAt := simulate(s, limit)
		ms, ok := s.retryAfter(limit)
		if !ok {
			if limit != 0 || admitAt >= 0 {
				t.Fatalf("case %d %+v limit %d: retryAfter says never, simulation admits at %d", i, s, limit, admitAt)
			}
		} else if ms != admitAt {
			t.Fatalf("case %d %+v limit %d: retryAfter %d, simulation %d", i, s, limit, ms, admitAt)
		}
		if got := s.reset(); got != emptyAt {
			t.Fatalf("case %d %+v: reset %d, simulation %d", i, s, got, emptyAt)
		}
		if got, want := s.remaining(limit) > 0, s.admits(limit); got != want {
			t.Fatalf("case %d %+v limit %d: remaining %d but admits %v", i, s, limit, s.remaining(limit), want)
		}
	}
}

func TestBucketOf(t *testing.T) {
	cases := map[string]struct{ now, w, bucket, elapsed int64 }{
		"zero":          {0, 60, 0, 0},
		"inside":        {125, 60, 2, 5},
		"edge":          {120, 60, 2, 0},
		"before epoch":  {-1, 60, -1, 59},
		"before epoch2": {-60, 60, -1, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, e := bucketOf(tc.now, tc.w)
			if b != tc.bucket || e != tc.elapsed {
				t.Errorf("bucketOf(%d, %d) = %d, %d; want %d, %d", tc.now, tc.w, b, e, tc.bucket, tc.elapsed)
			}
		})
	}
}
