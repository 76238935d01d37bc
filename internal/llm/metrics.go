package llm

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls    *prometheus.CounterVec   // kind, outcome
	latency  *prometheus.HistogramVec // kind
	failures *prometheus.CounterVec   // kind, reason (per failed attempt)
	retries  *prometheus.CounterVec   // kind
	circuit  prometheus.Gauge
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "smartlayer", Subsystem: "llm", Name: "calls_total",
			Help: "LLM calls by kind (client_verdict, payload_verdict, narrative) and outcome (ok, disabled, circuit_open, timeout, rate_limited, server_error, unavailable, rejected, bad_response, invalid_answer, canceled).",
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "smartlayer", Subsystem: "llm", Name: "call_duration_seconds",
			Help:    "Duration of LLM calls that reached the provider, retries included.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60},
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "smartlayer", Subsystem: "llm", Name: "attempt_failures_total",
			Help: "Failed HTTP attempts to the provider by kind and reason (retried or not).",
		}, []string{"kind", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "smartlayer", Subsystem: "llm", Name: "retries_total",
			Help: "Retries made within a call's deadline.",
		}, []string{"kind"}),
		circuit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "smartlayer", Subsystem: "llm", Name: "circuit_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "smartlayer", Subsystem: "llm", Name: "in_flight",
			Help: "Calls in progress.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.latency, m.failures, m.retries, m.circuit, m.inFlight} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register llm metrics: %w", err)
			}
		}
	}
	return m, nil
}
