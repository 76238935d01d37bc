package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/smartlayer/smartlayer/internal/accesslog"
)

// Partition is an access_log partition (one day).
type Partition struct {
	Date Date
	ID   string
}

// Retention drops access_log partitions older than RetentionDays before
// today (in the report's timezone). Modern servers also have a TTL; on 18.16
// this is the only retention. With dryRun it only lists what it would drop.
// It returns the partitions dropped (or to drop). On a cluster it drops them
// from access_log_local on every node, each over its own connection (no ON
// CLUSTER: that needs ZooKeeper, see accesslog.WithCluster); a partition
// dropped on several nodes is listed once.
func (r *Reporter) Retention(ctx context.Context, today Date, dryRun bool) ([]Partition, error) {
	if r.cfg.RetentionDays == 0 {
		return nil, nil
	}
	cutoff := today.AddDays(-r.cfg.RetentionDays)
	if r.cfg.Cluster == "" {
		return r.retainOn(ctx, r.conn, "", "access_log", cutoff, dryRun)
	}
	nodes, err := accesslog.ClusterNodes(ctx, r.conn, r.cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	var all []Partition
	seen := map[string]bool{}
	add := func(ps []Partition) {
		for _, p := range ps {
			if !seen[p.ID] {
				seen[p.ID] = true
				all = append(all, p)
			}
		}
	}
	// Every node, even when one fails: the others' old partitions still go.
	var errs []error
	for _, n := range nodes {
		ps, err := r.retainOnNode(ctx, n.Addr, cutoff, dryRun)
		add(ps)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Addr, err))
		}
	}
	slices.SortFunc(all, func(a, b Partition) int { return strings.Compare(a.ID, b.ID) })
	return all, errors.Join(errs...)
}

func (r *Reporter) retainOnNode(ctx context.Context, addr string, cutoff Date, dryRun bool) ([]Partition, error) {
	conn, err := r.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	defer conn.Close()
	return r.retainOn(ctx, conn, addr, "access_log"+accesslog.LocalSuffix, cutoff, dryRun)
}

// retainOn drops table's partitions older than cutoff on the server behind
// conn (node names it in logs; empty for the only server).
func (r *Reporter) retainOn(ctx context.Context, conn Conn, node, table string, cutoff Date, dryRun bool) ([]Partition, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT partition, partition_id FROM system.parts
	WHERE database = @db AND table = @table AND active ORDER BY partition_id`,
		clickhouse.Named("db", r.cfg.Database), clickhouse.Named("table", table))
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
		if err := conn.Exec(ctx, "ALTER TABLE "+r.table(table)+" DROP PARTITION ID '"+p.ID+"'"); err != nil {
			return old[:i], fmt.Errorf("retention: drop partition %s: %w", p.Date, err)
		}
		r.metrics.dropped.Inc()
		r.log.Info("retention: dropped access_log partition", "date", p.Date.String(), "node", node)
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
