package accesslog

import (
	"errors"
	"fmt"
	"strings"
	"testing"

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
	conn := openCH(t, testenv.ClickHouseAddr(t))
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
	conn := openCH(t, testenv.ClickHouseAddr(t))
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

func TestEnsureSchemaRejects(t *testing.T) {
	conn := openCH(t, testenv.ClickHouseAddr(t))
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
func TestDecisionMigration(t *testing.T) {
	conn := openCH(t, testenv.ClickHouseAddr(t))
	ctx := testCtx(t)
	db := freshDB(t, conn)
	// The released schema before the column (verification, which knows
	// the column, complains about exactly that).
	if err := ensureSchema(ctx, conn, db, migrations[:2]); err == nil || !strings.Contains(err.Error(), "missing column decision") {
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
	if err := EnsureSchema(ctx, conn, db); err != nil {
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
