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
