package scoring

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// BehaviorConfig holds every threshold and weight of the behaviour rules.
// A zero weight disables a scoring signal; a zero instant-block threshold
// disables that rule.
type BehaviorConfig struct {
	// Mode is enforce, shadow (log and count what would be denied) or off.
	Mode setting.Mode `koanf:"mode"`

	// GraceRequests: a client's first GraceRequests requests are never
	// scored (the instant rules still apply).
	GraceRequests int `koanf:"grace_requests"`
	// BlockThreshold: a score at or above it bans and denies.
	BlockThreshold int `koanf:"block_threshold"`
	// GreyThreshold: a score at or above it (and below BlockThreshold) asks
	// the LLM in the background.
	GreyThreshold int `koanf:"grey_threshold"`

	// BlockEmptyUserAgent bans requests without a user-agent at once.
	BlockEmptyUserAgent bool `koanf:"block_empty_user_agent"`

	// RateWindow is the request-rate window. RateBlock requests in it ban at
	// once; RateSuspect (and up) adds RateWeight.
	RateWindow  time.Duration `koanf:"rate_window"`
	RateBlock   int           `koanf:"rate_block"`
	RateSuspect int           `koanf:"rate_suspect"`
	RateWeight  int           `koanf:"rate_weight"`

	// ErrorWindow is the error-rate window over upstream responses (our own
	// denials excluded). ErrorBlockRatio bans at once, ErrorSuspectRatio adds
	// ErrorWeight; neither applies below ErrorMinSample responses.
	ErrorWindow       time.Duration `koanf:"error_window"`
	ErrorBlockRatio   float64       `koanf:"error_block_ratio"`
	ErrorSuspectRatio float64       `koanf:"error_suspect_ratio"`
	ErrorMinSample    int           `koanf:"error_min_sample"`
	ErrorWeight       int           `koanf:"error_weight"`

	// SuspiciousUserAgents are case-insensitive substrings of tool user
	// agents; a match adds SuspiciousUAWeight.
	SuspiciousUserAgents []string `koanf:"suspicious_user_agents"`
	SuspiciousUAWeight   int      `koanf:"suspicious_ua_weight"`

	// SensitivePaths are case-insensitive path prefixes (matched on the
	// cleaned, percent-decoded path); a match adds SensitiveWeight.
	SensitivePaths  []string `koanf:"sensitive_paths"`
	SensitiveWeight int      `koanf:"sensitive_weight"`

	// DistinctEndpoints or more distinct paths within DistinctWindow add
	// DistinctWeight. TrackedEndpoints caps the paths remembered per client
	// and must be at least DistinctEndpoints.
	DistinctWindow    time.Duration `koanf:"distinct_window"`
	DistinctEndpoints int           `koanf:"distinct_endpoints"`
	DistinctWeight    int           `koanf:"distinct_weight"`
	TrackedEndpoints  int           `koanf:"tracked_endpoints"`

	// SequentialRun or more requests on one route template with IDs
	// ascending by one add SequentialWeight. TrackedTemplates caps the
	// templates remembered per client.
	SequentialRun    int `koanf:"sequential_run"`
	SequentialWeight int `koanf:"sequential_weight"`
	TrackedTemplates int `koanf:"tracked_templates"`

	// An endpoint resting for IdleBefore and then hit BurstCount times
	// within BurstWindow adds BurstWeight.
	IdleBefore  time.Duration `koanf:"idle_before"`
	BurstWindow time.Duration `koanf:"burst_window"`
	BurstCount  int           `koanf:"burst_count"`
	BurstWeight int           `koanf:"burst_weight"`

	// StateTTL is how long a silent client's windows are kept; a client
	// silent for longer starts afresh (including its grace period).
	StateTTL time.Duration `koanf:"state_ttl"`

	// BanTTL is the first ban's length; each repeat offence within
	// OffenceMemory multiplies it by BanEscalation, up to BanMaxTTL.
	BanTTL        time.Duration `koanf:"ban_ttl"`
	BanEscalation int           `koanf:"ban_escalation"`
	BanMaxTTL     time.Duration `koanf:"ban_max_ttl"`
	OffenceMemory time.Duration `koanf:"offence_memory"`

	// IPv6Prefix groups IPv6 clients by network: a client's /64 is one
	// client by default, since a host picks addresses in its /64 freely.
	// 128 tracks each address.
	IPv6Prefix int `koanf:"ipv6_prefix"`

	// FeedbackWindow is how long a decision can be matched by its access-log
	// entry: at least this, at most twice this (both stores keep generations
	// of it; across replicas with skewed clocks, ± the skew); FeedbackMaxRecords bounds the decisions the memory backend
	// keeps (two generations of half each). FeedbackMaxSkew clamps entry
	// times to now ± it. See Decisions.
	FeedbackWindow     time.Duration `koanf:"feedback_window"`
	FeedbackMaxRecords int           `koanf:"feedback_max_records"`
	FeedbackMaxSkew    time.Duration `koanf:"feedback_max_skew"`

	// MinBanPrefixV4 and MinBanPrefixV6 are the widest networks an
	// operator may ban (POST /v1/bans): 10.0.0.0/8 is refused with the
	// default /16, 2001:db8::/24 with the default /32.
	MinBanPrefixV4 int `koanf:"min_ban_prefix_v4"`
	MinBanPrefixV6 int `koanf:"min_ban_prefix_v6"`

	// AllowCIDRs skip behaviour scoring (and are never denied by it);
	// DenyCIDRs are denied before anything else runs. Each entry is a CIDR
	// or a bare address.
	AllowCIDRs []string `koanf:"allow_cidrs"`
	DenyCIDRs  []string `koanf:"deny_cidrs"`
	// AllowCIDRsSkipPayload also skips payload inspection for AllowCIDRs
	// (behavior.allow_cidrs_skip_payload): scanners and partners the
	// operator trusts. Off by default: an allow-listed host that is
	// compromised still has its payloads inspected.
	AllowCIDRsSkipPayload bool `koanf:"allow_cidrs_skip_payload"`

	// LLM grey-zone questions.
	LLM LLMConfig `koanf:"llm"`
}

// LLMConfig tunes the background questions for grey-zone clients.
type LLMConfig struct {
	// MinConfidence is the confidence a BLOCK verdict needs to ban.
	MinConfidence float64 `koanf:"min_confidence"`
	// QueueSize bounds pending questions; a full queue drops the question.
	QueueSize int `koanf:"queue_size"`
	// Workers ask concurrently.
	Workers int `koanf:"workers"`
	// Timeout bounds one question.
	Timeout time.Duration `koanf:"timeout"`
	// CacheTTL keeps a client's verdict; while cached it is not asked again.
	CacheTTL time.Duration `koanf:"cache_ttl"`
	// CacheSize bounds cached verdicts.
	CacheSize int `koanf:"cache_size"`
	// StoreTimeout bounds the store call that bans after a BLOCK verdict.
	StoreTimeout time.Duration `koanf:"store_timeout"`
}

// DefaultSuspiciousUserAgents are tools and scanners rather than browsers.
var DefaultSuspiciousUserAgents = []string{
	"curl", "wget", "scrapy", "python-requests", "python-urllib", "aiohttp",
	"go-http-client", "httpie", "libwww-perl", "lwp-trivial", "java/",
	"apache-httpclient", "nikto", "sqlmap", "nmap", "masscan", "zgrab",
	"nuclei", "dirbuster", "gobuster", "wfuzz", "ffuf", "phantomjs",
	"headlesschrome",
}

// DefaultSensitivePaths are django-smart-layer's defaults plus the paths
// scanners probe first. The daily report's slow-drip detection watches the
// same list.
var DefaultSensitivePaths = []string{"/admin", "/.env", "/api/token", "/wp-login", "/wp-admin",
	"/.git", "/phpmyadmin", "/xmlrpc.php"}

// DefaultBehaviorConfig returns django-smart-layer's thresholds.
func DefaultBehaviorConfig() BehaviorConfig {
	return BehaviorConfig{
		Mode:                 setting.Enforce,
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
		FeedbackWindow:       time.Minute,
		FeedbackMaxRecords:   500_000,
		FeedbackMaxSkew:      30 * time.Second,
		MinBanPrefixV4:       16,
		MinBanPrefixV6:       32,
		AllowCIDRs:           []string{},
		DenyCIDRs:            []string{},
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

// Validate reports every invalid field at once, each named by its YAML
// key (behavior.*).
func (c BehaviorConfig) Validate() error {
	p := setting.Section("behavior")
	p.Mode("mode", c.Mode)
	p.NonNegative("grace_requests", c.GraceRequests)
	p.AtLeast("block_threshold", c.BlockThreshold, 1)
	if c.GreyThreshold <= 0 || c.GreyThreshold > c.BlockThreshold {
		p.Add("grey_threshold", c.GreyThreshold, "must be in 1..block_threshold (%d)", c.BlockThreshold)
	}
	p.AtLeastDuration("rate_window", c.RateWindow, time.Second)
	p.NonNegative("rate_block", c.RateBlock)
	p.NonNegative("rate_suspect", c.RateSuspect)
	p.NonNegative("rate_weight", c.RateWeight)
	if c.RateBlock > 0 && c.RateSuspect >= c.RateBlock {
		p.Add("rate_suspect", c.RateSuspect, "must be below rate_block (%d)", c.RateBlock)
	}
	p.AtLeastDuration("error_window", c.ErrorWindow, time.Second)
	p.Ratio("error_block_ratio", c.ErrorBlockRatio)
	p.Ratio("error_suspect_ratio", c.ErrorSuspectRatio)
	if c.ErrorBlockRatio > 0 && c.ErrorSuspectRatio >= c.ErrorBlockRatio {
		p.Add("error_suspect_ratio", c.ErrorSuspectRatio, "must be below error_block_ratio (%v)", c.ErrorBlockRatio)
	}
	p.AtLeast("error_min_sample", c.ErrorMinSample, 1)
	p.NonNegative("error_weight", c.ErrorWeight)
	for i, s := range c.SuspiciousUserAgents {
		if strings.TrimSpace(s) == "" {
			p.Add(fmt.Sprintf("suspicious_user_agents[%d]", i), nil, "must not be empty")
		}
	}
	p.NonNegative("suspicious_ua_weight", c.SuspiciousUAWeight)
	for i, s := range c.SensitivePaths {
		if !strings.HasPrefix(s, "/") {
			p.Add(fmt.Sprintf("sensitive_paths[%d]", i), s, "must start with /")
		}
	}
	p.NonNegative("sensitive_weight", c.SensitiveWeight)
	p.AtLeastDuration("distinct_window", c.DistinctWindow, time.Second)
	p.NonNegative("distinct_endpoints", c.DistinctEndpoints)
	p.NonNegative("distinct_weight", c.DistinctWeight)
	if c.TrackedEndpoints < 1 || c.TrackedEndpoints > 1024 {
		p.Add("tracked_endpoints", c.TrackedEndpoints, "must be in 1..1024")
	} else if c.TrackedEndpoints < c.DistinctEndpoints {
		p.Add("tracked_endpoints", c.TrackedEndpoints, "must be at least distinct_endpoints (%d)", c.DistinctEndpoints)
	}
	p.NonNegative("sequential_run", c.SequentialRun)
	p.NonNegative("sequential_weight", c.SequentialWeight)
	p.Between("tracked_templates", c.TrackedTemplates, 1, 256)
	p.AtLeastDuration("idle_before", c.IdleBefore, time.Second)
	p.AtLeastDuration("burst_window", c.BurstWindow, time.Second)
	p.NonNegative("burst_count", c.BurstCount)
	p.NonNegative("burst_weight", c.BurstWeight)
	p.Positive("state_ttl", c.StateTTL)
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"rate_window", c.RateWindow}, {"error_window", c.ErrorWindow}, {"distinct_window", c.DistinctWindow},
		{"idle_before + burst_window", c.IdleBefore + c.BurstWindow}} {
		if c.StateTTL < w.d {
			p.Add("state_ttl", c.StateTTL, "must cover %s (%s)", w.name, w.d)
		}
	}
	p.AtLeastDuration("ban_ttl", c.BanTTL, time.Second)
	p.AtLeast("ban_escalation", c.BanEscalation, 1)
	if c.BanMaxTTL < c.BanTTL {
		p.Add("ban_max_ttl", c.BanMaxTTL, "must be at least ban_ttl (%s)", c.BanTTL)
	}
	if c.OffenceMemory < 0 {
		p.Add("offence_memory", c.OffenceMemory, "must not be negative")
	}
	p.Between("ipv6_prefix", c.IPv6Prefix, 1, 128)
	p.AtLeastDuration("feedback_window", c.FeedbackWindow, time.Second)
	p.AtLeast("feedback_max_records", c.FeedbackMaxRecords, 2)
	p.AtLeastDuration("feedback_max_skew", c.FeedbackMaxSkew, time.Second)
	p.Between("min_ban_prefix_v4", c.MinBanPrefixV4, 1, 32)
	p.Between("min_ban_prefix_v6", c.MinBanPrefixV6, 1, 128)
	for key, list := range map[string][]string{"allow_cidrs": c.AllowCIDRs, "deny_cidrs": c.DenyCIDRs} {
		for i, s := range list {
			if _, err := ParsePrefix(s); err != nil {
				p.Add(fmt.Sprintf("%s[%d]", key, i), s, "must be a CIDR or an IP address")
			}
		}
	}
	p.Ratio("llm.min_confidence", c.LLM.MinConfidence)
	p.AtLeast("llm.queue_size", c.LLM.QueueSize, 1)
	p.AtLeast("llm.workers", c.LLM.Workers, 1)
	p.AtLeastDuration("llm.timeout", c.LLM.Timeout, 10*time.Millisecond)
	p.AtLeastDuration("llm.cache_ttl", c.LLM.CacheTTL, time.Second)
	p.AtLeast("llm.cache_size", c.LLM.CacheSize, 1)
	p.AtLeastDuration("llm.store_timeout", c.LLM.StoreTimeout, time.Millisecond)
	return p.Err()
}

// Prefixes parses a validated CIDR list (allow_cidrs, deny_cidrs).
func Prefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		pfx, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, pfx)
	}
	return out, nil
}

// ParsePrefix accepts a CIDR or a bare address (as a /32 or /128); an
// IPv4-mapped IPv6 address is unmapped to IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
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
