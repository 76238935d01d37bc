package accesslog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ClientIPPolicy says when a row stores the client IP. Feedback always gets
// the IP; the policy only governs what is persisted.
type ClientIPPolicy int

const (
	// ClientIPAnonymous stores the IP only for requests without a user id,
	// as django-smart-layer does: identified users are tracked by id, and
	// their addresses are personal data we do not need.
	ClientIPAnonymous ClientIPPolicy = iota
	// ClientIPAlways stores the IP on every row.
	ClientIPAlways
	// ClientIPNever never stores the IP.
	ClientIPNever
)

func (p ClientIPPolicy) String() string {
	switch p {
	case ClientIPAnonymous:
		return "anonymous"
	case ClientIPAlways:
		return "always"
	case ClientIPNever:
		return "never"
	}
	return fmt.Sprintf("ClientIPPolicy(%d)", int(p))
}

// ParseClientIPPolicy parses "anonymous", "always" or "never".
func ParseClientIPPolicy(s string) (ClientIPPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "anonymous", "":
		return ClientIPAnonymous, nil
	case "always":
		return ClientIPAlways, nil
	case "never":
		return ClientIPNever, nil
	}
	return 0, fmt.Errorf("store_client_ip: %q is not one of anonymous, always, never", s)
}

// UnmarshalText lets config loaders decode the policy from a string.
func (p *ClientIPPolicy) UnmarshalText(b []byte) error {
	v, err := ParseClientIPPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText is the inverse of UnmarshalText.
func (p ClientIPPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Config tunes the receiver and the writer. Connection settings
// (accesslog.clickhouse.addr/username/password) are cmd's business: it opens
// the driver.Conn and hands it to New.
type Config struct {
	// Database holds access_log (accesslog.clickhouse.database).
	Database string
	// BatchRows seals a batch at this many rows (accesslog.batch_rows).
	BatchRows int
	// FlushInterval seals a non-empty batch at least this often
	// (accesslog.flush_interval).
	FlushInterval time.Duration
	// QueueBatches bounds the sealed batches held in memory before they
	// go to the spool (accesslog.queue_batches).
	QueueBatches int
	// MaxInflight is the number of concurrent inserts (accesslog.max_inflight).
	MaxInflight int
	// InsertTimeout bounds one insert attempt (accesslog.insert_timeout).
	InsertTimeout time.Duration
	// RetryAttempts is how many times a batch is tried before it goes to
	// the spool (accesslog.retry_attempts).
	RetryAttempts int
	// RetryMinBackoff and RetryMaxBackoff bound the doubling pause between
	// attempts, and between spool replays while ClickHouse is down
	// (accesslog.retry_min_backoff, accesslog.retry_max_backoff).
	RetryMinBackoff, RetryMaxBackoff time.Duration
	// SpoolDir holds batches ClickHouse did not take (accesslog.spool_dir).
	// Empty means DefaultSpoolDir(); mount a volume there in Kubernetes so
	// the spool survives a pod restart.
	SpoolDir string
	// SpoolMaxBytes caps the spool; beyond it rows are dropped and counted
	// (accesslog.spool_max_bytes).
	SpoolMaxBytes int64
	// StoreClientIP says which rows keep the client IP
	// (accesslog.store_client_ip: anonymous | always | never).
	StoreClientIP ClientIPPolicy
	// UserHeader and PlanHeader name the request headers Envoy logs via
	// additional_request_headers_to_log (accesslog.user_header,
	// accesslog.plan_header; identity.user_header / plan_header by default).
	UserHeader, PlanHeader string
}

// DefaultSpoolDir is where batches are spooled when Config.SpoolDir is empty.
func DefaultSpoolDir() string {
	return filepath.Join(os.TempDir(), "smartlayer-accesslog-spool")
}

// DefaultConfig returns the settings DESIGN.md section 7 names.
func DefaultConfig() Config {
	return Config{
		Database:        "smartlayer",
		BatchRows:       50000,
		FlushInterval:   time.Second,
		QueueBatches:    8,
		MaxInflight:     2,
		InsertTimeout:   30 * time.Second,
		RetryAttempts:   3,
		RetryMinBackoff: 100 * time.Millisecond,
		RetryMaxBackoff: 5 * time.Second,
		SpoolMaxBytes:   1 << 30,
		StoreClientIP:   ClientIPAnonymous,
		UserHeader:      "x-user-id",
		PlanHeader:      "x-user-plan",
	}
}

// validate reports every invalid field by its config key.
func (c Config) validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("accesslog."+key+": "+format, args...))
	}
	if !identRE.MatchString(c.Database) {
		bad("clickhouse.database", "invalid database name %q", c.Database)
	}
	if c.BatchRows < 1 || c.BatchRows > 10_000_000 {
		bad("batch_rows", "%d is outside 1..10000000", c.BatchRows)
	}
	if c.FlushInterval <= 0 {
		bad("flush_interval", "must be positive, got %s", c.FlushInterval)
	}
	if c.QueueBatches < 1 {
		bad("queue_batches", "must be at least 1, got %d", c.QueueBatches)
	}
	if c.MaxInflight < 1 {
		bad("max_inflight", "must be at least 1, got %d", c.MaxInflight)
	}
	if c.InsertTimeout <= 0 {
		bad("insert_timeout", "must be positive, got %s", c.InsertTimeout)
	}
	if c.RetryAttempts < 1 {
		bad("retry_attempts", "must be at least 1, got %d", c.RetryAttempts)
	}
	if c.RetryMinBackoff <= 0 || c.RetryMaxBackoff < c.RetryMinBackoff {
		bad("retry_min_backoff", "need 0 < retry_min_backoff (%s) <= retry_max_backoff (%s)", c.RetryMinBackoff, c.RetryMaxBackoff)
	}
	if c.SpoolMaxBytes < 0 {
		bad("spool_max_bytes", "must not be negative, got %d", c.SpoolMaxBytes)
	}
	if c.StoreClientIP < ClientIPAnonymous || c.StoreClientIP > ClientIPNever {
		bad("store_client_ip", "unknown policy %d", int(c.StoreClientIP))
	}
	if c.UserHeader == "" {
		bad("user_header", "must not be empty")
	}
	if c.PlanHeader == "" {
		bad("plan_header", "must not be empty")
	}
	return errors.Join(errs...)
}
