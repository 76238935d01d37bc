// Package admin serves the operator's HTTP endpoints: liveness, readiness
// of the configured backends, Prometheus metrics and ban administration.
package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Probe reports whether one backend answers; a nil error means ready.
type Probe struct {
	Name  string
	Check func(ctx context.Context) error
	// Optional probes are reported but do not fail readiness: backends off
	// the request path (ClickHouse) must not take authz out of service.
	Optional bool
}

// Server is the admin HTTP handler.
type Server struct {
	mux      *http.ServeMux
	probes   atomic.Pointer[[]Probe]
	draining atomic.Bool
	timeout  time.Duration
}

// New returns the admin handler. gatherer serves /metrics; bans, when not
// nil, serves /v1/bans and below.
func New(gatherer prometheus.Gatherer, bans http.Handler, logger *slog.Logger) *Server {
	s := &Server{mux: http.NewServeMux(), timeout: 2 * time.Second}
	empty := []Probe{}
	s.probes.Store(&empty)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}))
	if bans != nil {
		s.mux.Handle("/v1/bans", bans)
		s.mux.Handle("/v1/bans/", bans)
	}
	return s
}

// EnableProfiling serves Go's profiler under /debug/pprof/ to callers
// with the admin bearer token (server.pprof). A profile shows the
// process's work, and a long CPU profile costs CPU: never without the
// token.
func (s *Server) EnableProfiling(token string) {
	h := requireToken(token, "profiling", http.HandlerFunc(pprof.Index))
	s.mux.Handle("GET /debug/pprof/", h)
	for name, f := range map[string]http.HandlerFunc{"cmdline": pprof.Cmdline, "profile": pprof.Profile,
		"symbol": pprof.Symbol, "trace": pprof.Trace} {
		s.mux.Handle("GET /debug/pprof/"+name, requireToken(token, "profiling", f))
	}
}

// SetProbes replaces the readiness probes (on config reload).
func (s *Server) SetProbes(p []Probe) { s.probes.Store(&p) }

// Drain makes /readyz fail so load balancers stop sending work before the
// process stops.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type probeResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Optional bool   `json:"optional,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	probes := *s.probes.Load()
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	results := make([]probeResult, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probeResult{Name: p.Name, OK: true, Optional: p.Optional}
			if err := p.Check(ctx); err != nil {
				results[i] = probeResult{Name: p.Name, Optional: p.Optional, Error: err.Error()}
			}
		}()
	}
	wg.Wait()
	ready := !s.draining.Load()
	for _, res := range results {
		ready = ready && (res.OK || res.Optional)
	}
	w.Header().Set("content-type", "application/json")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(struct {
		Ready    bool          `json:"ready"`
		Draining bool          `json:"draining,omitempty"`
		Checks   []probeResult `json:"checks"`
	}{ready, s.draining.Load(), results})
}
