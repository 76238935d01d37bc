package deploy

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const chInitDir = repo + "/deploy/clickhouse/init"

// sqlStatements reads the init SQL files in order: comments dropped,
// whitespace collapsed, one string per statement.
func sqlStatements(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(chInitDir + "/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no init SQL in deploy/clickhouse/init (%v)", err)
	}
	out := map[string][]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			if i := strings.Index(l, "--"); i >= 0 {
				l = l[:i]
			}
			lines = append(lines, l)
		}
		for _, s := range strings.Split(strings.Join(lines, " "), ";") {
			if s = strings.Join(strings.Fields(s), " "); s != "" {
				out[filepath.Base(f)] = append(out[filepath.Base(f)], s)
			}
		}
	}
	return out
}

var (
	createUserRE = regexp.MustCompile(`^CREATE USER IF NOT EXISTS (\w+) IDENTIFIED WITH sha256_hash BY '@(\w+)@' DEFAULT DATABASE (\w+)`)
	grantRE      = regexp.MustCompile(`^GRANT (.+) ON (\w+)\.\* TO (\w+)$`)
)

// userGrants collects, per user, the privileges granted on each database.
type chUser struct {
	defaultDB string
	grants    map[string][]string // database -> privileges
	file      string
	stmts     []string
}

func chUsers(t *testing.T) map[string]*chUser {
	t.Helper()
	users := map[string]*chUser{}
	for file, stmts := range sqlStatements(t) {
		for _, s := range stmts {
			if strings.Contains(s, "IDENTIFIED BY") || strings.Contains(s, "IDENTIFIED WITH plaintext") {
				t.Errorf("%s: a plaintext password: %s", file, s)
			}
			if m := createUserRE.FindStringSubmatch(s); m != nil {
				users[m[1]] = &chUser{defaultDB: m[3], grants: map[string][]string{}, file: file}
				if !strings.HasSuffix(m[2], "_PASSWORD_SHA256") {
					t.Errorf("%s: password placeholder @%s@, want @…_PASSWORD_SHA256@", file, m[2])
				}
			}
		}
		for _, s := range stmts {
			if m := grantRE.FindStringSubmatch(s); m != nil {
				u := users[m[3]]
				if u == nil {
					t.Errorf("%s: GRANT to %s, created nowhere before", file, m[3])
					continue
				}
				for _, p := range strings.Split(m[1], ",") {
					u.grants[m[2]] = append(u.grants[m[2]], strings.TrimSpace(p))
				}
			} else if strings.HasPrefix(s, "GRANT") {
				t.Errorf("%s: unparsed grant %q", file, s)
			}
		}
		for _, u := range users {
			if u.file == file {
				u.stmts = stmts
			}
		}
	}
	return users
}

// TestClickHouseInitSQL: the init SQL creates the user authz and the reporter
// log in as (accesslog.clickhouse.username) with exactly what they do on
// accesslog.clickhouse.database, and Grafana's read-only user (the
// datasource's username and database, the same name as users.d/reader.xml).
func TestClickHouseInitSQL(t *testing.T) {
	cfg := loadConfig(t).AccessLog.ClickHouse
	users := chUsers(t)
	w := users[cfg.Username]
	if w == nil {
		t.Fatalf("init SQL does not create accesslog.clickhouse.username %q (creates %v)", cfg.Username, users)
	}
	if w.defaultDB != cfg.Database || !slices.Contains(w.stmts, "CREATE DATABASE IF NOT EXISTS "+cfg.Database) {
		t.Errorf("user %s: default database %q, want accesslog.clickhouse.database %q created first", cfg.Username, w.defaultDB, cfg.Database)
	}
	// schema.go: CREATE DATABASE/TABLE, ALTER … ADD COLUMN, INSERT; report: SELECT, INSERT,
	// DROP PARTITION (checked as ALTER DELETE).
	need := []string{"CREATE DATABASE", "CREATE TABLE", "SELECT", "INSERT", "ALTER ADD COLUMN", "ALTER DELETE"}
	got := w.grants[cfg.Database]
	for _, p := range need {
		if !slices.Contains(got, p) {
			t.Errorf("user %s lacks %s on %s (has %v)", cfg.Username, p, cfg.Database, got)
		}
	}
	if len(got) != len(need) || len(w.grants) != 1 {
		t.Errorf("user %s: grants %v, want exactly %v on %s", cfg.Username, w.grants, need, cfg.Database)
	}

	ds := loadDatasource(t)
	r := users[ds.JSONData.Username]
	if r == nil {
		t.Fatalf("init SQL does not create the Grafana datasource's user %q", ds.JSONData.Username)
	}
	if r.defaultDB != ds.JSONData.DefaultDatabase || ds.JSONData.DefaultDatabase != cfg.Database {
		t.Errorf("reader database %q, datasource %q, config %q: want one", r.defaultDB, ds.JSONData.DefaultDatabase, cfg.Database)
	}
	if len(r.grants) != 1 || !slices.Equal(r.grants[cfg.Database], []string{"SELECT"}) {
		t.Errorf("user %s: grants %v, want SELECT on %s only", ds.JSONData.Username, r.grants, cfg.Database)
	}
	if !slices.ContainsFunc(r.stmts, func(s string) bool {
		return strings.HasPrefix(s, "CREATE SETTINGS PROFILE") && strings.Contains(s, "readonly = 1")
	}) || !slices.ContainsFunc(r.stmts, func(s string) bool {
		return strings.HasPrefix(s, "CREATE USER IF NOT EXISTS "+ds.JSONData.Username+" ") && strings.Contains(s, "SETTINGS PROFILE")
	}) {
		t.Errorf("user %s: want a readonly = 1 settings profile", ds.JSONData.Username)
	}
	if r.file == w.file {
		t.Errorf("the reader and the writer share %s: the reader must be separable (compose mounts users.d/reader.xml instead)", r.file)
	}

	// users.d/reader.xml (compose) defines the same user on the same database.
	var x struct {
		Users struct {
			Any []struct {
				XMLName   xml.Name
				Profile   string   `xml:"profile"`
				Databases []string `xml:"allow_databases>database"`
			} `xml:",any"`
		} `xml:"users"`
	}
	decodeFile(t, repo+"/deploy/clickhouse/users.d/reader.xml", &x, xml.Unmarshal)
	if len(x.Users.Any) != 1 || x.Users.Any[0].XMLName.Local != ds.JSONData.Username || !slices.Equal(x.Users.Any[0].Databases, []string{cfg.Database}) {
		t.Errorf("users.d/reader.xml defines %+v, want user %s on %s only", x.Users.Any, ds.JSONData.Username, cfg.Database)
	}
}
