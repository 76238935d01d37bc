package store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// Backend selects where behaviour and quota state live.
type Backend string

// Store backends.
const (
	// BackendMemory keeps state in the process: the default for one
	// replica and for `make run`.
	BackendMemory Backend = "memory"
	// BackendRedis shares state between replicas and survives restarts.
	BackendRedis Backend = "redis"
)

// Config selects and sizes the state store (store.*).
type Config struct {
	Backend Backend      `koanf:"backend"`
	Redis   RedisConfig  `koanf:"redis"`
	Memory  MemoryConfig `koanf:"memory"`
}

// RedisConfig is the shared Redis for several replicas (store.redis.*).
// The topology follows from the addresses: one address is a single Redis;
// with MasterName they are Sentinels watching that master; otherwise
// several addresses (or Cluster with one) are a Redis Cluster's seed nodes.
type RedisConfig struct {
	Addrs []string `koanf:"addrs"`
	// MasterName is the master the Sentinels in Addrs watch.
	MasterName string `koanf:"master_name"`
	// Cluster treats a single address as a Cluster seed (a managed
	// cluster's configuration endpoint); several addresses imply it.
	Cluster bool `koanf:"cluster"`
	// Username and Password authenticate to Redis (ACL user, or the
	// requirepass password with an empty Username).
	Username string         `koanf:"username"`
	Password setting.Secret `koanf:"password"`
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// when they have their own (requirepass in sentinel.conf).
	SentinelUsername string         `koanf:"sentinel_username"`
	SentinelPassword setting.Secret `koanf:"sentinel_password"`
	// DB selects the database; a Cluster has only 0.
	DB  int            `koanf:"db"`
	TLS RedisTLSConfig `koanf:"tls"`
	// Timeout bounds each request-path call; past it the fail mode answers.
	// With TimeoutMax it is the floor of the adaptive timeout.
	Timeout time.Duration `koanf:"timeout"`
	// TimeoutMax, when above Timeout, lets the request-path timeout follow
	// what Redis currently answers in: TimeoutFactor × the p99 of recent
	// round trips, between Timeout and TimeoutMax. A saturated host (slow
	// answers) gets more time; a Redis that stops answering is not learnt
	// from, so it still fails at the last timeout (fast). 0, or a value
	// not above Timeout, keeps Timeout fixed (a configuration that raised
	// Timeout keeps it). It applies with Batch.
	TimeoutMax    time.Duration `koanf:"timeout_max"`
	TimeoutFactor float64       `koanf:"timeout_factor"`
	// Batch sends the request-path scripts of concurrent Checks in shared
	// pipelines (automatic pipelining): one write and one read for many
	// Checks instead of one round trip each. BatchMaxInFlight bounds the
	// pipelines under way at once per replica.
	Batch            bool `koanf:"batch"`
	BatchMaxInFlight int  `koanf:"batch_max_in_flight"`
	// LocalCacheTTL: a replica answers a client it saw banned (and a quota
	// window it saw exhausted) from memory for at most this long, without
	// asking Redis. A manual unban clears the cache of the replica it hits;
	// the others see it within LocalCacheTTL. 0 switches the cache off.
	// LocalCacheSize bounds its entries.
	LocalCacheTTL  time.Duration `koanf:"local_cache_ttl"`
	LocalCacheSize int           `koanf:"local_cache_size"`
	// Async answers a client's behaviour Checks from the replica's own
	// view while Redis answered for that client within AsyncMaxAge, and
	// sends each observation to Redis behind the Check (in order, in
	// shared pipelines). A Check then does not see other replicas'
	// requests of the last round trip; the first Check of a client (or
	// one quiet for AsyncMaxAge) still waits for Redis, so bans set
	// elsewhere hold at once. AsyncMaxClients bounds the clients a
	// replica keeps a view of (the least recently seen goes first; ~250
	// bytes each). Quotas always wait for Redis.
	Async           bool          `koanf:"async"`
	AsyncMaxAge     time.Duration `koanf:"async_max_age"`
	AsyncMaxClients int           `koanf:"async_max_clients"`
	PoolSize        int           `koanf:"pool_size"`
	// MaxRedirects bounds how often a Cluster command follows MOVED/ASK
	// (slots moving, a failover) before failing; each hop stays inside
	// Timeout.
	MaxRedirects int `koanf:"max_redirects"`
}

// RedisTLSConfig is TLS to Redis, Sentinels and Cluster nodes alike
// (store.redis.tls.*): the system roots, or CAFile; a client certificate
// with CertFile and KeyFile (mTLS).
type RedisTLSConfig struct {
	Enabled  bool   `koanf:"enabled"`
	CAFile   string `koanf:"ca_file"`
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ServerName overrides the name checked in the server's certificate
	// (by default the host of the address dialled).
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any server certificate: tests only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// Topology is how RedisConfig's addresses are used.
type Topology string

// Redis topologies.
const (
	TopologySingle   Topology = "single"
	TopologyCluster  Topology = "cluster"
	TopologySentinel Topology = "sentinel"
)

// Topology reports which client NewRedisClient builds.
func (c RedisConfig) Topology() Topology {
	switch {
	case c.MasterName != "":
		return TopologySentinel
	case len(c.Addrs) > 1 || c.Cluster:
		return TopologyCluster
	default:
		return TopologySingle
	}
}

// MemoryConfig bounds the in-process store (store.memory.*).
type MemoryConfig struct {
	MaxTrackedClients int `koanf:"max_tracked_clients"`
	MaxBans           int `koanf:"max_bans"`
}

// DefaultConfig returns the memory backend, and Redis settings that keep a
// slow Redis inside the decision budget once it is chosen.
func DefaultConfig() Config {
	return Config{
		Backend: BackendMemory,
		Redis: RedisConfig{Addrs: []string{"127.0.0.1:6379"}, Timeout: 5 * time.Millisecond,
			TimeoutMax: 40 * time.Millisecond, TimeoutFactor: 3, Batch: true, BatchMaxInFlight: 2,
			LocalCacheTTL: time.Second, LocalCacheSize: 100_000,
			Async: true, AsyncMaxAge: time.Second, AsyncMaxClients: 100_000,
			PoolSize: 64, MaxRedirects: 2},
		Memory: MemoryConfig{MaxTrackedClients: 1_000_000, MaxBans: 100_000},
	}
}

// Validate reports every problem at once, named by its YAML key (store.*).
func (c Config) Validate() error {
	p := setting.Section("store")
	p.OneOf("backend", string(c.Backend), string(BackendMemory), string(BackendRedis))
	r := c.Redis
	if c.Backend == BackendRedis && len(r.Addrs) == 0 {
		p.Add("redis.addrs", nil, "must list at least one host:port")
	}
	for i, a := range r.Addrs {
		p.Addr(fmt.Sprintf("redis.addrs[%d]", i), a, true)
	}
	if r.Topology() == TopologyCluster && r.DB != 0 {
		p.Add("redis.db", r.DB, "must be 0 with a Redis Cluster (several addrs or cluster: true)")
	}
	if r.MasterName != "" && r.Cluster {
		p.Add("redis.cluster", r.Cluster, "cannot be set with master_name (Sentinel)")
	}
	if r.MasterName == "" && (r.SentinelUsername != "" || r.SentinelPassword != "") {
		p.Add("redis.sentinel_password", nil, "needs master_name (Sentinel)")
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		p.Add("redis.tls", nil, "cert_file and key_file must be set together")
	}
	if !r.TLS.Enabled && (r.TLS.CAFile != "" || r.TLS.CertFile != "" || r.TLS.ServerName != "" || r.TLS.InsecureSkipVerify) {
		p.Add("redis.tls.enabled", false, "must be true when other redis.tls keys are set")
	}
	p.AtLeastDuration("redis.timeout", r.Timeout, time.Millisecond)
	if r.TimeoutMax != 0 && r.TimeoutMax < time.Millisecond {
		p.Add("redis.timeout_max", r.TimeoutMax, "must be 0 (fixed timeout) or at least 1ms")
	}
	if r.TimeoutFactor < 1 || r.TimeoutFactor > 100 {
		p.Add("redis.timeout_factor", r.TimeoutFactor, "must be between 1 and 100")
	}
	p.Between("redis.batch_max_in_flight", r.BatchMaxInFlight, 1, 64)
	if r.LocalCacheTTL != 0 && (r.LocalCacheTTL < time.Millisecond || r.LocalCacheTTL > time.Minute) {
		p.Add("redis.local_cache_ttl", r.LocalCacheTTL, "must be 0 (off) or between 1ms and 1m")
	}
	p.AtLeast("redis.local_cache_size", r.LocalCacheSize, 1)
	if r.Async && (r.AsyncMaxAge < 10*time.Millisecond || r.AsyncMaxAge > time.Minute) {
		p.Add("redis.async_max_age", r.AsyncMaxAge, "must be between 10ms and 1m with async")
	}
	p.AtLeast("redis.async_max_clients", r.AsyncMaxClients, 1)
	p.NonNegative("redis.db", r.DB)
	p.AtLeast("redis.pool_size", r.PoolSize, 1)
	p.Between("redis.max_redirects", r.MaxRedirects, 0, 16)
	p.AtLeast("memory.max_tracked_clients", c.Memory.MaxTrackedClients, 1)
	p.AtLeast("memory.max_bans", c.Memory.MaxBans, 1)
	return p.Err()
}

// NewRedisClient returns the Redis client behaviour scoring and quotas
// share: a *redis.Client, a Sentinel-backed failover client or a
// *redis.ClusterClient (see RedisConfig.Topology). Its settings keep a slow
// or dead Redis inside the decision budget: deadlines come from each call's
// context, a failed dial is not retried five times, and a command whose
// reply was lost is not sent again (Script also marks its scripts so a
// Cluster client does not: a re-run script would count a request twice).
func NewRedisClient(c RedisConfig) (redis.UniversalClient, error) {
	var tlsConf *tls.Config
	if c.TLS.Enabled {
		var err error
		if tlsConf, err = c.TLS.config(); err != nil {
			return nil, err
		}
	}
	o := &redis.UniversalOptions{
		Addrs: c.Addrs, MasterName: c.MasterName, IsClusterMode: c.Topology() == TopologyCluster,
		Username: c.Username, Password: c.Password.Reveal(), DB: c.DB,
		SentinelUsername: c.SentinelUsername, SentinelPassword: c.SentinelPassword.Reveal(),
		TLSConfig:             tlsConf,
		PoolSize:              c.PoolSize,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		// Cluster: MOVED/ASK hops and the one retry on another node after
		// a connection error, each bounded by the caller's context.
		MaxRedirects: c.MaxRedirects,
	}
	if c.MaxRedirects == 0 {
		o.MaxRedirects = -1 // go-redis reads 0 as its default (3)
	}
	return redis.NewUniversalClient(o), nil
}

// config builds the tls.Config, reading the files.
func (t RedisTLSConfig) config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("store.redis.tls.ca_file: no PEM certificate in " + t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.tls.cert_file/key_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
