package report

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	runs       *prometheus.CounterVec // result: ok | error
	narratives *prometheus.CounterVec // source: llm | deterministic; reason: used | not_configured | disabled | error | invalid
	stage      *prometheus.GaugeVec   // stage: aggregate | narrative | store | deliver | retention
	deliveries *prometheus.CounterVec // channel: webhook | smtp; result: ok | error
	dropped    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_report_runs_total", Help: "Report runs by result.",
		}, []string{"result"}),
		narratives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_report_narratives_total", Help: "Report narratives by source and why that source was used.",
		}, []string{"source", "reason"}),
		stage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smartlayer_report_stage_seconds", Help: "Duration of each stage of the last report run.",
		}, []string{"stage"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartlayer_report_deliveries_total", Help: "Report deliveries by channel and result.",
		}, []string{"channel", "result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartlayer_report_partitions_dropped_total", Help: "access_log partitions dropped by retention.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.narratives, m.stage, m.deliveries, m.dropped)
	}
	return m
}
