package report

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Partition is an access_log partition (one day).
type Partition struct {
	Date Date
	ID   string
}

// Retention drops access_log partitions older than RetentionDays before
// today (in the report's timezone). Modern servers also have a TTL; on 18.16
// this is the only retention. With dryRun it only lists what it would drop.
// It returns the partitions dropped (or to drop).
func (r *Reporter) Retention(ctx context.Context, today Date, dryRun bool) ([]Partition, error) {
	if r.cfg.RetentionDays == 0 {
		return nil, nil
	}
	cutoff := today.AddDays(-r.cfg.RetentionDays)
	rows, err := r.conn.Query(ctx, `SELECT DISTINCT partition, partition_id FROM system.parts
	WHERE database = @db AND table = 'access_log' AND active ORDER BY partition_id`, clickhouse.Named("db", r.cfg.Database))
	if err != nil {
		return nil, fmt.Errorf("retention: list partitions: %w", err)
	}
	var old []Partition
	for rows.Next() {
		var part, id string
		if err := rows.Scan(&part, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("retention: list partitions: %w", err)
		}
		d, ok := partitionDate(part, id)
		if !ok {
			r.log.Warn("retention: skipping a partition that is not a date", "partition", part, "partition_id", id)
			continue
		}
		if d.Before(cutoff) {
			old = append(old, Partition{Date: d, ID: id})
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("retention: list partitions: %w", err)
	}
	if dryRun {
		return old, nil
	}
	for i, p := range old {
		// DROP PARTITION ID takes the id as a literal; partitionDate only
		// accepts ids of 8 digits, so nothing else reaches the statement.
		if err := r.conn.Exec(ctx, "ALTER TABLE "+r.table("access_log")+" DROP PARTITION ID '"+p.ID+"'"); err != nil {
			return old[:i], fmt.Errorf("retention: drop partition %s: %w", p.Date, err)
		}
		r.metrics.dropped.Inc()
		r.log.Info("retention: dropped access_log partition", "date", p.Date.String())
	}
	return old, nil
}

// partitionDate reads a PARTITION BY date partition: system.parts shows
// partition as 2026-11-20 (quoted on some versions) and partition_id as
// 20261120. Both must agree.
func partitionDate(partition, id string) (Date, bool) {
	if len(id) != 8 || strings.Trim(id, "0123456789") != "" {
		return Date{}, false
	}
	t, err := time.Parse("20060102", id)
	if err != nil {
		return Date{}, false
	}
	d := DateOf(t)
	if p := strings.Trim(partition, "'"); p != d.String() {
		return Date{}, false
	}
	return d, true
}
