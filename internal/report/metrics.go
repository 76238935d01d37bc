package report

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
)

type metrics struct {
	runs       *prometheus.CounterVec // result: ok | error
	narratives *prometheus.CounterVec // source: llm | deterministic; reason: used | not_configured | disabled | error | invalid
	stage      *prometheus.GaugeVec   // stage: aggregate | narrative | store | deliver | retention
	deliveries *prometheus.CounterVec // channel: webhook | smtp; result: ok | error
	dropped    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prom.CounterVec("smartlayer_report_runs_total", "Report runs by result.", "result"),
		narratives: prom.CounterVec("smartlayer_report_narratives_total",
			"Report narratives by source and why that source was used.", "source", "reason"),
		stage: prom.GaugeVec("smartlayer_report_stage_seconds",
			"Duration of each stage of the last report run.", "stage"),
		deliveries: prom.CounterVec("smartlayer_report_deliveries_total",
			"Report deliveries by channel and result.", "channel", "result"),
		dropped: prom.Counter("smartlayer_report_partitions_dropped_total", "access_log partitions dropped by retention."),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.narratives, m.stage, m.deliveries, m.dropped)
	}
	return m
}
