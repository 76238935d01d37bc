package payload

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	decisions *prometheus.CounterVec
	findings  *prometheus.CounterVec
	truncated prometheus.Counter
	skipped   *prometheus.CounterVec
	asks      *prometheus.CounterVec
	dropped   prometheus.Counter
	verdicts  *prometheus.CounterVec
	cacheHits *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "smartlayer", "payload"
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "inspections_total", Help: "Requests inspected, by outcome (allow, borderline, block)."}, []string{"outcome"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "findings_total", Help: "Detector hits, by detector."}, []string{"detector"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bodies_truncated_total", Help: "Bodies longer than max_body_bytes, inspected up to the cap."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bodies_skipped_total", Help: "Bodies not inspected, by reason (binary: a binary content type whose bytes are not text)."}, []string{"reason"}),
		asks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "llm_asks_total", Help: "Borderline payloads sent to the LLM, by mode (async, sync)."}, []string{"mode"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "llm_asks_dropped_total", Help: "Async asks dropped because the queue was full."}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "llm_verdicts_total", Help: "LLM answers, by verdict (malicious, benign, error)."}, []string{"verdict"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "llm_cache_hits_total", Help: "Requests decided from the verdict cache, by verdict."}, []string{"verdict"}),
	}
	// Pre-create the label values we know, so dashboards see zeros.
	for _, o := range []string{"allow", "borderline", "block"} {
		m.decisions.WithLabelValues(o)
	}
	for _, d := range detectorNames {
		m.findings.WithLabelValues(d)
	}
	for _, r := range []string{"binary"} {
		m.skipped.WithLabelValues(r)
	}
	for _, v := range []string{"malicious", "benign", "error"} {
		m.verdicts.WithLabelValues(v)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.findings, m.truncated, m.skipped, m.asks, m.dropped, m.verdicts, m.cacheHits} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register payload metrics: %w", err)
		}
	}
	return m, nil
}
