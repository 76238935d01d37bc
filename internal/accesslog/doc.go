// Package accesslog receives Envoy's access log stream (ALS v3), maps each
// HTTP entry to an access_log row and writes the rows to ClickHouse in
// batches, spooling to disk while ClickHouse is unavailable. It also owns the
// ClickHouse schema (EnsureSchema) for access_log and daily_reports.
//
// Wiring (cmd/authz):
//
//	conn, _ := clickhouse.Open(&clickhouse.Options{Addr: addrs, Auth: …}) // or nil: no ClickHouse
//	_ = accesslog.EnsureSchema(ctx, conn, cfg.Database)                    // when conn != nil
//	svc, _ := accesslog.New(cfg, conn, feedback, logger, reg)
//	alsGRPCServer := svc.NewServer(opts...) // its codec decodes entries straight into rows
//	go svc.Run(ctx)
//	… SIGTERM: alsGRPCServer.GracefulStop(); svc.Close(shutdownCtx); conn.Close()
//
// Decoding: the ALS server's codec reads each StreamAccessLogsMessage from
// the wire straight into rows (wire.go), skipping the fields a row does not
// use; proto.Unmarshal and the generated types are the reference it is
// tested and fuzzed against.
//
// Delivery: the stream handler maps entries and appends them, encoded in the
// spool's compact row form (~150 bytes a row instead of a 408-byte Row and
// its strings), to the current batch; a batch is sealed at Config.BatchRows
// or every FlushInterval and goes to a bounded in-memory queue. Inserts
// decode a batch straight into the driver's columns and send it as blocks
// of a few thousand rows, which the server squashes back into one part per
// day (min_insert_block_size_rows and _bytes on the INSERT). MaxInflight
// workers insert with
// retries (RetryAttempts, doubling backoff); a batch that still fails, or that
// finds the queue full, is written to the spool: one CRC-checked, fsync'd
// file per batch in SpoolDir, replayed oldest first and deleted only after
// ClickHouse acknowledged it. Rows are dropped only when the spool would
// exceed SpoolMaxBytes (0 disables spooling); drops are counted in
// smartlayer_accesslog_dropped_rows_total and logged at most every 10 s.
// A sound file of a newer format than this build reads (after a rollback)
// is not dropped but kept as NNN.newer for a build that reads it, which
// takes it back at open (spool.go).
//
// Exactly once: an insert that fails after its rows were sent may or may not
// have committed. Such a batch is flagged (also in its spool file) and,
// before the next attempt, a few request ids per day are looked up: days
// that landed are skipped. Every attempt at a batch runs under one query id,
// and the lookup waits until no attempt with it is running on the server: an
// insert we timed out on may still be receiving its rows and commit later. Servers ≥ 22.2 also get insert_deduplication_token
// per batch (effective on Replicated tables or with
// non_replicated_deduplication_window).
//
// Clusters (WithCluster, accesslog.clickhouse.cluster): EnsureSchema reads
// the nodes from system.clusters and, over a connection to each, creates
// access_log_local and daily_reports_local (Replicated when asked) and the
// Distributed access_log and daily_reports over them; the writer's INSERT is
// unchanged and goes through the Distributed table. On plain MergeTree
// shards the exactly-once probe can miss rows the entry node has not yet
// forwarded: a batch after an ambiguous failure is then at-least-once.
//
// ClickHouse versions: one column set everywhere; servers ≥ 20.1 get
// LowCardinality, ZSTD codecs and a TTL (ttl_only_drop_parts) at creation.
// Debian's 18.16 needs the explicit INSERT column list the writer always
// sends, and has no ADD COLUMN IF NOT EXISTS (migrations check
// system.columns there).
package accesslog
