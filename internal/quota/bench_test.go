package quota

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
)

// benchPlans: the worst case, every window on the route (7 Redis keys).
var benchPlans = plans{
	"free": {
		"/api/generate/":     {"per_minute": maxWindowLimit, "per_hour": maxWindowLimit, "per_day": maxWindowLimit, "lifetime": maxLifetimeLimit},
		"/users/{id}/export": {"per_minute": maxWindowLimit},
		"/api/export/*":      {"per_minute": maxWindowLimit},
	},
	"premium": {"/api/analytics/": {"per_minute": 100}},
}

func BenchmarkTake(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		newLimiter := backends()[name]
		b.Run(name, func(b *testing.B) {
			l := newLimiter(b, mustCompile(b, benchPlans))
			k := Key{Subject: uniq(b, "bench"), Plan: "free", Path: "/api/generate/"}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				res, err := l.Take(ctx, k, base)
				if err != nil || res.Decision != Allowed {
					b.Fatalf("%+v %v", res, err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			l := newLimiter(b, mustCompile(b, benchPlans))
			prefix := uniq(b, "bench")
			var id atomic.Int64
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				k := Key{Subject: prefix + strconv.FormatInt(id.Add(1), 10), Plan: "free", Path: "/api/generate/"}
				for pb.Next() {
					if _, err := l.Take(ctx, k, base); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkTakeNoCounter is the part of Take before any backend: route
// matching and plan lookup.
func BenchmarkTakeNoCounter(b *testing.B) {
	l, err := NewMemory(mustCompile(b, benchPlans), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	cases := map[string]Key{
		"no_route":  {Subject: "s", Plan: "free", Path: "/static/app.js"},
		"forbidden": {Subject: "s", Plan: "free", Path: "/api/analytics/"},
	}
	for name, k := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = l.Take(context.Background(), k, base)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	tab := mustCompile(b, benchPlans)
	for name, path := range map[string]string{
		"exact":    "/api/generate/",
		"template": "/users/42/export",
		"prefix":   "/api/export/2030/report.csv",
		"none":     "/static/app.js",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tab.match(tab.normalize(path))
			}
		})
	}
}
