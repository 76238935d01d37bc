// Package config holds smartlayer's one typed configuration, loaded with koanf
// in layers — built-in defaults, a YAML file, SMARTLAYER_* environment
// variables, command-line flags — and validated with the offending key named.
package config

import (
	"fmt"
	"time"
)

// Config is the whole configuration. It is loaded once (and again on hot
// reload) and passed down by value; nothing re-reads the environment later.
type Config struct {
	Server    Server    `koanf:"server"`
	Log       Log       `koanf:"log"`
	Identity  Identity  `koanf:"identity"`
	Store     Store     `koanf:"store"`
	Behavior  Behavior  `koanf:"behavior"`
	Payload   Payload   `koanf:"payload"`
	Quota     Quota     `koanf:"quota"`
	LLM       LLM       `koanf:"llm"`
	AccessLog AccessLog `koanf:"accesslog"`
	Report    Report    `koanf:"report"`
}

// Server configures listeners and the request-path guarantees.
type Server struct {
	AuthzAddr  string `koanf:"authz_addr"`
	ALSAddr    string `koanf:"als_addr"`
	AdminAddr  string `koanf:"admin_addr"`
	AdminToken Secret `koanf:"admin_token"`
	// DecisionBudget bounds the time one Check may take; past it the
	// configured FailMode answers.
	DecisionBudget time.Duration `koanf:"decision_budget"`
	FailMode       FailMode      `koanf:"fail_mode"`
	// ShutdownTimeout bounds draining in-flight Checks and flushing logs.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	// MaxRecvMsgBytes caps one gRPC message (CheckRequest with body, ALS batch).
	MaxRecvMsgBytes int `koanf:"max_recv_msg_bytes"`
	TLS             TLS `koanf:"tls"`
}

// TLS enables TLS (and mTLS with ClientCAFile) on the gRPC listeners.
type TLS struct {
	CertFile     string `koanf:"cert_file"`
	KeyFile      string `koanf:"key_file"`
	ClientCAFile string `koanf:"client_ca_file"`
}

// Log configures the slog handler.
type Log struct {
	Level  string `koanf:"level"`  // debug, info, warn, error
	Format string `koanf:"format"` // text, json
}

// Identity says how a request's client, user and plan are found.
type Identity struct {
	ClientIP      ClientIP `koanf:"client_ip"`
	UserHeader    string   `koanf:"user_header"`
	PlanHeader    string   `koanf:"plan_header"`
	AnonymousPlan string   `koanf:"anonymous_plan"`
	// JWT reads user and plan from the payload Envoy's jwt_authn filter
	// writes into metadata (payload_in_metadata), before the headers.
	JWT JWT `koanf:"jwt"`
}

// ClientIP selects the client address.
type ClientIP struct {
	// Source is "xff" (x-forwarded-for, honouring TrustedHops) or "peer"
	// (attributes.source.address only).
	Source string `koanf:"source"`
	// TrustedHops has Envoy's xff_num_trusted_hops meaning counted from the
	// right of x-forwarded-for, where Envoy itself appended the peer: 1 takes
	// the last entry, 2 the one before it.
	TrustedHops int `koanf:"trusted_hops"`
}

// JWT locates jwt_authn's payload in the CheckRequest metadata_context.
type JWT struct {
	Filter     string `koanf:"filter"`      // filter_metadata namespace
	PayloadKey string `koanf:"payload_key"` // jwt_authn payload_in_metadata
	UserClaim  string `koanf:"user_claim"`
	PlanClaim  string `koanf:"plan_claim"`
}

// Store selects where behaviour and quota state live.
type Store struct {
	Backend Backend     `koanf:"backend"`
	Redis   Redis       `koanf:"redis"`
	Memory  MemoryStore `koanf:"memory"`
}

// Redis is the shared store for several replicas.
type Redis struct {
	Addr     string        `koanf:"addr"`
	Username string        `koanf:"username"`
	Password Secret        `koanf:"password"`
	DB       int           `koanf:"db"`
	Timeout  time.Duration `koanf:"timeout"`
	PoolSize int           `koanf:"pool_size"`
}

// MemoryStore bounds the in-process store.
type MemoryStore struct {
	MaxTrackedClients int `koanf:"max_tracked_clients"`
	MaxBans           int `koanf:"max_bans"`
}

// Behavior configures django-smart-layer's anomaly detector. A weight of 0
// switches a signal off; a threshold of 0 switches an instant rule off.
type Behavior struct {
	Mode           Mode `koanf:"mode"`
	GraceRequests  int  `koanf:"grace_requests"`
	GreyThreshold  int  `koanf:"grey_threshold"`
	BlockThreshold int  `koanf:"block_threshold"`

	BlockEmptyUserAgent bool `koanf:"block_empty_user_agent"`

	RateWindow  time.Duration `koanf:"rate_window"`
	RateBlock   int           `koanf:"rate_block"`
	RateSuspect int           `koanf:"rate_suspect"`
	RateWeight  int           `koanf:"rate_weight"`

	ErrorWindow       time.Duration `koanf:"error_window"`
	ErrorBlockRatio   float64       `koanf:"error_block_ratio"`
	ErrorSuspectRatio float64       `koanf:"error_suspect_ratio"`
	ErrorMinSample    int           `koanf:"error_min_sample"`
	ErrorWeight       int           `koanf:"error_weight"`

	SuspiciousUserAgents []string `koanf:"suspicious_user_agents"`
	SuspiciousUAWeight   int      `koanf:"suspicious_ua_weight"`
	SensitivePaths       []string `koanf:"sensitive_paths"`
	SensitiveWeight      int      `koanf:"sensitive_weight"`

	DistinctWindow    time.Duration `koanf:"distinct_window"`
	DistinctEndpoints int           `koanf:"distinct_endpoints"`
	DistinctWeight    int           `koanf:"distinct_weight"`
	TrackedEndpoints  int           `koanf:"tracked_endpoints"`

	SequentialRun    int `koanf:"sequential_run"`
	SequentialWeight int `koanf:"sequential_weight"`
	TrackedTemplates int `koanf:"tracked_templates"`

	IdleBefore  time.Duration `koanf:"idle_before"`
	BurstWindow time.Duration `koanf:"burst_window"`
	BurstCount  int           `koanf:"burst_count"`
	BurstWeight int           `koanf:"burst_weight"`

	// StateTTL forgets a client silent this long (a new grace period).
	StateTTL      time.Duration `koanf:"state_ttl"`
	BanTTL        time.Duration `koanf:"ban_ttl"`
	BanEscalation int           `koanf:"ban_escalation"`
	BanMaxTTL     time.Duration `koanf:"ban_max_ttl"`
	OffenceMemory time.Duration `koanf:"offence_memory"`
	// IPv6Prefix groups IPv6 clients by network.
	IPv6Prefix int `koanf:"ipv6_prefix"`

	AllowCIDRs []string `koanf:"allow_cidrs"`
	DenyCIDRs  []string `koanf:"deny_cidrs"`

	LLM BehaviorLLM `koanf:"llm"`
}

// BehaviorLLM bounds the grey-zone questions to the LLM.
type BehaviorLLM struct {
	MinConfidence float64       `koanf:"min_confidence"`
	QueueSize     int           `koanf:"queue_size"`
	Workers       int           `koanf:"workers"`
	Timeout       time.Duration `koanf:"timeout"`
	CacheTTL      time.Duration `koanf:"cache_ttl"`
	CacheSize     int           `koanf:"cache_size"`
	StoreTimeout  time.Duration `koanf:"store_timeout"`
}

// Payload configures the request validator.
type Payload struct {
	Mode         Mode `koanf:"mode"`
	BlockScore   int  `koanf:"block_score"`
	MaxBodyBytes int  `koanf:"max_body_bytes"`
	MaxJSONDepth int  `koanf:"max_json_depth"`
	// Headers are inspected (a trailing * matches a prefix) unless listed
	// in SkipHeaders.
	Headers       []string      `koanf:"headers"`
	SkipHeaders   []string      `koanf:"skip_headers"`
	LLMMode       LLMMode       `koanf:"llm_mode"`
	MinConfidence float64       `koanf:"min_confidence"`
	LLMMaxExcerpt int           `koanf:"llm_max_excerpt"`
	LLMQueueSize  int           `koanf:"llm_queue_size"`
	LLMWorkers    int           `koanf:"llm_workers"`
	LLMTimeout    time.Duration `koanf:"llm_timeout"`
	// VerdictCacheSize and VerdictTTL bound the cache of LLM verdicts by
	// payload hash.
	VerdictCacheSize int           `koanf:"verdict_cache_size"`
	VerdictTTL       time.Duration `koanf:"verdict_ttl"`
}

// Quota configures plan quotas.
type Quota struct {
	Mode Mode `koanf:"mode"`
	// Plans maps plan → route → window → limit; internal/quota validates
	// the inner shape.
	Plans map[string]map[string]map[string]int64 `koanf:"plans"`
}

// LLM configures the OpenAI-compatible endpoint used for grey-zone cases and
// the report narrative. No BaseURL means no LLM: everything fails open.
type LLM struct {
	BaseURL string `koanf:"base_url"`
	APIKey  Secret `koanf:"api_key"`
	Model   string `koanf:"model"`
	// Timeout bounds one verdict call; NarrativeTimeout the report's.
	Timeout          time.Duration `koanf:"timeout"`
	NarrativeTimeout time.Duration `koanf:"narrative_timeout"`
	MaxConcurrency   int           `koanf:"max_concurrency"`
	QueueSize        int           `koanf:"queue_size"`
	CacheTTL         time.Duration `koanf:"cache_ttl"`
	CacheSize        int           `koanf:"cache_size"`
	// BreakerFailures consecutive failures stop calls for BreakerCooldown.
	BreakerFailures int           `koanf:"breaker_failures"`
	BreakerCooldown time.Duration `koanf:"breaker_cooldown"`
	MaxRetries      int           `koanf:"max_retries"`
	// Output is json_schema (response_format) or text (schema in the prompt).
	Output string `koanf:"output"`
}

// AccessLog configures the ALS receiver and its ClickHouse sink.
type AccessLog struct {
	ClickHouse    ClickHouse    `koanf:"clickhouse"`
	BatchRows     int           `koanf:"batch_rows"`
	FlushInterval time.Duration `koanf:"flush_interval"`
	// QueueBatches sealed batches wait in memory before going to the spool;
	// MaxInflight inserts run at once.
	QueueBatches    int           `koanf:"queue_batches"`
	MaxInflight     int           `koanf:"max_inflight"`
	InsertTimeout   time.Duration `koanf:"insert_timeout"`
	RetryAttempts   int           `koanf:"retry_attempts"`
	RetryMinBackoff time.Duration `koanf:"retry_min_backoff"`
	RetryMaxBackoff time.Duration `koanf:"retry_max_backoff"`
	// SpoolDir holds batches ClickHouse did not take; empty means a
	// directory under $TMPDIR. Mount a volume there in Kubernetes.
	SpoolDir      string `koanf:"spool_dir"`
	SpoolMaxBytes int64  `koanf:"spool_max_bytes"`
	// StoreClientIP is "anonymous" (only for requests without a user id, as
	// django-smart-layer does), "always" or "never".
	StoreClientIP string `koanf:"store_client_ip"`
}

// ClickHouse locates the access-log database. No Addr disables the sink.
type ClickHouse struct {
	Addr        []string      `koanf:"addr"`
	Database    string        `koanf:"database"`
	Username    string        `koanf:"username"`
	Password    Secret        `koanf:"password"`
	DialTimeout time.Duration `koanf:"dial_timeout"`
}

// Report configures the daily reporter.
type Report struct {
	// RetentionDays drops access_log days older than this; 0 keeps all.
	RetentionDays   int           `koanf:"retention_days"`
	Timezone        string        `koanf:"timezone"`
	OutDir          string        `koanf:"out_dir"`
	WebhookURL      string        `koanf:"webhook_url"`
	DeliveryTimeout time.Duration `koanf:"delivery_timeout"`
	SMTP            SMTP          `koanf:"smtp"`
	// SensitivePaths are the prefixes slow-drip detection watches.
	SensitivePaths []string `koanf:"sensitive_paths"`
	SlowDrip       SlowDrip `koanf:"slow_drip"`
	// MinRouteRequests: routes with fewer requests are not ranked by latency.
	MinRouteRequests int           `koanf:"min_route_requests"`
	TopN             int           `koanf:"top_n"`
	Health           Health        `koanf:"health"`
	QueryTimeout     time.Duration `koanf:"query_timeout"`
	// MaxThreads caps ClickHouse threads per query; 0 is the server's default.
	MaxThreads       int           `koanf:"max_threads"`
	NarrativeTimeout time.Duration `koanf:"narrative_timeout"`
}

// SlowDrip finds clients that stay under rate rules: present on MinDays of
// the last WindowDays, at most MaxDailyRequests a day, on sensitive or
// mostly failing (MinErrorRatio) routes.
type SlowDrip struct {
	WindowDays       int     `koanf:"window_days"`
	MinDays          int     `koanf:"min_days"`
	MaxDailyRequests int     `koanf:"max_daily_requests"`
	MinErrorRatio    float64 `koanf:"min_error_ratio"`
}

// Health states the report's health rule: critical at or above any
// critical figure, degraded at or above any degraded one.
type Health struct {
	DegradedErrorRate       float64       `koanf:"degraded_error_rate"`
	CriticalErrorRate       float64       `koanf:"critical_error_rate"`
	DegradedServerErrorRate float64       `koanf:"degraded_server_error_rate"`
	CriticalServerErrorRate float64       `koanf:"critical_server_error_rate"`
	DegradedP95             time.Duration `koanf:"degraded_p95"`
	CriticalP95             time.Duration `koanf:"critical_p95"`
}

// SMTP delivers the report by e-mail when Host is set.
type SMTP struct {
	Host     string   `koanf:"host"`
	Port     int      `koanf:"port"`
	From     string   `koanf:"from"`
	To       []string `koanf:"to"`
	Username string   `koanf:"username"`
	Password Secret   `koanf:"password"`
}

// Default returns the built-in defaults: every listener on its documented
// port, the memory store, every module enforcing, no LLM, no ClickHouse.
func Default() Config {
	return Config{
		Server: Server{
			AuthzAddr: ":9001", ALSAddr: ":9002", AdminAddr: ":9090",
			DecisionBudget: 50 * time.Millisecond, FailMode: FailAllow,
			ShutdownTimeout: 30 * time.Second, MaxRecvMsgBytes: 8 << 20,
		},
		Log: Log{Level: "info", Format: "text"},
		Identity: Identity{
			ClientIP:   ClientIP{Source: "xff", TrustedHops: 1},
			UserHeader: "x-user-id", PlanHeader: "x-user-plan", AnonymousPlan: "anonymous",
			JWT: JWT{Filter: "envoy.filters.http.jwt_authn", PayloadKey: "jwt_payload",
				UserClaim: "sub", PlanClaim: "plan"},
		},
		Store: Store{
			Backend: BackendMemory,
			Redis:   Redis{Addr: "127.0.0.1:6379", Timeout: 5 * time.Millisecond, PoolSize: 64},
			Memory:  MemoryStore{MaxTrackedClients: 1_000_000, MaxBans: 100_000},
		},
		Behavior: Behavior{
			Mode: ModeEnforce, GraceRequests: 20, GreyThreshold: 4, BlockThreshold: 8,
			BlockEmptyUserAgent: true,
			RateWindow:          10 * time.Second, RateBlock: 50, RateSuspect: 20, RateWeight: 3,
			ErrorWindow: 2 * time.Minute, ErrorBlockRatio: 0.75, ErrorSuspectRatio: 0.40,
			ErrorMinSample: 10, ErrorWeight: 2,
			SuspiciousUserAgents: []string{"curl", "wget", "scrapy", "python-requests", "python-urllib",
				"aiohttp", "go-http-client", "httpie", "libwww-perl", "lwp-trivial", "java/",
				"apache-httpclient", "nikto", "sqlmap", "nmap", "masscan", "zgrab", "nuclei", "dirbuster",
				"gobuster", "wfuzz", "ffuf", "phantomjs", "headlesschrome"},
			SuspiciousUAWeight: 2,
			SensitivePaths:     []string{"/admin", "/.env", "/api/token"},
			SensitiveWeight:    4,
			DistinctWindow:     time.Minute, DistinctEndpoints: 15, DistinctWeight: 2, TrackedEndpoints: 32,
			SequentialRun: 5, SequentialWeight: 5, TrackedTemplates: 8,
			IdleBefore: 10 * time.Minute, BurstWindow: 10 * time.Second, BurstCount: 10, BurstWeight: 2,
			StateTTL: time.Hour, BanTTL: time.Hour, BanEscalation: 2, BanMaxTTL: 24 * time.Hour,
			OffenceMemory: 7 * 24 * time.Hour, IPv6Prefix: 64,
			LLM: BehaviorLLM{MinConfidence: 0.85, QueueSize: 256, Workers: 2, Timeout: 5 * time.Second,
				CacheTTL: 10 * time.Minute, CacheSize: 10_000, StoreTimeout: 100 * time.Millisecond},
		},
		Payload: Payload{Mode: ModeEnforce, BlockScore: 3, MaxBodyBytes: 64 << 10, MaxJSONDepth: 32,
			Headers: []string{"user-agent", "referer", "cookie", "x-*"},
			SkipHeaders: []string{"x-request-id", "x-forwarded-*", "x-real-ip", "x-envoy-*",
				"x-b3-*", "x-ot-span-context", "x-amzn-trace-id", "x-cloud-trace-context", "x-datadog-*",
				"x-user-id", "x-user-plan", "x-smartlayer-*", "x-client-trace-id"},
			LLMMode: LLMAsync, MinConfidence: 0.85, LLMMaxExcerpt: 2048, LLMQueueSize: 256,
			LLMWorkers: 2, LLMTimeout: 5 * time.Second, VerdictCacheSize: 10_000, VerdictTTL: 24 * time.Hour},
		Quota: Quota{Mode: ModeEnforce},
		LLM: LLM{Timeout: 3 * time.Second, NarrativeTimeout: time.Minute, MaxConcurrency: 4, QueueSize: 256,
			CacheTTL: 10 * time.Minute, CacheSize: 10_000, BreakerFailures: 5, BreakerCooldown: 30 * time.Second,
			MaxRetries: 2, Output: "json_schema"},
		AccessLog: AccessLog{
			ClickHouse: ClickHouse{Database: "smartlayer", Username: "default", DialTimeout: 5 * time.Second},
			BatchRows:  50_000, FlushInterval: time.Second, QueueBatches: 8, MaxInflight: 2,
			InsertTimeout: 30 * time.Second, RetryAttempts: 3,
			RetryMinBackoff: 100 * time.Millisecond, RetryMaxBackoff: 5 * time.Second,
			SpoolMaxBytes: 1 << 30, StoreClientIP: "anonymous",
		},
		Report: Report{RetentionDays: 30, Timezone: "UTC", DeliveryTimeout: 10 * time.Second, SMTP: SMTP{Port: 25},
			SensitivePaths: []string{"/admin", "/.env", "/api/token", "/wp-login", "/wp-admin",
				"/.git", "/phpmyadmin", "/xmlrpc.php"},
			SlowDrip:         SlowDrip{WindowDays: 7, MinDays: 3, MaxDailyRequests: 50, MinErrorRatio: 0.5},
			MinRouteRequests: 20, TopN: 10,
			Health: Health{DegradedErrorRate: 0.05, CriticalErrorRate: 0.20, DegradedServerErrorRate: 0.01,
				CriticalServerErrorRate: 0.05, DegradedP95: 800 * time.Millisecond, CriticalP95: 2 * time.Second},
			QueryTimeout: 2 * time.Minute, NarrativeTimeout: time.Minute},
	}
}

// Secret is a string that never prints.
type Secret string

// String redacts a non-empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// MarshalText redacts the secret in any printed config.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Mode says whether a module denies, only records what it would deny, or
// is switched off.
type Mode string

// Modes of a pipeline module.
const (
	ModeEnforce Mode = "enforce"
	ModeShadow  Mode = "shadow"
	ModeOff     Mode = "off"
)

func (m Mode) valid() bool { return m == ModeEnforce || m == ModeShadow || m == ModeOff }

// FailMode is the decision when the pipeline cannot decide in time.
type FailMode string

// Fail modes.
const (
	FailAllow FailMode = "allow"
	FailDeny  FailMode = "deny"
)

// Backend selects the state store.
type Backend string

// Store backends.
const (
	BackendMemory Backend = "memory"
	BackendRedis  Backend = "redis"
)

// LLMMode says how borderline payloads consult the LLM.
type LLMMode string

// LLM modes for payload validation.
const (
	LLMAsync LLMMode = "async"
	LLMSync  LLMMode = "sync"
	LLMOff   LLMMode = "off"
)

// KeyError names the configuration key a problem is about.
type KeyError struct {
	Key   string
	Value any
	Msg   string
}

func (e *KeyError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s (got %v)", e.Key, e.Msg, e.Value)
}
