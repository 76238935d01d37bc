package accesslog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
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
	spoolNewer      prometheus.Gauge
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
	const p = "smartlayer_accesslog_"
	m := &metrics{
		entries: prom.CounterVec(p+"entries_received_total",
			"ALS entries received, by kind (http, tcp, invalid, intermediate).", "kind"),
		rowsWritten: prom.Counter(p+"rows_written_total", "Rows ClickHouse acknowledged."),
		batches:     prom.CounterVec(p+"insert_batches_total", "Insert attempts, by result (ok, error).", "result"),
		insertSeconds: prom.Histogram(p+"insert_duration_seconds", "Duration of one batch insert attempt.",
			prometheus.ExponentialBuckets(0.005, 2, 12)),
		retries: prom.Counter(p+"insert_retries_total", "Insert attempts after a failed one (spool replays included)."),
		spoolBytes: prom.Gauge(p+"spool_bytes",
			"Bytes of batches in the disk spool, those set aside for a newer smartlayer included."),
		spoolFiles: prom.Gauge(p+"spool_files", "Batches waiting in the disk spool."),
		spoolNewer: prom.Gauge(p+"spool_newer_files",
			"Spool files written by a newer smartlayer (after a rollback), kept as *.newer for it, not replayed."),
		spooledBatches:  prom.Counter(p+"spooled_batches_total", "Batches written to the disk spool."),
		replayedBatches: prom.Counter(p+"replayed_batches_total", "Spooled batches inserted and removed from the spool."),
		dropped: prom.CounterVec(p+"dropped_rows_total",
			"Rows lost, by reason (disabled, spool_full, spool_error, corrupt, closed).", "reason"),
		activeStreams: prom.Gauge(p+"active_streams", "Open ALS streams."),
		queuedBatches: prom.Gauge(p+"queued_batches", "Sealed batches waiting in memory for an insert slot."),
		malformed:     prom.Counter(p+"malformed_messages_total", "ALS messages that did not decode; each ended its stream."),
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
	err := prom.Register(reg, m.entries, m.rowsWritten, m.batches, m.insertSeconds, m.retries,
		m.spoolBytes, m.spoolFiles, m.spoolNewer, m.spooledBatches, m.replayedBatches, m.dropped, m.activeStreams, m.queuedBatches,
		m.malformed)
	if err != nil {
		return fmt.Errorf("accesslog: register metrics: %w", err)
	}
	return nil
}
