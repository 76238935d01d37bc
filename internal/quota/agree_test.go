package quota

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestBackendsAgree replays one random workload on memory and on Redis: the
// Lua script and the Go code must take the same decision and report the
// same numbers at every step.
func TestBackendsAgree(t *testing.T) {
	tab := mustCompile(t, plans{
		"free": {
			"/a":       {"per_minute": 3, "per_hour": 10, "lifetime": 12},
			"/b/*":     {"per_minute": 2, "per_day": 7},
			"/c/{id}":  {"per_hour": 4},
			"/premium": {"per_minute": 1},
		},
		"pro": {
			"/a":   {"per_minute": 5, "per_day": 30},
			"/b/*": {"per_minute": 0},
		},
	})
	mem := backends()["memory"](t, tab)
	red := backends()["redis"](t, tab)
	rng := rand.New(rand.NewPCG(7, 11))
	subjects := []string{uniq(t, "s1"), uniq(t, "s2")}
	paths := []string{"/a", "/b/x", "/b/y", "/c/1", "/c/2", "/premium", "/other"}
	planNames := []string{"free", "pro", "gold"}
	now := base.Add(17 * time.Second)
	seen := map[string]int{}
	for i := range 1500 {
		switch rng.IntN(20) {
		case 0:
			now = now.Add(time.Duration(rng.IntN(3)) * time.Hour)
		case 1, 2, 3:
			now = now.Add(time.Duration(rng.IntN(90_000)) * time.Millisecond)
		default:
			now = now.Add(time.Duration(rng.IntN(2_000)) * time.Millisecond)
		}
		k := Key{
			Subject: subjects[rng.IntN(len(subjects))],
			Plan:    planNames[rng.IntN(len(planNames))],
			Path:    paths[rng.IntN(len(paths))],
		}
		a, errA := mem.Take(context.Background(), k, now)
		b, errB := red.Take(context.Background(), k, now)
		if errA != nil || errB != nil {
			t.Fatalf("step %d: errors %v, %v", i, errA, errB)
		}
		if a != b {
			t.Fatalf("step %d %+v at %v:\nmemory %+v\nredis  %+v", i, k, now.Sub(base), a, b)
		}
		seen[a.Decision.String()+"/"+a.Reason()]++
	}
	// The workload must reach every outcome, or agreeing proves little.
	for _, want := range []string{"allowed/", "no_route/", "forbidden/quota.plan_forbidden",
		"denied/quota.per_minute", "denied/quota.per_hour", "denied/quota.per_day", "denied/quota.lifetime"} {
		if seen[want] == 0 {
			t.Errorf("workload never produced %s: %v", want, seen)
		}
	}
	t.Logf("outcomes: %v", seen)
}
