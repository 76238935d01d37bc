package accesslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// testCluster is the 2-shard cluster of scripts/testenv.sh: its name, one
// connection per node (shard 1 first) and a database name no other test
// uses, dropped from every node at the end.
type testCluster struct {
	name  string
	addrs []string
	nodes []driver.Conn
	db    string
}

func startTestCluster(t testing.TB) *testCluster {
	t.Helper()
	name, addrs := testenv.ClickHouseCluster(t)
	c := &testCluster{name: name, addrs: addrs}
	for _, a := range addrs {
		c.nodes = append(c.nodes, openCH(t, a))
	}
	c.db = freshDB(t, c.nodes[0])
	for _, n := range c.nodes[1:] {
		t.Cleanup(func() { _ = n.Exec(context.Background(), "DROP DATABASE IF EXISTS "+c.db) })
	}
	return c
}

// option is the WithCluster option for this cluster (not replicated).
func (c *testCluster) option(t testing.TB) SchemaOption {
	return WithCluster(Cluster{Name: c.name, Dial: func(_ context.Context, addr string) (driver.Conn, error) {
		return testenv.OpenClickHouse(t, addr), nil
	}})
}

func tableEngine(t testing.TB, conn driver.Conn, db, table string) string {
	t.Helper()
	var n uint64
	var engine string
	if err := conn.QueryRow(testCtx(t), "SELECT count(), any(engine) FROM system.tables WHERE database = ? AND name = ?",
		db, table).Scan(&n, &engine); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return ""
	}
	return engine
}

// TestEnsureSchemaOnCluster: every node gets local MergeTree tables and
// Distributed tables over them with the contract columns, whichever node
// EnsureSchema is given, and a second run changes nothing.
func TestEnsureSchemaOnCluster(t *testing.T) {
	c := startTestCluster(t)
	ctx := testCtx(t)
	for i := range 2 { // from shard 1's node, then from shard 2's: a no-op
		if err := EnsureSchema(ctx, c.nodes[i%len(c.nodes)], c.db, c.option(t)); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	want := map[string]struct {
		engine string
		cols   []column
	}{
		"access_log":          {"Distributed", accessLogColumns},
		"access_log_local":    {"MergeTree", accessLogColumns},
		"daily_reports":       {"Distributed", dailyReportsColumns},
		"daily_reports_local": {"ReplacingMergeTree", dailyReportsColumns},
	}
	for i, n := range c.nodes {
		for table, w := range want {
			if got := tableEngine(t, n, c.db, table); got != w.engine {
				t.Errorf("node %d: %s engine %q, want %q", i+1, table, got, w.engine)
			}
			if got := liveColumns(t, n, c.db, table); !equalColumns(got, w.cols) {
				t.Errorf("node %d: %s columns\n got %v\nwant %v", i+1, table, got, w.cols)
			}
		}
		if max, rows := versionRows(t, n, c.db); max != migrations[len(migrations)-1].version || rows != uint64(len(migrations)) {
			t.Errorf("node %d: schema_migrations max %d rows %d", i+1, max, rows)
		}
	}
}

// TestClusterMigration: a cluster created by an older release (before the
// decision column) is migrated on every node, local and Distributed tables
// alike, and a node whose tables are gone (a new node) is brought up to date.
func TestClusterMigration(t *testing.T) {
	c := startTestCluster(t)
	ctx := testCtx(t)
	// The old release's tables lack today's contract columns, which the
	// verification names.
	if err := ensureSchema(ctx, c.nodes[0], c.db, migrations[:2], c.option(t)); err == nil ||
		!strings.Contains(err.Error(), "missing column decision") {
		t.Fatalf("old release: got %v", err)
	}
	for i, n := range c.nodes {
		if cols := liveColumns(t, n, c.db, "access_log"); len(cols) != len(accessLogColumns)-6 {
			t.Fatalf("node %d: %d columns before the migration", i+1, len(cols))
		}
	}
	// Shard 2's node is replaced by an empty one.
	if err := c.nodes[1].Exec(ctx, "DROP DATABASE "+c.db); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSchema(ctx, c.nodes[0], c.db, c.option(t)); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		for _, table := range []string{"access_log", "access_log_local"} {
			if got := liveColumns(t, n, c.db, table); !equalColumns(got, accessLogColumns) {
				t.Errorf("node %d: %s columns\n got %v\nwant %v", i+1, table, got, accessLogColumns)
			}
		}
	}
}

// TestClusterRejectsSingleServerTable: a database made by a single server
// holds a plain access_log where the cluster needs the Distributed one; the
// error says how to keep its rows.
func TestClusterRejectsSingleServerTable(t *testing.T) {
	c := startTestCluster(t)
	ctx := testCtx(t)
	if err := EnsureSchema(ctx, c.nodes[0], c.db); err != nil {
		t.Fatal(err)
	}
	err := EnsureSchema(ctx, c.nodes[0], c.db, c.option(t))
	var se *SchemaError
	if !errors.As(err, &se) || se.Table != "access_log" || !strings.Contains(err.Error(), "RENAME TABLE") {
		t.Fatalf("got %v, want a SchemaError on access_log naming RENAME TABLE", err)
	}
	// Following the advice works: the rows stay and the cluster is set up.
	for _, table := range []string{"access_log", "daily_reports"} {
		if err := c.nodes[0].Exec(ctx, fmt.Sprintf("RENAME TABLE %[1]s.%[2]s TO %[1]s.%[2]s_local", c.db, table)); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureSchema(ctx, c.nodes[0], c.db, c.option(t)); err != nil {
		t.Fatal(err)
	}
	if got := tableEngine(t, c.nodes[1], c.db, "access_log"); got != "Distributed" {
		t.Errorf("shard 2 access_log engine %q", got)
	}
}

// TestClusterUnknownName: a cluster the server does not know fails with its
// name, before any DDL.
func TestClusterUnknownName(t *testing.T) {
	c := startTestCluster(t)
	err := EnsureSchema(testCtx(t), c.nodes[0], c.db, WithCluster(Cluster{Name: "no_such_cluster",
		Dial: func(context.Context, string) (driver.Conn, error) { return nil, errors.New("must not dial") }}))
	if err == nil || !strings.Contains(err.Error(), "no_such_cluster is not in this server's remote_servers") {
		t.Fatalf("got %v", err)
	}
	if got := tableEngine(t, c.nodes[0], c.db, "access_log"); got != "" {
		t.Errorf("access_log created (%s)", got)
	}
}

// TestRenderDDLLayouts: the local tables' names and engines per layout.
func TestRenderDDLLayouts(t *testing.T) {
	tests := map[string]struct {
		d                  ddlData
		wantLog, wantDaily []string
	}{
		"one server": {d: ddlData{DB: "`sl`", Name: "sl"},
			wantLog:   []string{"EXISTS `sl`.access_log\n", "ENGINE = MergeTree\n"},
			wantDaily: []string{"EXISTS `sl`.daily_reports\n", "ENGINE = ReplacingMergeTree(generated_at)\n"}},
		"shards": {d: ddlData{DB: "`sl`", Name: "sl", Cluster: "c"},
			wantLog:   []string{"EXISTS `sl`.access_log_local\n", "ENGINE = MergeTree\n"},
			wantDaily: []string{"EXISTS `sl`.daily_reports_local\n", "ENGINE = ReplacingMergeTree(generated_at)\n"}},
		"replicated": {d: ddlData{DB: "`sl`", Name: "sl", Cluster: "c", Replicated: true},
			wantLog: []string{"EXISTS `sl`.access_log_local\n",
				"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/sl/access_log_local', '{replica}')\n"},
			wantDaily: []string{"EXISTS `sl`.daily_reports_local\n",
				"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/sl/daily_reports_local', '{replica}', generated_at)"}},
	}
	for name, tc := range tests {
		for _, modern := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s modern=%v", name, modern), func(t *testing.T) {
				d := tc.d
				d.Modern = modern
				for file, want := range map[string][]string{"0001_access_log.sql": tc.wantLog, "0002_daily_reports.sql": tc.wantDaily} {
					q, err := renderDDL(file, d)
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range want {
						if !strings.Contains(q+"\n", s) {
							t.Errorf("%s: missing %q in\n%s", file, s, q)
						}
					}
				}
			})
		}
	}
	if modernServer(&driver.ServerVersion{Version: proto.Version{Major: 18, Minor: 16}}) {
		t.Fatal("18.16 is not modern")
	}
}

// BenchmarkClusterInsert compares the ways authz could write a batch to a
// 2-shard cluster (10k rows a batch, as a loaded receiver seals them):
// through the Distributed table, asynchronously (the default: the entry
// node stores the other shard's rows and forwards them in the background)
// or synchronously (insert_distributed_sync=1), and straight into one
// node's local table (the shard-local alternative: a client choosing the
// shard itself).
func BenchmarkClusterInsert(b *testing.B) {
	c := startTestCluster(b)
	ctx := context.Background()
	if err := EnsureSchema(ctx, c.nodes[0], c.db, c.option(b)); err != nil {
		b.Fatal(err)
	}
	now := time.Now().Unix()
	rows := make([]Row, 10000)
	for i := range rows {
		rows[i] = Row{Unix: now - int64(i%60), Millis: uint16(i % 1000), NodeID: "edge-1", Method: "GET",
			Scheme: "https", Authority: "shop.example", Path: fmt.Sprintf("/products/%d", i%500), RouteName: "app",
			Status: 200, DurationMs: uint32(i % 300), BytesOut: 5120, ClientIP: fmt.Sprintf("198.51.100.%d", i%200),
			UserAgent: "Mozilla/5.0", RequestID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i),
			UpstreamCluster: "app", UpstreamHost: "10.0.0.7:8080", Decision: DecisionAllowed}
	}
	for _, mode := range []struct {
		name, table string
		sync        bool
	}{
		{"distributed_async", "access_log", false},
		{"distributed_sync", "access_log", true},
		{"local_one_shard", "access_log_local", false},
	} {
		b.Run(mode.name, func(b *testing.B) {
			w, err := newCHWriter(c.nodes[0], c.db)
			if err != nil {
				b.Fatal(err)
			}
			w.insertSQL = strings.Replace(w.insertSQL, ".access_log (", "."+mode.table+" (", 1)
			ictx := ctx
			if mode.sync {
				ictx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
			}
			stored0, cpu0 := c.storedRows(b), c.queryCPU(b)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				bt := batchOf(rows)
				bt.id[0], bt.id[1] = byte(i), byte(i>>8)
				if err := w.insert(ictx, bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(rows))/time.Since(start).Seconds(), "rows/s")
			b.StopTimer()
			// The servers' CPU per row is the figure that survives a busy
			// machine; for the asynchronous mode it includes the other
			// shard's insert once the rows have arrived.
			want := stored0 + uint64(b.N*len(rows))
			for deadline := time.Now().Add(2 * time.Minute); c.storedRows(b) < want; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("%d rows stored, want %d", c.storedRows(b), want)
				}
			}
			b.ReportMetric(float64(c.queryCPU(b)-cpu0)/float64(b.N*len(rows))*1e3, "server-cpu-ns/row")
		})
	}
}

// storedRows counts access_log_local over every node.
func (c *testCluster) storedRows(t testing.TB) uint64 {
	var sum uint64
	for _, n := range c.nodes {
		var v uint64
		if err := n.QueryRow(context.Background(), "SELECT count() FROM "+c.db+".access_log_local").Scan(&v); err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// queryCPU sums the user and system CPU microseconds the nodes' query
// threads have used (system.events; merges and the Distributed sender's
// background thread are not in it).
func (c *testCluster) queryCPU(t testing.TB) uint64 {
	var sum uint64
	for _, n := range c.nodes {
		var v uint64
		if err := n.QueryRow(context.Background(), "SELECT toUInt64(sum(value)) FROM system.events "+
			"WHERE event IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds')").Scan(&v); err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}
