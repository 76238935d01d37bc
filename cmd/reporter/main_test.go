package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	return testenv.WriteFile(t, "smartlayer.yaml", body)
}

func TestLoadConfig(t *testing.T) {
	const chYAML = "accesslog: {clickhouse: {addr: [127.0.0.1:9000]}}\n"
	tests := map[string]struct {
		yaml    string
		env     map[string]string
		check   func(t *testing.T, c appConfig)
		wantErr string
	}{
		"no clickhouse address": {wantErr: "accesslog.clickhouse.addr"},
		"defaults with an address": {
			env: map[string]string{"SMARTLAYER_ACCESSLOG_CLICKHOUSE_ADDR": "127.0.0.1:9000"},
			check: func(t *testing.T, c appConfig) {
				if c.Report.RetentionDays != 30 || c.Report.Location.String() != "UTC" || c.ClickHouse.Addr[0] != "127.0.0.1:9000" || c.Report.Database != "smartlayer" {
					t.Errorf("defaults = %+v", c)
				}
			},
		},
		"yaml keys": {
			yaml: `
server: {authz_addr: ":9001"}
report:
  retention_days: 14
  timezone: Europe/Paris
  out_dir: /var/reports
  webhook_url: https://hooks.example.test/x
  smtp: {host: mail.example.test, port: 587, from: r@example.test, to: [a@example.test, b@example.test], password: hunter2}
  slow_drip: {max_daily_requests: 20}
  health: {degraded_p95: 500ms}
accesslog: {clickhouse: {addr: ["ch1:9000", "ch2:9000"], database: logs}}
llm: {base_url: "http://127.0.0.1:11434/v1", model: llama3}
`,
			check: func(t *testing.T, c appConfig) {
				r := c.Report
				if r.RetentionDays != 14 || r.Location.String() != "Europe/Paris" || r.OutDir != "/var/reports" ||
					r.SMTP.Port != 587 || len(r.SMTP.To) != 2 || r.SMTP.Password != "hunter2" || r.SlowDrip.MaxDailyRequests != 20 ||
					r.SlowDrip.MinDays != 3 || r.Health.DegradedP95 != 500*time.Millisecond || r.Database != "logs" ||
					len(c.ClickHouse.Addr) != 2 || c.LLM.Model != "llama3" {
					t.Errorf("loaded = %+v", c)
				}
				if strings.Contains(fmt.Sprintf("%v %+v", r.SMTP, r.SMTP), "hunter2") {
					t.Errorf("the SMTP password prints")
				}
			},
		},
		"env overrides": {
			yaml: "report: {retention_days: 14}\n",
			env: map[string]string{"SMARTLAYER_REPORT_RETENTION_DAYS": "21", "SMARTLAYER_ACCESSLOG_CLICKHOUSE_ADDR": "a:1, b:2",
				"SMARTLAYER_REPORT_SMTP_TO": "x@y.test", "SMARTLAYER_REPORT_SMTP_HOST": "mail", "SMARTLAYER_REPORT_SMTP_FROM": "r@y.test",
				"SMARTLAYER_LLM_API_KEY": "sk-test", "SMARTLAYER_STORE_BACKEND": "redis"},
			check: func(t *testing.T, c appConfig) {
				if c.Report.RetentionDays != 21 || strings.Join(c.ClickHouse.Addr, "|") != "a:1|b:2" || c.Report.SMTP.To[0] != "x@y.test" || c.LLM.APIKey != "sk-test" {
					t.Errorf("env = %+v", c)
				}
			},
		},
		"bad timezone":      {yaml: "report: {timezone: Mars/Olympus}\n", wantErr: "report.timezone"},
		"typo in report":    {yaml: "report: {retension_days: 3}\n", wantErr: "report.retension_days"},
		"retention too low": {yaml: "report: {retention_days: 3}\n" + chYAML, wantErr: "report.retention_days"},
		"smtp incomplete":   {yaml: "report: {smtp: {host: mail}}\n" + chYAML, wantErr: "report.smtp.from"},
		"llm without model": {yaml: "llm: {base_url: http://x}\n", wantErr: "llm.model"},
		"bad duration":      {yaml: "report: {query_timeout: soon}\n", wantErr: "query_timeout"},
		"not yaml":          {yaml: "report: [\n", wantErr: "smartlayer.yaml"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			path := ""
			if tc.yaml != "" {
				path = writeConfig(t, tc.yaml)
			}
			c, err := loadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Errorf("a missing config file loads")
	}
}

func TestRunUsageAndUnreachable(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := writeConfig(t, fmt.Sprintf("accesslog: {clickhouse: {addr: [%q], dial_timeout: 500ms}}\n", closed))
	tests := map[string]struct {
		args []string
		code int
		msg  string
	}{
		"unknown flag":   {[]string{"--bogus"}, exitUsage, "bogus"},
		"bad date":       {[]string{"--config", cfg, "--date", "2026-13-01"}, exitUsage, "--date"},
		"bad timezone":   {[]string{"--config", cfg, "--timezone", "Nowhere/City"}, exitUsage, "--timezone"},
		"bad config":     {[]string{"--config", writeConfig(t, "report: {timezone: Nowhere}\n")}, exitUsage, "report.timezone"},
		"no clickhouse":  {[]string{"--config", cfg, "--date", "2026-11-20"}, exitUnreachable, "clickhouse unreachable at [" + closed + "]"},
		"stray argument": {[]string{"now"}, exitUsage, "unexpected arguments"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, errb.String(), tc.code, tc.msg)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q on failure", out.String())
			}
		})
	}
}

// TestRunEndToEnd runs the command against the test ClickHouse: dry run
// first (nothing stored), then for real (files, row, exit 0).
func TestRunEndToEnd(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	conn := testenv.OpenClickHouse(t, addr)
	db := testenv.FreshDatabase(t, conn, "sl_reporter_")
	ctx := t.Context()
	out := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("accesslog: {clickhouse: {addr: [%q], database: %s}}\nreport: {out_dir: %q}\n", addr, db, out))

	// The dry run must not create anything, so it fails on a missing table.
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"--config", cfg, "--date", "2026-11-20", "--dry-run"}, &stdout, &stderr); code != exitFailed ||
		!strings.Contains(stderr.String(), "aggregate totals for 2026-11-20") {
		t.Fatalf("dry run on an empty server: exit %d, %s", code, stderr.String())
	}

	// A real run creates the schema; then traffic arrives and we report it.
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"--config", cfg, "--date", "2026-11-19", "--no-llm"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("first run: exit %d, %s", code, stderr.String())
	}
	if err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.access_log (timestamp, date, path, status, duration_ms, client_ip)
		SELECT toDateTime('2026-11-20 00:00:00', 'UTC') + number * 8, toDate('2026-11-20'), '/api/x', if(number %% 10 = 0, 500, 200), 12, '10.0.0.1'
		FROM numbers(10000)`, db)); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"--config", cfg, "--date", "2026-11-20", "--dry-run"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("dry run: exit %d, %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| Requests | 10000 |") || !strings.Contains(stdout.String(), "CRITICAL") {
		t.Errorf("dry-run stdout lacks the report:\n%s", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(out, "report-2026-11-20.md")); !os.IsNotExist(err) {
		t.Errorf("dry run wrote a file: %v", err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"--config", cfg, "--date", "2026-11-20", "--timezone", "UTC"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run: exit %d, %s", code, stderr.String())
	}
	for _, ext := range []string{"md", "html"} {
		body, err := os.ReadFile(filepath.Join(out, "report-2026-11-20."+ext))
		if err != nil || !strings.Contains(string(body), "10000") {
			t.Errorf("report-2026-11-20.%s: %v", ext, err)
		}
	}
	var health string
	var total uint64
	if err := conn.QueryRow(ctx, "SELECT health, total FROM "+db+".daily_reports FINAL WHERE date = '2026-11-20'").Scan(&health, &total); err != nil ||
		health != "critical" || total != 10000 {
		t.Errorf("stored %s %d, %v", health, total, err)
	}
}
