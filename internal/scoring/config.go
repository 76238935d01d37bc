package scoring

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// BehaviorConfig holds every threshold and weight of the behaviour rules.
// A zero weight disables a scoring signal; a zero instant-block threshold
// disables that rule.
type BehaviorConfig struct {
	// GraceRequests: a client's first GraceRequests requests are never
	// scored (the instant rules still apply).
	GraceRequests int
	// BlockThreshold: a score at or above it bans and denies.
	BlockThreshold int
	// GreyThreshold: a score at or above it (and below BlockThreshold) asks
	// the LLM in the background.
	GreyThreshold int

	// BlockEmptyUserAgent bans requests without a user-agent at once.
	BlockEmptyUserAgent bool

	// RateWindow is the request-rate window. RateBlock requests in it ban at
	// once; RateSuspect (and up) adds RateWeight.
	RateWindow  time.Duration
	RateBlock   int
	RateSuspect int
	RateWeight  int

	// ErrorWindow is the error-rate window over upstream responses (our own
	// denials excluded). ErrorBlockRatio bans at once, ErrorSuspectRatio adds
	// ErrorWeight; neither applies below ErrorMinSample responses.
	ErrorWindow       time.Duration
	ErrorBlockRatio   float64
	ErrorSuspectRatio float64
	ErrorMinSample    int
	ErrorWeight       int

	// SuspiciousUserAgents are case-insensitive substrings of tool user
	// agents; a match adds SuspiciousUAWeight.
	SuspiciousUserAgents []string
	SuspiciousUAWeight   int

	// SensitivePaths are case-insensitive path prefixes (matched on the
	// cleaned, percent-decoded path); a match adds SensitiveWeight.
	SensitivePaths  []string
	SensitiveWeight int

	// DistinctEndpoints or more distinct paths within DistinctWindow add
	// DistinctWeight. TrackedEndpoints caps the paths remembered per client
	// and must be at least DistinctEndpoints.
	DistinctWindow    time.Duration
	DistinctEndpoints int
	DistinctWeight    int
	TrackedEndpoints  int

	// SequentialRun or more requests on one route template with IDs
	// ascending by one add SequentialWeight. TrackedTemplates caps the
	// templates remembered per client.
	SequentialRun    int
	SequentialWeight int
	TrackedTemplates int

	// An endpoint resting for IdleBefore and then hit BurstCount times
	// within BurstWindow adds BurstWeight.
	IdleBefore  time.Duration
	BurstWindow time.Duration
	BurstCount  int
	BurstWeight int

	// StateTTL is how long a silent client's windows are kept; a client
	// silent for longer starts afresh (including its grace period).
	StateTTL time.Duration

	// BanTTL is the first ban's length; each repeat offence within
	// OffenceMemory multiplies it by BanEscalation, up to BanMaxTTL.
	BanTTL        time.Duration
	BanEscalation int
	BanMaxTTL     time.Duration
	OffenceMemory time.Duration

	// IPv6Prefix groups IPv6 clients by network: a client's /64 is one
	// client by default, since a host picks addresses in its /64 freely.
	// 128 tracks each address.
	IPv6Prefix int

	// LLM grey-zone questions.
	LLM LLMConfig
}

// LLMConfig tunes the background questions for grey-zone clients.
type LLMConfig struct {
	// MinConfidence is the confidence a BLOCK verdict needs to ban.
	MinConfidence float64
	// QueueSize bounds pending questions; a full queue drops the question.
	QueueSize int
	// Workers ask concurrently.
	Workers int
	// Timeout bounds one question.
	Timeout time.Duration
	// CacheTTL keeps a client's verdict; while cached it is not asked again.
	CacheTTL time.Duration
	// CacheSize bounds cached verdicts.
	CacheSize int
	// StoreTimeout bounds the store call that bans after a BLOCK verdict.
	StoreTimeout time.Duration
}

// DefaultSuspiciousUserAgents are tools and scanners rather than browsers.
var DefaultSuspiciousUserAgents = []string{
	"curl", "wget", "scrapy", "python-requests", "python-urllib", "aiohttp",
	"go-http-client", "httpie", "libwww-perl", "lwp-trivial", "java/",
	"apache-httpclient", "nikto", "sqlmap", "nmap", "masscan", "zgrab",
	"nuclei", "dirbuster", "gobuster", "wfuzz", "ffuf", "phantomjs",
	"headlesschrome",
}

// DefaultSensitivePaths are django-smart-layer's defaults.
var DefaultSensitivePaths = []string{"/admin", "/.env", "/api/token"}

// DefaultBehaviorConfig returns django-smart-layer's thresholds.
func DefaultBehaviorConfig() BehaviorConfig {
	return BehaviorConfig{
		GraceRequests:        20,
		BlockThreshold:       8,
		GreyThreshold:        4,
		BlockEmptyUserAgent:  true,
		RateWindow:           10 * time.Second,
		RateBlock:            50,
		RateSuspect:          20,
		RateWeight:           3,
		ErrorWindow:          2 * time.Minute,
		ErrorBlockRatio:      0.75,
		ErrorSuspectRatio:    0.40,
		ErrorMinSample:       10,
		ErrorWeight:          2,
		SuspiciousUserAgents: append([]string(nil), DefaultSuspiciousUserAgents...),
		SuspiciousUAWeight:   2,
		SensitivePaths:       append([]string(nil), DefaultSensitivePaths...),
		SensitiveWeight:      4,
		DistinctWindow:       time.Minute,
		DistinctEndpoints:    15,
		DistinctWeight:       2,
		TrackedEndpoints:     32,
		SequentialRun:        5,
		SequentialWeight:     5,
		TrackedTemplates:     8,
		IdleBefore:           10 * time.Minute,
		BurstWindow:          10 * time.Second,
		BurstCount:           10,
		BurstWeight:          2,
		StateTTL:             time.Hour,
		BanTTL:               time.Hour,
		BanEscalation:        2,
		BanMaxTTL:            24 * time.Hour,
		OffenceMemory:        7 * 24 * time.Hour,
		IPv6Prefix:           64,
		LLM: LLMConfig{
			MinConfidence: 0.85,
			QueueSize:     256,
			Workers:       2,
			Timeout:       5 * time.Second,
			CacheTTL:      10 * time.Minute,
			CacheSize:     10000,
			StoreTimeout:  100 * time.Millisecond,
		},
	}
}

// Validate reports every invalid field, named as in the YAML (behavior.*).
func (c BehaviorConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("behavior.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	nonNeg := func(field string, v int) {
		if v < 0 {
			bad(field, "must not be negative, got %d", v)
		}
	}
	positiveDur := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be positive, got %s", d)
		}
	}
	nonNeg("grace_requests", c.GraceRequests)
	if c.BlockThreshold <= 0 {
		bad("block_threshold", "must be positive, got %d", c.BlockThreshold)
	}
	if c.GreyThreshold <= 0 || c.GreyThreshold > c.BlockThreshold {
		bad("grey_threshold", "must be in 1..block_threshold (%d), got %d", c.BlockThreshold, c.GreyThreshold)
	}
	positiveDur("rate_window", c.RateWindow)
	nonNeg("rate_block", c.RateBlock)
	nonNeg("rate_suspect", c.RateSuspect)
	nonNeg("rate_weight", c.RateWeight)
	if c.RateBlock > 0 && c.RateSuspect >= c.RateBlock {
		bad("rate_suspect", "must be below rate_block (%d), got %d", c.RateBlock, c.RateSuspect)
	}
	positiveDur("error_window", c.ErrorWindow)
	ratio := func(field string, v float64) {
		if !(v >= 0 && v <= 1) {
			bad(field, "must be in [0,1], got %v", v)
		}
	}
	ratio("error_block_ratio", c.ErrorBlockRatio)
	ratio("error_suspect_ratio", c.ErrorSuspectRatio)
	if c.ErrorBlockRatio > 0 && c.ErrorSuspectRatio >= c.ErrorBlockRatio {
		bad("error_suspect_ratio", "must be below error_block_ratio (%v), got %v", c.ErrorBlockRatio, c.ErrorSuspectRatio)
	}
	if c.ErrorMinSample < 1 {
		bad("error_min_sample", "must be at least 1, got %d", c.ErrorMinSample)
	}
	nonNeg("error_weight", c.ErrorWeight)
	for i, s := range c.SuspiciousUserAgents {
		if strings.TrimSpace(s) == "" {
			bad(fmt.Sprintf("suspicious_user_agents[%d]", i), "must not be empty")
		}
	}
	nonNeg("suspicious_ua_weight", c.SuspiciousUAWeight)
	for i, p := range c.SensitivePaths {
		if !strings.HasPrefix(p, "/") {
			bad(fmt.Sprintf("sensitive_paths[%d]", i), "must start with /, got %q", p)
		}
	}
	nonNeg("sensitive_weight", c.SensitiveWeight)
	positiveDur("distinct_window", c.DistinctWindow)
	nonNeg("distinct_endpoints", c.DistinctEndpoints)
	nonNeg("distinct_weight", c.DistinctWeight)
	if c.TrackedEndpoints < 1 || c.TrackedEndpoints > 1024 {
		bad("tracked_endpoints", "must be in 1..1024, got %d", c.TrackedEndpoints)
	} else if c.TrackedEndpoints < c.DistinctEndpoints {
		bad("tracked_endpoints", "must be at least distinct_endpoints (%d), got %d", c.DistinctEndpoints, c.TrackedEndpoints)
	}
	nonNeg("sequential_run", c.SequentialRun)
	nonNeg("sequential_weight", c.SequentialWeight)
	if c.TrackedTemplates < 1 || c.TrackedTemplates > 256 {
		bad("tracked_templates", "must be in 1..256, got %d", c.TrackedTemplates)
	}
	positiveDur("idle_before", c.IdleBefore)
	positiveDur("burst_window", c.BurstWindow)
	nonNeg("burst_count", c.BurstCount)
	nonNeg("burst_weight", c.BurstWeight)
	positiveDur("state_ttl", c.StateTTL)
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"rate_window", c.RateWindow}, {"error_window", c.ErrorWindow}, {"distinct_window", c.DistinctWindow},
		{"idle_before + burst_window", c.IdleBefore + c.BurstWindow}} {
		if c.StateTTL < w.d {
			bad("state_ttl", "must cover %s (%s), got %s", w.name, w.d, c.StateTTL)
		}
	}
	if c.BanTTL < time.Second {
		bad("ban_ttl", "must be at least 1s, got %s", c.BanTTL)
	}
	if c.BanEscalation < 1 {
		bad("ban_escalation", "must be at least 1, got %d", c.BanEscalation)
	}
	if c.BanMaxTTL < c.BanTTL {
		bad("ban_max_ttl", "must be at least ban_ttl (%s), got %s", c.BanTTL, c.BanMaxTTL)
	}
	nonNegDur := func(field string, d time.Duration) {
		if d < 0 {
			bad(field, "must not be negative, got %s", d)
		}
	}
	nonNegDur("offence_memory", c.OffenceMemory)
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		bad("ipv6_prefix", "must be in 1..128, got %d", c.IPv6Prefix)
	}
	if !(c.LLM.MinConfidence >= 0 && c.LLM.MinConfidence <= 1) {
		bad("llm.min_confidence", "must be in [0,1], got %v", c.LLM.MinConfidence)
	}
	if c.LLM.QueueSize < 1 {
		bad("llm.queue_size", "must be at least 1, got %d", c.LLM.QueueSize)
	}
	if c.LLM.Workers < 1 {
		bad("llm.workers", "must be at least 1, got %d", c.LLM.Workers)
	}
	positiveDur("llm.timeout", c.LLM.Timeout)
	positiveDur("llm.cache_ttl", c.LLM.CacheTTL)
	if c.LLM.CacheSize < 1 {
		bad("llm.cache_size", "must be at least 1, got %d", c.LLM.CacheSize)
	}
	positiveDur("llm.store_timeout", c.LLM.StoreTimeout)
	return errors.Join(errs...)
}

// windows derives the store's window sizes from the configuration.
func (c BehaviorConfig) windows() Windows {
	return Windows{
		Rate:         c.RateWindow,
		Errors:       c.ErrorWindow,
		Distinct:     c.DistinctWindow,
		Idle:         c.IdleBefore,
		Burst:        c.BurstWindow,
		StateTTL:     c.StateTTL,
		MaxEndpoints: c.TrackedEndpoints,
		MaxTemplates: c.TrackedTemplates,
	}
}
