package accesslog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/smartlayer/smartlayer/internal/setting"
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

// ClickHouseConfig locates the access-log database (accesslog.clickhouse.*).
// No Addr disables the sink: rows are counted and dropped.
type ClickHouseConfig struct {
	Addr []string `koanf:"addr"`
	// Database holds access_log and daily_reports.
	Database    string         `koanf:"database"`
	Username    string         `koanf:"username"`
	Password    setting.Secret `koanf:"password"`
	DialTimeout time.Duration  `koanf:"dial_timeout"`
	// Cluster names a cluster of the servers' remote_servers
	// (accesslog.clickhouse.cluster). Set, EnsureSchema creates the local
	// tables on every node of it and Distributed tables access_log and
	// daily_reports over them; empty keeps one server's plain tables.
	Cluster string `koanf:"cluster"`
	// Replicated makes the local tables Replicated*MergeTree with the
	// {shard} and {replica} macros (accesslog.clickhouse.replicated). The
	// servers then need ZooKeeper or ClickHouse Keeper; smartlayer does not.
	Replicated bool `koanf:"replicated"`
}

// SchemaOptions returns the EnsureSchema options for this configuration's
// layout; dial opens one node of the cluster with c's credentials.
func (c ClickHouseConfig) SchemaOptions(dial func(ctx context.Context, addr string) (driver.Conn, error)) []SchemaOption {
	if c.Cluster == "" {
		return nil
	}
	return []SchemaOption{WithCluster(Cluster{Name: c.Cluster, Replicated: c.Replicated, Dial: dial})}
}

// Enabled reports whether a ClickHouse address is configured.
func (c ClickHouseConfig) Enabled() bool { return len(c.Addr) > 0 }

// Config tunes the receiver and the writer (accesslog.*). The process
// opens the driver.Conn from ClickHouse and hands it to New.
type Config struct {
	ClickHouse ClickHouseConfig `koanf:"clickhouse"`
	// BatchRows seals a batch at this many rows (accesslog.batch_rows).
	BatchRows int `koanf:"batch_rows"`
	// FlushInterval seals a non-empty batch at least this often
	// (accesslog.flush_interval).
	FlushInterval time.Duration `koanf:"flush_interval"`
	// QueueBatches bounds the sealed batches held in memory before they
	// go to the spool (accesslog.queue_batches).
	QueueBatches int `koanf:"queue_batches"`
	// MaxInflight is the number of concurrent inserts (accesslog.max_inflight).
	MaxInflight int `koanf:"max_inflight"`
	// InsertTimeout bounds one insert attempt (accesslog.insert_timeout).
	InsertTimeout time.Duration `koanf:"insert_timeout"`
	// RetryAttempts is how many times a batch is tried before it goes to
	// the spool (accesslog.retry_attempts).
	RetryAttempts int `koanf:"retry_attempts"`
	// RetryMinBackoff and RetryMaxBackoff bound the doubling pause between
	// attempts, and between spool replays while ClickHouse is down
	// (accesslog.retry_min_backoff, accesslog.retry_max_backoff).
	RetryMinBackoff time.Duration `koanf:"retry_min_backoff"`
	RetryMaxBackoff time.Duration `koanf:"retry_max_backoff"`
	// SpoolDir holds batches ClickHouse did not take (accesslog.spool_dir).
	// Empty means DefaultSpoolDir(); mount a volume there in Kubernetes so
	// the spool survives a pod restart.
	SpoolDir string `koanf:"spool_dir"`
	// SpoolMaxBytes caps the spool; beyond it rows are dropped and counted
	// (accesslog.spool_max_bytes).
	SpoolMaxBytes int64 `koanf:"spool_max_bytes"`
	// StoreClientIP says which rows keep the client IP
	// (accesslog.store_client_ip: anonymous | always | never).
	StoreClientIP ClientIPPolicy `koanf:"store_client_ip"`
	// UserHeader and PlanHeader name the request headers Envoy logs via
	// additional_request_headers_to_log. They are not keys of their own: the
	// process copies identity.user_header and identity.plan_header here.
	UserHeader string `koanf:"-"`
	PlanHeader string `koanf:"-"`
}

// DefaultSpoolDir is where batches are spooled when Config.SpoolDir is empty.
func DefaultSpoolDir() string {
	return filepath.Join(os.TempDir(), "smartlayer-accesslog-spool")
}

// DefaultConfig returns the settings DESIGN.md section 7 names.
func DefaultConfig() Config {
	return Config{
		ClickHouse: ClickHouseConfig{Addr: []string{}, Database: "smartlayer", Username: "default",
			DialTimeout: 5 * time.Second},
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

// Validate reports every invalid field at once, named by its config key
// (accesslog.*).
func (c Config) Validate() error {
	p := setting.Section("accesslog")
	for i, h := range c.ClickHouse.Addr {
		p.Addr(fmt.Sprintf("clickhouse.addr[%d]", i), h, true)
	}
	if !identRE.MatchString(c.ClickHouse.Database) {
		p.Add("clickhouse.database", c.ClickHouse.Database, "must be a plain identifier")
	}
	if c.ClickHouse.Cluster != "" && !clusterRE.MatchString(c.ClickHouse.Cluster) {
		p.Add("clickhouse.cluster", c.ClickHouse.Cluster, "must be a cluster name of remote_servers (letters, digits, _ . -)")
	}
	if c.ClickHouse.Replicated && c.ClickHouse.Cluster == "" {
		p.Add("clickhouse.replicated", true, "needs accesslog.clickhouse.cluster: replicas are nodes of a cluster")
	}
	p.AtLeastDuration("clickhouse.dial_timeout", c.ClickHouse.DialTimeout, 100*time.Millisecond)
	p.Between("batch_rows", c.BatchRows, 1, 10_000_000)
	p.AtLeastDuration("flush_interval", c.FlushInterval, 10*time.Millisecond)
	p.AtLeast("queue_batches", c.QueueBatches, 1)
	p.AtLeast("max_inflight", c.MaxInflight, 1)
	p.AtLeastDuration("insert_timeout", c.InsertTimeout, 100*time.Millisecond)
	p.AtLeast("retry_attempts", c.RetryAttempts, 1)
	p.AtLeastDuration("retry_min_backoff", c.RetryMinBackoff, time.Millisecond)
	p.AtLeastDuration("retry_max_backoff", c.RetryMaxBackoff, time.Millisecond)
	if c.RetryMaxBackoff < c.RetryMinBackoff {
		p.Add("retry_min_backoff", c.RetryMinBackoff, "need 0 < retry_min_backoff <= retry_max_backoff (%s)", c.RetryMaxBackoff)
	}
	if c.SpoolMaxBytes < 0 {
		p.Add("spool_max_bytes", c.SpoolMaxBytes, "must not be negative")
	}
	if c.StoreClientIP < ClientIPAnonymous || c.StoreClientIP > ClientIPNever {
		p.Add("store_client_ip", int(c.StoreClientIP), "must be one of anonymous, always, never")
	}
	return p.Err()
}
