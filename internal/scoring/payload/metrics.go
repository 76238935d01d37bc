package payload

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
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
	// hdrCache: header cache lookups by result; hdrHits and hdrMisses
	// are its two children, resolved once.
	hdrCache           *prometheus.CounterVec
	hdrHits, hdrMisses prometheus.Counter
}

// metricPrefix starts every payload metric name.
const metricPrefix = "smartlayer_payload_"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prom.CounterVec(metricPrefix+"inspections_total", "Requests inspected, by outcome (allow, borderline, block).", "outcome"),
		findings:  prom.CounterVec(metricPrefix+"findings_total", "Detector hits, by detector.", "detector"),
		truncated: prom.Counter(metricPrefix+"bodies_truncated_total", "Bodies longer than max_body_bytes, inspected up to the cap."),
		skipped: prom.CounterVec(metricPrefix+"bodies_skipped_total",
			"Bodies not inspected, by reason (binary: a binary content type whose bytes are not text).", "reason"),
		asks:      prom.CounterVec(metricPrefix+"llm_asks_total", "Borderline payloads sent to the LLM, by mode (async, sync).", "mode"),
		dropped:   prom.Counter(metricPrefix+"llm_asks_dropped_total", "Async asks dropped because the queue was full."),
		verdicts:  prom.CounterVec(metricPrefix+"llm_verdicts_total", "LLM answers, by verdict (malicious, benign, error).", "verdict"),
		cacheHits: prom.CounterVec(metricPrefix+"llm_cache_hits_total", "Requests decided from the verdict cache, by verdict.", "verdict"),
		hdrCache: prom.CounterVec(metricPrefix+"header_cache_lookups_total",
			"Request headers looked up in the cache of clean header values, by result (hit: not inspected again, miss).", "result"),
	}
	m.hdrHits, m.hdrMisses = m.hdrCache.WithLabelValues("hit"), m.hdrCache.WithLabelValues("miss")
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
	if err := prom.Register(reg, m.decisions, m.findings, m.truncated, m.skipped, m.asks, m.dropped, m.verdicts, m.cacheHits, m.hdrCache); err != nil {
		return nil, fmt.Errorf("register payload metrics: %w", err)
	}
	return m, nil
}
