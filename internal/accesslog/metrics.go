package accesslog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons: the closed set used as the "reason" label.
const (
	dropDisabled   = "disabled"    // no ClickHouse configured
	dropSpoolFull  = "spool_full"  // spool_max_bytes reached
	dropSpoolError = "spool_error" // the spool could not write (disk error)
	dropCorrupt    = "corrupt"     // a spool file failed its CRC or decode
	dropClosed     = "closed"      // entries after Close
)

type metrics struct {
	entries         *prometheus.CounterVec // kind: http | tcp | invalid
	rowsWritten     prometheus.Counter
	batches         *prometheus.CounterVec // result: ok | error
	insertSeconds   prometheus.Histogram
	retries         prometheus.Counter
	spoolBytes      prometheus.Gauge
	spoolFiles      prometheus.Gauge
	spooledBatches  prometheus.Counter
	replayedBatches prometheus.Counter
	dropped         *prometheus.CounterVec // reason: see drop*
	activeStreams   prometheus.Gauge
	queuedBatches   prometheus.Gauge
	malformed       prometheus.Counter
}

// newMetrics creates the collectors; register adds them to a registry once
// construction can no longer fail (a failed New must not leave them behind).
func newMetrics() *metrics {
	const ns, sub = "smartlayer", "accesslog"
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "entries_received_total", Help: "ALS entries received, by kind (http, tcp, invalid, intermediate)."}, []string{"kind"}),
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rows_written_total", Help: "Rows ClickHouse acknowledged."}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_batches_total", Help: "Insert attempts, by result (ok, error)."}, []string{"result"}),
		insertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_duration_seconds", Help: "Duration of one batch insert attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_retries_total", Help: "Insert attempts after a failed one (spool replays included)."}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "spool_bytes", Help: "Bytes of batches waiting in the disk spool."}),
		spoolFiles: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "spool_files", Help: "Batches waiting in the disk spool."}),
		spooledBatches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "spooled_batches_total", Help: "Batches written to the disk spool."}),
		replayedBatches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "replayed_batches_total", Help: "Spooled batches inserted and removed from the spool."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dropped_rows_total", Help: "Rows lost, by reason (disabled, spool_full, spool_error, corrupt, closed)."}, []string{"reason"}),
		activeStreams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "active_streams", Help: "Open ALS streams."}),
		queuedBatches: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "queued_batches", Help: "Sealed batches waiting in memory for an insert slot."}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "malformed_messages_total", Help: "ALS messages that did not decode; each ended its stream."}),
	}
	for _, k := range []string{"http", "tcp", "invalid", "intermediate"} {
		m.entries.WithLabelValues(k)
	}
	for _, r := range []string{"ok", "error"} {
		m.batches.WithLabelValues(r)
	}
	for _, r := range []string{dropDisabled, dropSpoolFull, dropSpoolError, dropCorrupt, dropClosed} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.entries, m.rowsWritten, m.batches, m.insertSeconds, m.retries,
		m.spoolBytes, m.spoolFiles, m.spooledBatches, m.replayedBatches, m.dropped, m.activeStreams, m.queuedBatches,
		m.malformed} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("accesslog: register metrics: %w", err)
		}
	}
	return nil
}
