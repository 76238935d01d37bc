package report

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

func partitions(t testing.TB, conn driver.Conn, db string) []string {
	return tablePartitions(t, conn, db, "access_log")
}

func tablePartitions(t testing.TB, conn driver.Conn, db, table string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT DISTINCT partition_id FROM system.parts WHERE database = ? AND table = ? AND active ORDER BY partition_id", db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// TestRetention keeps exactly retention_days days before today and drops the
// rest, in dry-run only listing them.
func TestRetention(t *testing.T) { testenv.ForEachClickHouse(t, testRetention) }

func testRetention(t *testing.T, conn driver.Conn) {
	db := freshDB(t, conn)
	today := Date{2026, time.November, 21}
	for _, off := range []int{-45, -31, -30, -29, -1, 0} {
		insertTraffic(t, conn, db, traffic{today.AddDays(off), 10, map[string]string{"path": "'/x'"}})
	}
	clock := &fixedClock{today.Start(time.UTC).Add(3 * time.Hour)}
	r, err := New(conn, scenarioConfig(db), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	before := partitions(t, conn, db)
	if len(before) != 6 {
		t.Fatalf("partitions before = %v", before)
	}
	// today-30 is the oldest day kept: 30 full days before today.
	wantDropped := []Date{today.AddDays(-45), today.AddDays(-31)}
	tests := []struct {
		name    string
		dryRun  bool
		remain  []string
		dropped []Date
	}{
		{"dry run lists", true, before, wantDropped},
		{"drops old only", false, []string{"20261022", "20261023", "20261120", "20261121"}, wantDropped},
		{"second run has nothing to drop", false, []string{"20261022", "20261023", "20261120", "20261121"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Retention(testCtx(t), r.Today(), tc.dryRun)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.dropped) {
				t.Fatalf("dropped %+v, want %v", got, tc.dropped)
			}
			for i := range got {
				if got[i].Date != tc.dropped[i] {
					t.Errorf("dropped[%d] = %s, want %s", i, got[i].Date, tc.dropped[i])
				}
			}
			if remain := partitions(t, conn, db); len(remain) != len(tc.remain) || remain[0] != tc.remain[0] || remain[len(remain)-1] != tc.remain[len(tc.remain)-1] {
				t.Errorf("partitions left %v, want %v", remain, tc.remain)
			}
		})
	}
}

// TestRetentionOnCluster: on a cluster, retention drops the expired days
// from every shard's access_log_local, lists each day once, and dry-run
// drops nothing.
func TestRetentionOnCluster(t *testing.T) {
	cluster, addrs := testenv.ClickHouseCluster(t)
	// Synchronous Distributed inserts: the rows are on their shards when
	// the INSERT returns (a setting 18.16 knows).
	entry, err := clickhouse.Open(&clickhouse.Options{Addr: addrs[:1], ReadTimeout: time.Minute,
		Settings: clickhouse.Settings{"insert_distributed_sync": 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = entry.Close() })
	var nodes []driver.Conn
	for _, a := range addrs {
		nodes = append(nodes, testenv.OpenClickHouse(t, a))
	}
	db := testenv.FreshDatabase(t, nodes[0], "sl_report_cluster_")
	t.Cleanup(func() { _ = nodes[1].Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	dial := func(_ context.Context, addr string) (driver.Conn, error) { return testenv.OpenClickHouse(t, addr), nil }
	if err := accesslog.EnsureSchema(testCtx(t), entry, db, accesslog.WithRetentionDays(0),
		accesslog.WithCluster(accesslog.Cluster{Name: cluster, Dial: dial})); err != nil {
		t.Fatal(err)
	}
	today := Date{2026, time.November, 21}
	for _, off := range []int{-45, -31, -1, 0} {
		insertTraffic(t, entry, db, traffic{today.AddDays(off), 50, map[string]string{"request_id": "toString(number)"}})
	}
	all := []string{"20261007", "20261021", "20261120", "20261121"}
	for i, n := range nodes {
		if got := tablePartitions(t, n, db, "access_log_local"); strings.Join(got, ",") != strings.Join(all, ",") {
			t.Fatalf("shard %d partitions %v, want %v: every day on both shards", i+1, got, all)
		}
	}
	cfg := scenarioConfig(db)
	cfg.Cluster = cluster
	if _, err := New(entry, cfg); err == nil {
		t.Fatal("a cluster without a node dialer accepted")
	}
	clock := &fixedClock{today.Start(time.UTC).Add(3 * time.Hour)}
	r, err := New(entry, cfg, WithClock(clock.now), WithNodeDialer(func(ctx context.Context, addr string) (NodeConn, error) {
		return dial(ctx, addr)
	}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dryRun  bool
		dropped []string
		remain  []string
	}{
		{"dry run lists each day once", true, []string{"20261007", "20261021"}, all},
		{"drops on every shard", false, []string{"20261007", "20261021"}, all[2:]},
		{"second run has nothing to drop", false, nil, all[2:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Retention(testCtx(t), r.Today(), tc.dryRun)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range got {
				ids = append(ids, p.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.dropped, ",") {
				t.Errorf("dropped %v, want %v", ids, tc.dropped)
			}
			for i, n := range nodes {
				if got := tablePartitions(t, n, db, "access_log_local"); strings.Join(got, ",") != strings.Join(tc.remain, ",") {
					t.Errorf("shard %d partitions %v, want %v", i+1, got, tc.remain)
				}
			}
		})
	}
	var left uint64
	if err := entry.QueryRow(testCtx(t), "SELECT count() FROM "+db+".access_log").Scan(&left); err != nil || left != 100 {
		t.Errorf("access_log keeps %d rows (%v), want the last two days' 100", left, err)
	}
}

func TestPartitionDate(t *testing.T) {
	tests := map[string]struct {
		part, id string
		want     Date
		ok       bool
	}{
		"18.16":          {"2026-11-20", "20261120", Date{2026, 11, 20}, true},
		"quoted":         {"'2026-11-20'", "20261120", Date{2026, 11, 20}, true},
		"mismatch":       {"2026-11-21", "20261120", Date{}, false},
		"not a date id":  {"tuple()", "all", Date{}, false},
		"injection":      {"x", "2026112' OR 1", Date{}, false},
		"invalid day":    {"2026-02-30", "20260230", Date{}, false},
		"other key type": {"(20261120,'a')", "20261120-abc", Date{}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := partitionDate(tc.part, tc.id)
			if ok != tc.ok || got != tc.want {
				t.Errorf("partitionDate(%q, %q) = %v, %v; want %v, %v", tc.part, tc.id, got, ok, tc.want, tc.ok)
			}
		})
	}
}
