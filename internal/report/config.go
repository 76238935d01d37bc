// Package report builds smartlayer's daily access-log report (django-smart-layer's
// analyse_logs): aggregates computed by ClickHouse, a deterministic analysis, an
// optional LLM narrative, Markdown/HTML rendering, storage in daily_reports,
// delivery (webhook, SMTP) and access_log retention.
package report

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// Config is the reporter's configuration. DefaultConfig fills every field.
type Config struct {
	// Database holds access_log and daily_reports. Not a key of its own:
	// the process copies accesslog.clickhouse.database here.
	Database string `koanf:"-"`
	// Cluster is accesslog.clickhouse.cluster (not a key of its own):
	// set, access_log is Distributed and retention drops the partitions of
	// access_log_local on every node.
	Cluster string `koanf:"-"`
	// Location is the timezone whose calendar days the report covers
	// (report.timezone, an IANA name).
	Location *time.Location `koanf:"timezone"`
	// RetentionDays keeps this many days of access_log partitions before the
	// report date's "today"; 0 disables retention (report.retention_days).
	RetentionDays int `koanf:"retention_days"`
	// OutDir receives report-YYYY-MM-DD.md/.html; "" writes no files (report.out_dir).
	OutDir string `koanf:"out_dir"`
	// WebhookURL receives a JSON POST of the report; "" disables (report.webhook_url).
	WebhookURL string `koanf:"webhook_url"`
	// DeliveryTimeout bounds each webhook POST and SMTP session (report.delivery_timeout).
	DeliveryTimeout time.Duration `koanf:"delivery_timeout"`
	// SMTP mails the report when Host is set (report.smtp.*).
	SMTP SMTPConfig `koanf:"smtp"`
	// SensitivePrefixes are path prefixes that make low-volume traffic
	// suspicious. Not a key of its own: the process copies
	// behavior.sensitive_paths here, so one list serves scoring and report.
	SensitivePrefixes []string `koanf:"-"`
	// SlowDrip tunes slow-drip detection (report.slow_drip.*).
	SlowDrip SlowDripConfig `koanf:"slow_drip"`
	// MinRouteRequests is the minimum number of requests a route needs on the day
	// to rank among the slowest (report.min_route_requests); fewer samples make
	// p95 meaningless.
	MinRouteRequests int `koanf:"min_route_requests"`
	// TopN bounds every ranked list (report.top_n).
	TopN int `koanf:"top_n"`
	// GenericRouteNames are Envoy route names that name no endpoint
	// (report.generic_route_names): the shipped envoy.yaml's one route
	// "app", Istio's "default" and "allow_any". Requests on them, with an
	// empty route name, or on a name carrying most of the day's traffic are
	// grouped by path template instead.
	GenericRouteNames []string `koanf:"generic_route_names"`
	// Health holds the thresholds of the health rule (report.health.*).
	Health HealthThresholds `koanf:"health"`
	// QueryTimeout bounds the whole aggregation (report.query_timeout).
	QueryTimeout time.Duration `koanf:"query_timeout"`
	// MaxThreads is sent as the max_threads setting of the report's queries;
	// 0 keeps the server's default (report.max_threads). Debian's 18.16 on a
	// small VM may default to one thread.
	MaxThreads int `koanf:"max_threads"`
	// NarrativeTimeout bounds the Summarizer call (report.narrative_timeout).
	NarrativeTimeout time.Duration `koanf:"narrative_timeout"`
}

// SMTPConfig is a plain SMTP relay. Username/Password enable PLAIN auth, which
// net/smtp allows only over TLS (STARTTLS) or to localhost.
type SMTPConfig struct {
	Host     string   `koanf:"host"`
	Port     int      `koanf:"port"`
	From     string   `koanf:"from"`
	To       []string `koanf:"to"`
	Username string   `koanf:"username"`
	Password Secret   `koanf:"password"`
}

// Secret is a string that never prints.
type Secret = setting.Secret

// SlowDripConfig defines a slow-drip client: present on at least MinDays of the
// last WindowDays days (the report date included), never more than
// MaxDailyRequests requests on one of those days, and touching a sensitive
// prefix or answered with errors (4xx/5xx not caused by a smartlayer block)
// for at least MinErrorRatio of its requests.
type SlowDripConfig struct {
	WindowDays       int     `koanf:"window_days"`
	MinDays          int     `koanf:"min_days"`
	MaxDailyRequests int     `koanf:"max_daily_requests"`
	MinErrorRatio    float64 `koanf:"min_error_ratio"`
}

// HealthThresholds is the health rule. Critical wins over degraded; each
// measure is compared with >=. ErrorRate counts 4xx and 5xx answers that
// smartlayer did not block itself (blocks are intended, reported apart).
type HealthThresholds struct {
	DegradedErrorRate       float64       `koanf:"degraded_error_rate"`
	CriticalErrorRate       float64       `koanf:"critical_error_rate"`
	DegradedServerErrorRate float64       `koanf:"degraded_server_error_rate"`
	CriticalServerErrorRate float64       `koanf:"critical_server_error_rate"`
	DegradedP95             time.Duration `koanf:"degraded_p95"`
	CriticalP95             time.Duration `koanf:"critical_p95"`
	// The share of requests that passed unchecked (Totals.FailedOpen)
	// from which the day is degraded or critical whatever else it shows.
	DegradedFailOpenRatio float64 `koanf:"degraded_fail_open_ratio"`
	CriticalFailOpenRatio float64 `koanf:"critical_fail_open_ratio"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Database:        "smartlayer",
		Location:        time.UTC,
		RetentionDays:   30,
		DeliveryTimeout: 10 * time.Second,
		SMTP:            SMTPConfig{Port: 25, To: []string{}},
		SensitivePrefixes: []string{"/admin", "/.env", "/api/token", "/wp-login", "/wp-admin",
			"/.git", "/phpmyadmin", "/xmlrpc.php"},
		SlowDrip:         SlowDripConfig{WindowDays: 7, MinDays: 3, MaxDailyRequests: 50, MinErrorRatio: 0.5},
		MinRouteRequests: 20,
		TopN:             10,
		Health: HealthThresholds{
			DegradedErrorRate:       0.05,
			CriticalErrorRate:       0.20,
			DegradedServerErrorRate: 0.01,
			CriticalServerErrorRate: 0.05,
			DegradedP95:             800 * time.Millisecond,
			CriticalP95:             2 * time.Second,
			DegradedFailOpenRatio:   0.001,
			CriticalFailOpenRatio:   0.01,
		},
		GenericRouteNames: []string{"app", "default", "allow_any"},
		QueryTimeout:      2 * time.Minute,
		NarrativeTimeout:  60 * time.Second,
	}
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every invalid field, named by its YAML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if !identRe.MatchString(c.Database) {
		bad("accesslog.clickhouse.database", "%q is not a plain identifier", c.Database)
	}
	switch {
	case c.Location == nil:
		bad("report.timezone", "must be set")
	case c.Location.String() == "Local":
		// ClickHouse needs an IANA name for toDate(timestamp, tz).
		bad("report.timezone", "must be an IANA name such as UTC or Europe/Paris, not Local")
	}
	// The comparison with the previous 7 days needs their partitions.
	if c.RetentionDays != 0 && c.RetentionDays < c.SlowDrip.WindowDays+1 {
		bad("report.retention_days", "%d keeps less than the %d-day window the report compares with (0 disables retention)",
			c.RetentionDays, c.SlowDrip.WindowDays+1)
	}
	if c.RetentionDays < 0 {
		bad("report.retention_days", "must be >= 0, got %d", c.RetentionDays)
	}
	if c.DeliveryTimeout < 100*time.Millisecond {
		bad("report.delivery_timeout", "must be at least 100ms")
	}
	if c.WebhookURL != "" && !strings.HasPrefix(c.WebhookURL, "http://") && !strings.HasPrefix(c.WebhookURL, "https://") {
		bad("report.webhook_url", "%q is not an http(s) URL", c.WebhookURL)
	}
	if c.SMTP.Host != "" {
		if c.SMTP.Port <= 0 || c.SMTP.Port > 65535 {
			bad("report.smtp.port", "%d is not a TCP port", c.SMTP.Port)
		}
		if c.SMTP.From == "" {
			bad("report.smtp.from", "must be set when report.smtp.host is")
		}
		if len(c.SMTP.To) == 0 {
			bad("report.smtp.to", "needs at least one recipient when report.smtp.host is set")
		}
		for _, a := range append([]string{c.SMTP.From}, c.SMTP.To...) {
			if strings.ContainsAny(a, "\r\n<>") {
				bad("report.smtp", "address %q contains CR, LF or angle brackets", a)
			}
		}
	}
	for _, p := range c.SensitivePrefixes {
		if !strings.HasPrefix(p, "/") {
			bad("report.sensitive_paths", "%q must start with /", p)
		}
	}
	if c.SlowDrip.WindowDays < 1 || c.SlowDrip.WindowDays > 31 {
		bad("report.slow_drip.window_days", "must be 1..31, got %d", c.SlowDrip.WindowDays)
	}
	if c.SlowDrip.MinDays < 1 || c.SlowDrip.MinDays > c.SlowDrip.WindowDays {
		bad("report.slow_drip.min_days", "must be 1..window_days, got %d", c.SlowDrip.MinDays)
	}
	if c.SlowDrip.MaxDailyRequests < 1 {
		bad("report.slow_drip.max_daily_requests", "must be >= 1, got %d", c.SlowDrip.MaxDailyRequests)
	}
	if c.SlowDrip.MinErrorRatio <= 0 || c.SlowDrip.MinErrorRatio > 1 {
		bad("report.slow_drip.min_error_ratio", "must be in (0, 1], got %g", c.SlowDrip.MinErrorRatio)
	}
	if c.MinRouteRequests < 1 {
		bad("report.min_route_requests", "must be >= 1, got %d", c.MinRouteRequests)
	}
	if c.TopN < 1 || c.TopN > 100 {
		bad("report.top_n", "must be 1..100, got %d", c.TopN)
	}
	h := c.Health
	if h.DegradedErrorRate <= 0 || h.CriticalErrorRate < h.DegradedErrorRate || h.CriticalErrorRate > 1 {
		bad("report.health.error_rate", "need 0 < degraded (%g) <= critical (%g) <= 1", h.DegradedErrorRate, h.CriticalErrorRate)
	}
	if h.DegradedServerErrorRate <= 0 || h.CriticalServerErrorRate < h.DegradedServerErrorRate || h.CriticalServerErrorRate > 1 {
		bad("report.health.server_error_rate", "need 0 < degraded (%g) <= critical (%g) <= 1", h.DegradedServerErrorRate, h.CriticalServerErrorRate)
	}
	if h.DegradedFailOpenRatio <= 0 || h.CriticalFailOpenRatio < h.DegradedFailOpenRatio || h.CriticalFailOpenRatio > 1 {
		bad("report.health.degraded_fail_open_ratio", "need 0 < degraded_fail_open_ratio (%g) <= critical_fail_open_ratio (%g) <= 1",
			h.DegradedFailOpenRatio, h.CriticalFailOpenRatio)
	}
	for _, n := range c.GenericRouteNames {
		if strings.TrimSpace(n) != n {
			bad("report.generic_route_names", "%q has leading or trailing spaces", n)
		}
	}
	if h.DegradedP95 < time.Millisecond {
		bad("report.health.degraded_p95", "must be at least 1ms, got %s", h.DegradedP95)
	}
	if h.CriticalP95 < h.DegradedP95 {
		bad("report.health.critical_p95", "must be at least degraded_p95 (%s), got %s", h.DegradedP95, h.CriticalP95)
	}
	if c.MaxThreads < 0 || c.MaxThreads > 256 {
		bad("report.max_threads", "must be 0..256, got %d", c.MaxThreads)
	}
	if c.QueryTimeout < time.Second {
		bad("report.query_timeout", "must be at least 1s")
	}
	if c.NarrativeTimeout < time.Second {
		bad("report.narrative_timeout", "must be at least 1s")
	}
	return errors.Join(errs...)
}
