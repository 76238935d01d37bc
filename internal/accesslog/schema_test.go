package accesslog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// liveColumns returns table's columns in position order with base types.
func liveColumns(t *testing.T, conn driver.Conn, db, table string) []column {
	t.Helper()
	rows, err := conn.Query(testCtx(t),
		"SELECT name, type FROM system.columns WHERE database = ? AND table = ?", db, table)
	if err != nil {
		t.Fatalf("columns: %v", err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			t.Fatal(err)
		}
		c.Type = baseType(c.Type) // LowCardinality on >= 20.1
		out = append(out, c)
	}
	return out
}

func versionRows(t *testing.T, conn driver.Conn, db string) (max uint32, n uint64) {
	t.Helper()
	if err := conn.QueryRow(testCtx(t), "SELECT max(version), count() FROM "+db+
		".schema_migrations WHERE component = 'accesslog'").Scan(&max, &n); err != nil {
		t.Fatalf("versions: %v", err)
	}
	return max, n
}

func equalColumns(a, b []column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEnsureSchemaCreatesContractTables(t *testing.T) {
	testenv.ForEachClickHouse(t, testEnsureSchemaCreatesContractTables)
}

func testEnsureSchemaCreatesContractTables(t *testing.T, conn driver.Conn) {
	db := freshDB(t, conn)
	ctx := testCtx(t)
	for i := range 2 { // the second run must be a no-op
		if err := EnsureSchema(ctx, conn, db); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if got := liveColumns(t, conn, db, "access_log"); !equalColumns(got, accessLogColumns) {
		t.Errorf("access_log columns\n got %v\nwant %v", got, accessLogColumns)
	}
	if got := liveColumns(t, conn, db, "daily_reports"); !equalColumns(got, dailyReportsColumns) {
		t.Errorf("daily_reports columns\n got %v\nwant %v", got, dailyReportsColumns)
	}
	max, n := versionRows(t, conn, db)
	if want := migrations[len(migrations)-1].version; max != want || n != uint64(len(migrations)) {
		t.Errorf("schema_migrations: max %d rows %d, want %d and %d", max, n, want, len(migrations))
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'access_log'", db).Scan(&engine); err != nil {
		t.Fatal(err)
	}
	if engine != "MergeTree" {
		t.Errorf("access_log engine %q", engine)
	}
	var rEngine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'daily_reports'", db).Scan(&rEngine); err != nil {
		t.Fatal(err)
	}
	if rEngine != "ReplacingMergeTree" {
		t.Errorf("daily_reports engine %q", rEngine)
	}
}

func TestEnsureSchemaAddColumnMigration(t *testing.T) {
	testenv.ForEachClickHouse(t, testEnsureSchemaAddColumnMigration)
}

func testEnsureSchemaAddColumnMigration(t *testing.T, conn driver.Conn) {
	ctx := testCtx(t)
	next := uint32(len(migrations) + 1)
	step := migration{version: next, addColumn: &addColumn{Table: "access_log", Name: "extra", Type: "String", Modern: "LowCardinality(String)"}}
	steps := append(append([]migration{}, migrations...), step)

	tests := map[string]struct {
		// before runs on the database after the released schema exists.
		before func(t *testing.T, db string)
	}{
		"fresh upgrade": {},
		"column already there (crash before the version row)": {before: func(t *testing.T, db string) {
			if err := conn.Exec(ctx, "ALTER TABLE "+db+".access_log ADD COLUMN extra String"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db := freshDB(t, conn)
			if err := EnsureSchema(ctx, conn, db); err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(t, db)
			}
			for i := range 2 {
				if err := ensureSchema(ctx, conn, db, steps); err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
			}
			cols := liveColumns(t, conn, db, "access_log")
			if last := cols[len(cols)-1]; last != (column{"extra", "String"}) {
				t.Errorf("last column %v", last)
			}
			if max, n := versionRows(t, conn, db); max != next || n != uint64(next) {
				t.Errorf("versions max %d rows %d, want %d and %d", max, n, next, next)
			}
		})
	}
}

func TestEnsureSchemaRejects(t *testing.T) { testenv.ForEachClickHouse(t, testEnsureSchemaRejects) }

func testEnsureSchemaRejects(t *testing.T, conn driver.Conn) {
	ctx := testCtx(t)

	t.Run("bad database name", func(t *testing.T) {
		for _, name := range []string{"", "a;DROP", "1abc", "a.b", "x`y"} {
			if err := EnsureSchema(ctx, conn, name); err == nil {
				t.Errorf("%q accepted", name)
			}
		}
	})
	t.Run("incompatible existing table", func(t *testing.T) {
		db := freshDB(t, conn)
		if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, "CREATE TABLE "+db+".access_log (date Date, status String) ENGINE = MergeTree PARTITION BY date ORDER BY date"); err != nil {
			t.Fatal(err)
		}
		err := EnsureSchema(ctx, conn, db)
		var se *SchemaError
		if !errors.As(err, &se) || se.Table != "access_log" {
			t.Fatalf("got %v, want a SchemaError on access_log", err)
		}
		if !strings.Contains(err.Error(), "column status has type String, want UInt16") ||
			!strings.Contains(err.Error(), "missing column path") {
			t.Errorf("error does not name the problems: %v", err)
		}
	})
}

func TestRenderDDLPerServerVersion(t *testing.T) {
	tests := map[string]struct {
		version  proto.Version
		ttl      int
		want     []string
		wantNone []string
	}{
		"18.16": {version: proto.Version{Major: 18, Minor: 16, Patch: 1}, ttl: 30,
			wantNone: []string{"LowCardinality", "CODEC", "TTL", "ttl_only_drop_parts", "--"},
			want:     []string{"node_id          String,", "ORDER BY (date, authority, path, timestamp)", "PARTITION BY date"}},
		"19.17": {version: proto.Version{Major: 19, Minor: 17}, ttl: 30,
			wantNone: []string{"LowCardinality", "CODEC", "TTL"}},
		"20.1": {version: proto.Version{Major: 20, Minor: 1}, ttl: 30,
			want: []string{"authority        LowCardinality(String)", "path             String CODEC(ZSTD(1))",
				"timestamp        DateTime CODEC(Delta, ZSTD(1))", "TTL date + INTERVAL 30 DAY", "SETTINGS ttl_only_drop_parts = 1"}},
		"24.8 without ttl": {version: proto.Version{Major: 24, Minor: 8}, ttl: 0,
			want: []string{"LowCardinality(String)"}, wantNone: []string{"TTL", "ttl_only_drop_parts"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := ddlData{DB: "`smartlayer`", Modern: modernServer(&driver.ServerVersion{Version: tc.version}), TTLDays: tc.ttl}
			q, err := renderDDL("0001_access_log.sql", d)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.want {
				if !strings.Contains(q, s) {
					t.Errorf("missing %q in\n%s", s, q)
				}
			}
			for _, s := range tc.wantNone {
				if strings.Contains(q, s) {
					t.Errorf("unexpected %q in\n%s", s, q)
				}
			}
			// Every contract column is declared, in order, whatever the version.
			// Columns added by later migrations are not in the CREATE.
			later := map[string]bool{}
			for _, m := range migrations {
				if m.addColumn != nil && m.addColumn.Table == "access_log" {
					later[m.addColumn.Name] = true
				}
			}
			pos := 0
			for _, c := range accessLogColumns {
				if later[c.Name] {
					continue
				}
				i := strings.Index(q[pos:], "\n    "+c.Name+" ")
				if i < 0 {
					t.Fatalf("column %s missing or out of order", c.Name)
				}
				pos += i + 1
			}
		})
	}
}

// TestDecisionMigration upgrades a table from before the decision column:
// rows already stored read the decision their other columns imply.
func TestDecisionMigration(t *testing.T) { testenv.ForEachClickHouse(t, testDecisionMigration) }

func testDecisionMigration(t *testing.T, conn driver.Conn) {
	ctx := testCtx(t)
	db := freshDB(t, conn)
	// The released schema before the column (verification, which knows
	// the column, complains about exactly that).
	// No TTL: the rows below have a fixed date, which a >= 20.1 server
	// would drop once it is past the retention.
	if err := ensureSchema(ctx, conn, db, migrations[:2], WithRetentionDays(0)); err == nil || !strings.Contains(err.Error(), "missing column decision") {
		t.Fatalf("old schema: %v", err)
	}
	// request_id, blocked, block_module, block_reason → decision.
	old := [][4]string{
		{"r-allow", "0", "", ""},
		{"r-deny", "1", "behavior", "behavior.request_burst"},
		{"r-shadow", "0", "payload", "payload.sqli"},
		{"r-open", "0", "failmode", "failmode.budget_exceeded"},
		{"r-closed", "1", "failmode", "failmode.stage_error"},
	}
	want := map[string]string{"r-allow": DecisionAllowed, "r-deny": DecisionDenied, "r-shadow": DecisionShadow,
		"r-open": DecisionFailedOpen, "r-closed": DecisionFailedClosed}
	for _, r := range old {
		q := fmt.Sprintf("INSERT INTO %s.access_log (timestamp, date, request_id, blocked, block_module, block_reason) "+
			"SELECT toDateTime(1795564798), toDate('2026-11-24'), '%s', %s, '%s', '%s'", db, r[0], r[1], r[2], r[3])
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureSchema(ctx, conn, db, WithRetentionDays(0)); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT request_id, decision FROM "+db+".access_log")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, d string
		if err := rows.Scan(&id, &d); err != nil {
			t.Fatal(err)
		}
		n++
		if d != want[id] {
			t.Errorf("%s: decision %q, want %q", id, d, want[id])
		}
	}
	if n != len(old) {
		t.Errorf("read %d rows, want %d", n, len(old))
	}
}

// TestSchemaModernExtras: on ClickHouse >= 20.1 (26.x: chDB) the schema
// carries what the 18.16 branch leaves out, as the server itself reports it:
// LowCardinality (also on columns added by migrations), ZSTD codecs and a
// TTL that drops whole parts.
func TestSchemaModernExtras(t *testing.T) {
	conn := testenv.OpenModernClickHouse(t)
	ctx := testCtx(t)
	db := freshDB(t, conn)
	if err := EnsureSchema(ctx, conn, db, WithRetentionDays(7)); err != nil {
		t.Fatal(err)
	}
	type col struct{ typ, codec, defaultKind string }
	rows, err := conn.Query(ctx, "SELECT table, name, type, compression_codec, default_kind FROM system.columns WHERE database = ?", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	live := map[string]col{}
	for rows.Next() {
		var table, name string
		var c col
		if err := rows.Scan(&table, &name, &c.typ, &c.codec, &c.defaultKind); err != nil {
			t.Fatal(err)
		}
		live[table+"."+name] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]col{
		"access_log.authority":      {typ: "LowCardinality(String)"},
		"access_log.block_reason":   {typ: "LowCardinality(String)"},
		"access_log.path":           {typ: "String", codec: "CODEC(ZSTD(1))"},
		"access_log.timestamp":      {typ: "DateTime", codec: "CODEC(Delta(4), ZSTD(1))"},
		"access_log.status":         {typ: "UInt16"},
		"access_log.decision":       {typ: "LowCardinality(String)", defaultKind: "DEFAULT"}, // migration 3
		"access_log.rule":           {typ: "LowCardinality(String)"},                         // migration 4
		"access_log.excerpt":        {typ: "String"},                                         // migration 6
		"daily_reports.health":      {typ: "LowCardinality(String)"},
		"daily_reports.html":        {typ: "String", codec: "CODEC(ZSTD(3))"},
		"schema_migrations.version": {typ: "UInt32"},
	}
	for name, w := range want {
		if got, ok := live[name]; !ok {
			t.Errorf("%s missing", name)
		} else if got != w {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = 'access_log'", db).Scan(&engine); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"TTL date + toIntervalDay(7)", "ttl_only_drop_parts = 1", "PARTITION BY date"} {
		if !strings.Contains(engine, w) {
			t.Errorf("access_log engine lacks %q: %s", w, engine)
		}
	}
	// The TTL drops the day past retention and keeps today's, once merges run.
	now := time.Now().Unix()
	if err := mustCHWriter(t, conn, db).insert(ctx, batchOf([]Row{
		{Unix: now, RequestID: "fresh"}, {Unix: now - 10*86400, RequestID: "expired"}})); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+".access_log FINAL"); err != nil {
		t.Fatal(err)
	}
	var kept string
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count(), any(request_id) FROM "+db+".access_log").Scan(&n, &kept); err != nil {
		t.Fatal(err)
	}
	if n != 1 || kept != "fresh" {
		t.Errorf("after TTL: %d rows (%q), want only the fresh one", n, kept)
	}
}

// olderServer is a connection that reports another server version, so the
// schema takes that version's branch on the server behind it.
type olderServer struct {
	driver.Conn
	v proto.Version
}

func (o olderServer) ServerVersion() (*driver.ServerVersion, error) {
	sv, err := o.Conn.ServerVersion()
	if err != nil {
		return nil, err
	}
	old := *sv
	old.Version = o.v
	return &old, nil
}

// TestSchemaAfterServerUpgrade: tables created by the 18.16 branch (no
// LowCardinality, codecs or TTL), then the server upgraded to 26.x: authz
// starting on it finds nothing to migrate, accepts the tables and writes to
// them, and a later migration takes the modern path on the legacy table.
func TestSchemaAfterServerUpgrade(t *testing.T) {
	conn := testenv.OpenModernClickHouse(t)
	ctx := testCtx(t)
	db := freshDB(t, conn)
	old := olderServer{Conn: conn, v: proto.Version{Major: 18, Minor: 16, Patch: 1}}
	if err := EnsureSchema(ctx, old, db); err != nil {
		t.Fatalf("18.16 branch on 26.x: %v", err)
	}
	var typ string
	if err := conn.QueryRow(ctx, "SELECT type FROM system.columns WHERE database = ? AND table = 'access_log' AND name = 'decision'", db).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "String" {
		t.Fatalf("decision created as %s by the 18.16 branch, want String", typ)
	}
	next := uint32(len(migrations) + 1)
	steps := append(append([]migration{}, migrations...),
		migration{version: next, addColumn: &addColumn{Table: "access_log", Name: "extra", Type: "String", Modern: "LowCardinality(String)"}})
	for i := range 2 {
		if err := ensureSchema(ctx, conn, db, steps); err != nil {
			t.Fatalf("upgraded run %d: %v", i, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT type FROM system.columns WHERE database = ? AND table = 'access_log' AND name = 'extra'", db).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "LowCardinality(String)" {
		t.Errorf("migration after the upgrade added %s, want LowCardinality(String)", typ)
	}
	if err := mustCHWriter(t, conn, db).insert(ctx, batchOf([]Row{{Unix: time.Now().Unix(), RequestID: "after-upgrade", Decision: DecisionDenied}})); err != nil {
		t.Fatal(err)
	}
	if total, _ := countRows(t, conn, db); total != 1 {
		t.Errorf("%d rows after the upgrade, want 1", total)
	}
}
