package accesslog

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The DDL lives in sql/*.sql as text/template files so that reviewers read
// SQL, not Go string concatenation. Each file holds exactly one statement:
// the native protocol runs one statement per query.
//
//go:embed sql/*.sql
var sqlFS embed.FS

var sqlTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	// lc and codec are replaced per server version, table and engine per
	// layout (one server or a cluster) in render; these placeholders only
	// let the templates parse.
	"lc":     func(t string) string { return t },
	"codec":  func(string) string { return "" },
	"table":  func(t string) string { return t },
	"engine": func(_, e, _ string) string { return e },
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
	cluster       Cluster
}

// Cluster is the layout on a ClickHouse cluster (accesslog.clickhouse.cluster
// and .replicated).
type Cluster struct {
	// Name is a cluster of the servers' remote_servers; its nodes are read
	// from system.clusters of the server EnsureSchema is given.
	Name string
	// Replicated makes the local tables Replicated*MergeTree, with the
	// servers' {shard} and {replica} macros in the ZooKeeper path.
	Replicated bool
	// Dial opens a connection to one node (host:port as system.clusters
	// lists it) with the caller's credentials and timeouts.
	Dial func(ctx context.Context, addr string) (driver.Conn, error)
}

// WithCluster lays the tables out on a cluster: on every node, local tables
// (access_log_local, daily_reports_local) and Distributed tables named
// access_log and daily_reports over them, so that writers, the reporter and
// the dashboard use the same names as on one server.
//
// The DDL is run on each node over its own connection, not with ON CLUSTER:
// distributed DDL needs ZooKeeper (18.16 answers "DDL background thread is
// not initialized" without it), which a cluster of plain MergeTree shards
// does not otherwise need; and each node keeps its own schema_migrations,
// so a node added later is brought up to date by the next start.
func WithCluster(c Cluster) SchemaOption {
	return func(o *schemaOptions) { o.cluster = c }
}

// LocalSuffix names a cluster's local tables: access_log_local under the
// Distributed access_log.
const LocalSuffix = "_local"

// Sharding keys of the Distributed tables. access_log rows go by request
// id: a retried batch splits into the same per-shard blocks, which
// Replicated tables then deduplicate. daily_reports rows go by date, so
// every version of a day's report is on one shard, where
// ReplacingMergeTree and FINAL collapse them.
const (
	accessLogShardKey    = "cityHash64(request_id)"
	dailyReportsShardKey = "toUInt32(date)"
)

// WithRetentionDays sets the access_log TTL in days on servers >= 20.1
// (0 = no TTL). It only applies when the table is created; it never alters
// an existing table's TTL, because MODIFY TTL rewrites every part.
func WithRetentionDays(days int) SchemaOption {
	return func(o *schemaOptions) { o.retentionDays = days }
}

// identRE is what we accept as a database name: it is spliced into DDL, where
// ClickHouse takes no bind parameters.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// clusterRE is what we accept as a cluster name (an XML element name in
// remote_servers); it is spliced into a string literal of the DDL.
var clusterRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)

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
// WithCluster does the same on every node of a cluster.
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
	if o.cluster.Name != "" && !clusterRE.MatchString(o.cluster.Name) {
		return fmt.Errorf("accesslog schema: invalid cluster name %q", o.cluster.Name)
	}
	if o.retentionDays < 0 {
		return fmt.Errorf("accesslog schema: negative retention days %d", o.retentionDays)
	}
	if o.cluster.Name == "" {
		return ensureNode(ctx, conn, database, steps, o)
	}
	if o.cluster.Dial == nil {
		return errors.New("accesslog schema: cluster without a way to dial its nodes")
	}
	nodes, err := ClusterNodes(ctx, conn, o.cluster.Name)
	if err != nil {
		return fmt.Errorf("accesslog schema: %w", err)
	}
	// Every node, even when one fails: the error names all that did.
	var errs []error
	for _, n := range nodes {
		if err := ensureClusterNode(ctx, n, database, steps, o); err != nil {
			errs = append(errs, fmt.Errorf("node %s (shard %d replica %d): %w", n.Addr, n.Shard, n.Replica, err))
		}
	}
	return errors.Join(errs...)
}

func ensureClusterNode(ctx context.Context, n Node, database string, steps []migration, o schemaOptions) error {
	conn, err := o.cluster.Dial(ctx, n.Addr)
	if err != nil {
		return fmt.Errorf("accesslog schema: dial: %w", err)
	}
	defer conn.Close()
	return ensureNode(ctx, conn, database, steps, o)
}

// Node is one server of a cluster.
type Node struct {
	Addr           string // host:port of the native protocol
	Shard, Replica uint32
}

// Querier is the part of a ClickHouse connection ClusterNodes needs.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// ClusterNodes lists the nodes of cluster as the server behind conn knows
// them (remote_servers, in system.clusters), by shard and replica.
func ClusterNodes(ctx context.Context, conn Querier, cluster string) ([]Node, error) {
	rows, err := conn.Query(ctx, "SELECT shard_num, replica_num, host_name, port FROM system.clusters "+
		"WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: read system.clusters: %w", cluster, err)
	}
	defer rows.Close()
	var nodes []Node
	for rows.Next() {
		var n Node
		var host string
		var port uint16
		if err := rows.Scan(&n.Shard, &n.Replica, &host, &port); err != nil {
			return nil, fmt.Errorf("cluster %s: scan system.clusters: %w", cluster, err)
		}
		n.Addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
		nodes = append(nodes, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster %s: read system.clusters: %w", cluster, err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("cluster %s is not in this server's remote_servers (system.clusters)", cluster)
	}
	return nodes, nil
}

// ensureNode creates and migrates the tables on one server: the only one,
// or one node of a cluster.
func ensureNode(ctx context.Context, conn driver.Conn, database string, steps []migration, o schemaOptions) error {
	sv, err := conn.ServerVersion()
	if err != nil {
		return fmt.Errorf("accesslog schema: server version: %w", err)
	}
	d := ddlData{DB: quoteIdent(database), Name: database, Modern: modernServer(sv), TTLDays: o.retentionDays,
		Cluster: o.cluster.Name, Replicated: o.cluster.Replicated}

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
			if verr := verifyColumns(ctx, conn, database, d); verr != nil {
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
	if d.Cluster != "" {
		// After the migrations: a new Distributed table copies the local
		// table's columns as they are now.
		for _, t := range []struct{ table, key string }{{"access_log", accessLogShardKey}, {"daily_reports", dailyReportsShardKey}} {
			if err := ensureDistributed(ctx, conn, d, t.table, t.key); err != nil {
				return err
			}
		}
	}
	return verifyColumns(ctx, conn, database, d)
}

// ensureDistributed creates the Distributed table over table's local table
// on this node, and refuses a table of that name that is not Distributed
// (a single server's table, from before the cluster).
func ensureDistributed(ctx context.Context, conn driver.Conn, d ddlData, table, key string) error {
	var n uint64
	var engine string
	if err := conn.QueryRow(ctx, "SELECT count(), any(engine) FROM system.tables WHERE database = ? AND name = ?",
		d.Name, table).Scan(&n, &engine); err != nil {
		return fmt.Errorf("accesslog schema: look up %s: %w", table, err)
	}
	local := table + LocalSuffix
	if n > 0 && engine != "Distributed" {
		return &SchemaError{Table: table, Problem: fmt.Sprintf("is a %s table, but accesslog.clickhouse.cluster needs "+
			"a Distributed table of that name over %s: on this node run RENAME TABLE %s.%s TO %s.%s (keeps its rows) "+
			"or use another database", engine, local, d.DB, table, d.DB, local)}
	}
	q := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s AS %s.%s ENGINE = Distributed('%s', '%s', '%s', %s)",
		d.DB, table, d.DB, local, d.Cluster, d.Name, local, key)
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("accesslog schema: create distributed %s: %w", table, err)
	}
	return nil
}

type ddlData struct {
	DB      string // quoted
	Name    string // unquoted, for string literals
	Modern  bool
	TTLDays int
	// Cluster is empty on one server; else the local tables get LocalSuffix
	// and, when Replicated, a Replicated engine.
	Cluster    string
	Replicated bool
}

// localTable is the name of table's MergeTree table in this layout.
func (d ddlData) localTable(table string) string {
	if d.Cluster == "" {
		return table
	}
	return table + LocalSuffix
}

// engine renders a MergeTree-family engine for table in this layout: with
// replication, the Replicated variant with a ZooKeeper path per shard and
// the {replica} macro, both set in each server's <macros>.
func (d ddlData) engine(table, kind, args string) string {
	if !d.Replicated {
		if args == "" {
			return kind
		}
		return kind + "(" + args + ")"
	}
	zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", d.Name, d.localTable(table))
	if args != "" {
		zk += ", " + args
	}
	return "Replicated" + kind + "(" + zk + ")"
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
		"table":  d.localTable,
		"engine": d.engine,
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
	if err := addColumnTo(ctx, conn, database, d, m.version, d.localTable(c.Table), c.Name, typ); err != nil {
		return err
	}
	if d.Cluster == "" {
		return nil
	}
	// The Distributed table too, once it exists: a new one is created from
	// the local table after the migrations and has the column already.
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?",
		database, c.Table).Scan(&n); err != nil {
		return fmt.Errorf("accesslog schema: migration %d look up table %s: %w", m.version, c.Table, err)
	}
	if n == 0 {
		return nil
	}
	return addColumnTo(ctx, conn, database, d, m.version, c.Table, c.Name, typ)
}

func addColumnTo(ctx context.Context, conn driver.Conn, database string, d ddlData, version uint32, table, name, typ string) error {
	if d.Modern {
		q := fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN IF NOT EXISTS %s %s",
			d.DB, quoteIdent(table), quoteIdent(name), typ)
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("accesslog schema: migration %d add column %s.%s: %w", version, table, name, err)
		}
		return nil
	}
	// 18.16 has no ADD COLUMN IF NOT EXISTS (syntax error): look first.
	var n uint64
	if err := conn.QueryRow(ctx,
		"SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		database, table, name).Scan(&n); err != nil {
		return fmt.Errorf("accesslog schema: migration %d look up column %s.%s: %w", version, table, name, err)
	}
	if n > 0 {
		return nil
	}
	q := fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN %s %s", d.DB, quoteIdent(table), quoteIdent(name), typ)
	if err := conn.Exec(ctx, q); err != nil {
		// Another replica's ALTER of a Replicated table may have reached
		// this one since the look-up.
		var ex *clickhouse.Exception
		if errors.As(err, &ex) && ex.Code == codeDuplicateColumn {
			return nil
		}
		return fmt.Errorf("accesslog schema: migration %d add column %s.%s: %w", version, table, name, err)
	}
	return nil
}

// codeDuplicateColumn is ClickHouse's DUPLICATE_COLUMN error code.
const codeDuplicateColumn = 15

// verifyColumns checks that both tables carry every contract column with its
// base type, so a hand-made or half-migrated table fails at start-up rather
// than on the first insert.
func verifyColumns(ctx context.Context, conn driver.Conn, database string, d ddlData) error {
	want := map[string][]column{"access_log": accessLogColumns, "daily_reports": dailyReportsColumns}
	if d.Cluster != "" {
		for t, cols := range maps.Clone(want) {
			want[d.localTable(t)] = cols
		}
	}
	rows, err := conn.Query(ctx,
		"SELECT table, name, type FROM system.columns WHERE database = ? AND has(?, table)",
		database, slices.Collect(maps.Keys(want)))
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
	for _, table := range slices.Sorted(maps.Keys(want)) {
		got := live[table]
		if got == nil {
			errs = append(errs, &SchemaError{Table: table, Problem: "missing"})
			continue
		}
		for _, c := range want[table] {
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
