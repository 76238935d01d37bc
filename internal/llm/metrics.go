package llm

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
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
	const p = "smartlayer_llm_"
	m := &metrics{
		calls: prom.CounterVec(p+"calls_total",
			"LLM calls by kind (client_verdict, payload_verdict, narrative) and outcome (ok, disabled, circuit_open, timeout, rate_limited, server_error, unavailable, rejected, bad_response, invalid_answer, canceled).",
			"kind", "outcome"),
		latency: prom.HistogramVec(p+"call_duration_seconds",
			"Duration of LLM calls that reached the provider, retries included.",
			[]float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60}, "kind"),
		failures: prom.CounterVec(p+"attempt_failures_total",
			"Failed HTTP attempts to the provider by kind and reason (retried or not).", "kind", "reason"),
		retries:  prom.CounterVec(p+"retries_total", "Retries made within a call's deadline.", "kind"),
		circuit:  prom.Gauge(p+"circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open."),
		inFlight: prom.Gauge(p+"in_flight", "Calls in progress."),
	}
	if err := prom.Register(reg, m.calls, m.latency, m.failures, m.retries, m.circuit, m.inFlight); err != nil {
		return nil, fmt.Errorf("register llm metrics: %w", err)
	}
	return m, nil
}
