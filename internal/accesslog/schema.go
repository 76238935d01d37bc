package accesslog

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The DDL lives in sql/*.sql as text/template files so that reviewers read
// SQL, not Go string concatenation. Each file holds exactly one statement:
// the native protocol runs one statement per query.
//
//go:embed sql/*.sql
var sqlFS embed.FS

var sqlTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	// lc and codec are replaced per server version in render; these
	// placeholders only let the templates parse.
	"lc":    func(t string) string { return t },
	"codec": func(string) string { return "" },
}).ParseFS(sqlFS, "sql/*.sql"))

// schemaComponent names this package's rows in schema_migrations; other
// packages may keep their own versions in the same table.
const schemaComponent = "accesslog"

// DefaultRetentionDays is the access_log TTL on servers that support TTL. It
// matches report.retention_days, the retention the reporter applies with DROP
// PARTITION on servers that do not.
const DefaultRetentionDays = 30

// A column of a table this package owns, with its base type: the type on
// every server version, before LowCardinality or a codec is added.
type column struct {
	Name, Type string
}

// accessLogColumns is the contract column set of access_log in insert order
// (CONTRACTS.md). The writer's INSERT column list is built from it, and
// EnsureSchema verifies the live table against it.
var accessLogColumns = []column{
	{"timestamp", "DateTime"}, {"timestamp_ms", "UInt16"}, {"date", "Date"},
	{"node_id", "String"}, {"method", "String"}, {"scheme", "String"},
	{"authority", "String"}, {"path", "String"}, {"query", "String"},
	{"route_name", "String"}, {"status", "UInt16"}, {"duration_ms", "UInt32"},
	{"bytes_in", "UInt64"}, {"bytes_out", "UInt64"}, {"client_ip", "String"},
	{"user_id", "String"}, {"plan", "String"}, {"user_agent", "String"},
	{"referer", "String"}, {"request_id", "String"}, {"upstream_cluster", "String"},
	{"upstream_host", "String"}, {"response_flags", "String"}, {"blocked", "UInt8"},
	{"block_module", "String"}, {"block_reason", "String"}, {"score", "UInt16"},
	{"decision", "String"},
	{"rule", "String"}, {"field", "String"}, {"excerpt", "String"},
	{"behavior_score", "UInt16"}, {"payload_score", "UInt16"},
}

// dailyReportsColumns is the contract column set of daily_reports.
var dailyReportsColumns = []column{
	{"date", "Date"}, {"generated_at", "DateTime"}, {"health", "String"},
	{"total", "UInt64"}, {"error_rate", "Float64"}, {"summary", "String"},
	{"markdown", "String"}, {"html", "String"}, {"aggregates", "String"},
	{"narrative_source", "String"},
}

// migration is one schema step. Steps are applied in version order, each at
// most once per database (recorded in schema_migrations), and each is
// idempotent on its own, so a crash between the DDL and its record only
// repeats a harmless step.
type migration struct {
	version uint32
	// file is a template in sql/; or
	file string
	// addColumn adds one column to an existing table: the path for every
	// later column addition (ADD COLUMN IF NOT EXISTS on servers that have
	// it, a system.columns check first on 18.16, which does not).
	addColumn *addColumn
}

type addColumn struct {
	Table, Name, Type string
	// Modern is the type on servers >= 20.1 (e.g. with LowCardinality);
	// empty means Type.
	Modern string
}

// migrations is the ordered history of the schema. Append only: never edit
// or reorder a released step. A new column goes in as
//
//	{version: 3, addColumn: &addColumn{Table: "access_log", Name: "x", Type: "String"}}
//
// plus its entry in accessLogColumns.
var migrations = []migration{
	{version: 1, file: "0001_access_log.sql"},
	{version: 2, file: "0002_daily_reports.sql"},
	// decision: allowed / denied / shadow / failed_open / failed_closed /
	// unchecked (row.go). Rows written before it get the value the older
	// columns imply (legacyDecision's rule) through the DEFAULT, computed
	// on read for parts that lack the column.
	{version: 3, addColumn: &addColumn{Table: "access_log", Name: "decision",
		Type: "String DEFAULT " + decisionDefault, Modern: "LowCardinality(String) DEFAULT " + decisionDefault}},
	// Why a request was denied: rule, field, excerpt, each module's score.
	{version: 4, addColumn: &addColumn{Table: "access_log", Name: "rule", Type: "String", Modern: "LowCardinality(String)"}},
	{version: 5, addColumn: &addColumn{Table: "access_log", Name: "field", Type: "String"}},
	{version: 6, addColumn: &addColumn{Table: "access_log", Name: "excerpt", Type: "String"}},
	{version: 7, addColumn: &addColumn{Table: "access_log", Name: "behavior_score", Type: "UInt16"}},
	{version: 8, addColumn: &addColumn{Table: "access_log", Name: "payload_score", Type: "UInt16"}},
}

// decisionDefault derives the decision of a row stored before the column
// existed (legacyDecision in SQL). Such rows never say "unchecked": without
// the column, a row without authz metadata cannot be told from an allowed one.
const decisionDefault = `multiIf(blocked = 1 AND block_module = 'failmode', 'failed_closed', blocked = 1, 'denied', ` +
	`block_module = 'failmode', 'failed_open', block_reason != '', 'shadow', 'allowed')`

// SchemaOption changes what EnsureSchema creates.
type SchemaOption func(*schemaOptions)

type schemaOptions struct {
	retentionDays int
}

// WithRetentionDays sets the access_log TTL in days on servers >= 20.1
// (0 = no TTL). It only applies when the table is created; it never alters
// an existing table's TTL, because MODIFY TTL rewrites every part.
func WithRetentionDays(days int) SchemaOption {
	return func(o *schemaOptions) { o.retentionDays = days }
}

// identRE is what we accept as a database name: it is spliced into DDL, where
// ClickHouse takes no bind parameters.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// SchemaError reports a live table whose columns do not match the contract.
type SchemaError struct {
	Table   string
	Problem string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("accesslog schema: table %s: %s", e.Table, e.Problem)
}

// EnsureSchema creates database, access_log and daily_reports if missing and
// applies pending migrations, then verifies both tables carry the contract
// columns. It is idempotent and safe to run from several replicas at once.
//
// The DDL depends on conn.ServerVersion(): servers >= 20.1 get LowCardinality,
// ZSTD codecs and a TTL with ttl_only_drop_parts; older servers (Debian's
// 18.16) get the same column names and base types without the extras.
func EnsureSchema(ctx context.Context, conn driver.Conn, database string, opts ...SchemaOption) error {
	return ensureSchema(ctx, conn, database, migrations, opts...)
}

func ensureSchema(ctx context.Context, conn driver.Conn, database string, steps []migration, opts ...SchemaOption) error {
	if conn == nil {
		return errors.New("accesslog schema: nil ClickHouse connection")
	}
	if !identRE.MatchString(database) {
		return fmt.Errorf("accesslog schema: invalid database name %q", database)
	}
	o := schemaOptions{retentionDays: DefaultRetentionDays}
	for _, opt := range opts {
		opt(&o)
	}
	if o.retentionDays < 0 {
		return fmt.Errorf("accesslog schema: negative retention days %d", o.retentionDays)
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		return fmt.Errorf("accesslog schema: server version: %w", err)
	}
	d := ddlData{DB: quoteIdent(database), Modern: modernServer(sv), TTLDays: o.retentionDays}

	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+d.DB); err != nil {
		return fmt.Errorf("accesslog schema: create database %s: %w", database, err)
	}
	if err := execTemplate(ctx, conn, "schema_migrations.sql", d); err != nil {
		return err
	}
	var current uint32
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM "+d.DB+".schema_migrations WHERE component = ?",
		schemaComponent).Scan(&current); err != nil {
		return fmt.Errorf("accesslog schema: read version: %w", err)
	}
	for _, m := range steps {
		if m.version <= current {
			continue
		}
		if err := applyMigration(ctx, conn, database, d, m); err != nil {
			// A step fails on a table that is not ours (e.g. a DEFAULT
			// naming a column it lacks): say what is wrong with it.
			if verr := verifyColumns(ctx, conn, database); verr != nil {
				return errors.Join(verr, err)
			}
			return err
		}
		// INSERT … SELECT: INSERT … VALUES through Exec hangs on 18.16.
		if err := conn.Exec(ctx, fmt.Sprintf(
			"INSERT INTO %s.schema_migrations (component, version, applied_at) SELECT '%s', %d, now()",
			d.DB, schemaComponent, m.version)); err != nil {
			return fmt.Errorf("accesslog schema: record version %d: %w", m.version, err)
		}
	}
	return verifyColumns(ctx, conn, database)
}

type ddlData struct {
	DB      string
	Modern  bool
	TTLDays int
}

// modernServer reports whether the server has LowCardinality (without the
// experimental setting), codecs and table TTL: 20.1 and later.
func modernServer(sv *driver.ServerVersion) bool {
	v := sv.Version
	return v.Major > 20 || (v.Major == 20 && v.Minor >= 1)
}

func quoteIdent(s string) string { return "`" + s + "`" }

// renderDDL renders one sql/ template for a server generation.
func renderDDL(name string, d ddlData) (string, error) {
	t, err := sqlTemplates.Lookup(name).Clone()
	if err != nil {
		return "", fmt.Errorf("accesslog schema: template %s: %w", name, err)
	}
	t.Funcs(template.FuncMap{
		"lc": func(typ string) string {
			if d.Modern {
				return "LowCardinality(" + typ + ")"
			}
			return typ
		},
		"codec": func(c string) string {
			if d.Modern {
				return " CODEC(" + c + ")"
			}
			return ""
		},
	})
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("accesslog schema: render %s: %w", name, err)
	}
	// Drop comment lines: they document the files, the server needs none.
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		out = append(out, line)
	}
	return strings.TrimSpace(strings.Join(out, "\n")), nil
}

func execTemplate(ctx context.Context, conn driver.Conn, name string, d ddlData) error {
	q, err := renderDDL(name, d)
	if err != nil {
		return err
	}
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("accesslog schema: exec %s: %w", name, err)
	}
	return nil
}

func applyMigration(ctx context.Context, conn driver.Conn, database string, d ddlData, m migration) error {
	if m.file != "" {
		return execTemplate(ctx, conn, m.file, d)
	}
	if m.addColumn == nil {
		return fmt.Errorf("accesslog schema: migration %d has no step", m.version)
	}
	c := *m.addColumn
	if !identRE.MatchString(c.Table) || !identRE.MatchString(c.Name) {
		return fmt.Errorf("accesslog schema: migration %d: invalid identifier", m.version)
	}
	typ := c.Type
	if d.Modern && c.Modern != "" {
		typ = c.Modern
	}
	if d.Modern {
		q := fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN IF NOT EXISTS %s %s",
			d.DB, quoteIdent(c.Table), quoteIdent(c.Name), typ)
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("accesslog schema: migration %d add column %s.%s: %w", m.version, c.Table, c.Name, err)
		}
		return nil
	}
	// 18.16 has no ADD COLUMN IF NOT EXISTS (syntax error): look first.
	var n uint64
	if err := conn.QueryRow(ctx,
		"SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		database, c.Table, c.Name).Scan(&n); err != nil {
		return fmt.Errorf("accesslog schema: migration %d look up column %s.%s: %w", m.version, c.Table, c.Name, err)
	}
	if n > 0 {
		return nil
	}
	q := fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN %s %s", d.DB, quoteIdent(c.Table), quoteIdent(c.Name), typ)
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("accesslog schema: migration %d add column %s.%s: %w", m.version, c.Table, c.Name, err)
	}
	return nil
}

// verifyColumns checks that both tables carry every contract column with its
// base type, so a hand-made or half-migrated table fails at start-up rather
// than on the first insert.
func verifyColumns(ctx context.Context, conn driver.Conn, database string) error {
	rows, err := conn.Query(ctx,
		"SELECT table, name, type FROM system.columns WHERE database = ? AND table IN ('access_log', 'daily_reports')",
		database)
	if err != nil {
		return fmt.Errorf("accesslog schema: read columns: %w", err)
	}
	defer rows.Close()
	live := map[string]map[string]string{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			return fmt.Errorf("accesslog schema: scan columns: %w", err)
		}
		if live[table] == nil {
			live[table] = map[string]string{}
		}
		live[table][name] = baseType(typ)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("accesslog schema: read columns: %w", err)
	}
	var errs []error
	for table, want := range map[string][]column{"access_log": accessLogColumns, "daily_reports": dailyReportsColumns} {
		got := live[table]
		if got == nil {
			errs = append(errs, &SchemaError{Table: table, Problem: "missing"})
			continue
		}
		for _, c := range want {
			switch typ, ok := got[c.Name]; {
			case !ok:
				errs = append(errs, &SchemaError{Table: table, Problem: "missing column " + c.Name})
			case typ != c.Type:
				errs = append(errs, &SchemaError{Table: table,
					Problem: fmt.Sprintf("column %s has type %s, want %s", c.Name, typ, c.Type)})
			}
		}
	}
	return errors.Join(errs...)
}

// baseType strips LowCardinality(…), which modern servers add without
// changing what clients read and write.
func baseType(t string) string {
	if strings.HasPrefix(t, "LowCardinality(") && strings.HasSuffix(t, ")") {
		return t[len("LowCardinality(") : len(t)-1]
	}
	return t
}
