// Package accesslog receives Envoy's access log stream (ALS v3), maps each
// HTTP entry to an access_log row and writes the rows to ClickHouse in
// batches, spooling to disk while ClickHouse is unavailable. It also owns the
// ClickHouse schema (EnsureSchema) for access_log and daily_reports.
package accesslog
