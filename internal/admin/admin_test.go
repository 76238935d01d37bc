package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "smartlayer_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Inc()
	s := New(reg, nil, slog.New(slog.DiscardHandler))
	var redisErr error
	s.SetProbes([]Probe{
		{Name: "redis", Check: func(context.Context) error { return redisErr }},
		{Name: "clickhouse", Optional: true, Check: func(context.Context) error { return errors.New("clickhouse down") }},
	})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	tests := []struct {
		name     string
		setup    func()
		path     string
		code     int
		contains string
	}{
		{"healthz", nil, "/healthz", 200, "ok"},
		{"metrics", nil, "/metrics", 200, "smartlayer_test_total 1"},
		{"ready with an optional backend down", nil, "/readyz", 200, `"name":"clickhouse","ok":false,"optional":true,"error":"clickhouse down"`},
		{"backend down", func() { redisErr = errors.New("connection refused") }, "/readyz", 503, "connection refused"},
		{"draining", func() { redisErr = nil; s.Drain() }, "/readyz", 503, `"draining":true`},
		{"no bans handler", nil, "/v1/bans", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			code, body := get(tc.path)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.contains)
			}
		})
	}
}

// The profiler answers only the admin token, and is off without one.
func TestProfilingNeedsToken(t *testing.T) {
	tests := map[string]struct {
		configured, sent string
		want             int
	}{
		"no token configured": {"", "", http.StatusForbidden},
		"no token sent":       {"s3cret", "", http.StatusUnauthorized},
		"wrong token":         {"s3cret", "guess", http.StatusUnauthorized},
		"token":               {"s3cret", "s3cret", http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := New(prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
			s.EnableProfiling(tc.configured)
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				if tc.sent != "" {
					req.Header.Set("Authorization", "Bearer "+tc.sent)
				}
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != tc.want {
					t.Fatalf("%s: status %d, want %d", path, rec.Code, tc.want)
				}
			}
		})
	}
	// Not enabled: not there.
	s := New(prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("profiling off: status %d, want 404", rec.Code)
	}
}
