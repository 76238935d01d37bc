package payload

import (
	"fmt"
	"strings"
	"time"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// LLMMode says what happens to borderline payloads (score between 1 and
// BlockScore-1).
type LLMMode int

const (
	// LLMAsync allows the request now and asks the LLM in the background;
	// the verdict is cached by payload hash so the next identical payload
	// is decided at once. This is the default: it adds no latency.
	LLMAsync LLMMode = iota
	// LLMSync waits for the verdict within the caller's context deadline,
	// then fails open.
	LLMSync
	// LLMOff never asks; borderline payloads are allowed.
	LLMOff
)

// String returns the configuration spelling of m.
func (m LLMMode) String() string {
	switch m {
	case LLMAsync:
		return "async"
	case LLMSync:
		return "sync"
	case LLMOff:
		return "off"
	}
	return fmt.Sprintf("LLMMode(%d)", int(m))
}

// MarshalText is the configuration spelling of m.
func (m LLMMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses the configuration spelling (payload.llm.mode).
func (m *LLMMode) UnmarshalText(b []byte) error {
	v, err := ParseLLMMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseLLMMode parses "async", "sync" or "off".
func ParseLLMMode(s string) (LLMMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "async", "":
		return LLMAsync, nil
	case "sync":
		return LLMSync, nil
	case "off":
		return LLMOff, nil
	}
	return 0, fmt.Errorf("unknown llm mode %q (want async, sync or off)", s)
}

// Config tunes the validator. DefaultConfig gives the documented defaults;
// the YAML keys live under payload.* (see README).
type Config struct {
	// Mode is enforce, shadow (log and count what would be denied) or off
	// (payload.mode).
	Mode setting.Mode `koanf:"mode"`
	// BlockScore is the score at or above which a request is blocked
	// (payload.block_score). Scores 1..BlockScore-1 are borderline.
	BlockScore int `koanf:"block_score"`
	// MaxBodyBytes caps how much of a body is inspected
	// (payload.max_body_bytes); longer bodies are scanned up to the cap and
	// flagged in Result.BodyTruncated.
	MaxBodyBytes int `koanf:"max_body_bytes"`
	// MaxJSONDepth bounds how deep the JSON walker descends
	// (payload.max_json_depth); deeper values are not inspected.
	MaxJSONDepth int `koanf:"max_json_depth"`

	// Headers lists the request headers to inspect (payload.headers),
	// lowercased; a trailing '*' matches a prefix ("x-*"). "cookie" is
	// inspected value by value.
	Headers []string `koanf:"headers"`
	// SkipHeaders are never inspected even when Headers matches them
	// (payload.skip_headers); a trailing '*' matches a prefix.
	SkipHeaders []string `koanf:"skip_headers"`

	// PartialBody says what a body that was not seen whole does
	// (payload.partial_body): Envoy cut it at with_request_body's
	// max_request_bytes (x-envoy-auth-partial-body: true) or it is longer
	// than MaxBodyBytes. PartialInspectPrefix inspects what arrived;
	// PartialDeny also denies with payload.partial_body.
	PartialBody string `koanf:"partial_body"`
	// MaxPartBytes caps the bytes inspected of one multipart part
	// (payload.max_part_bytes); the whole body stays within MaxBodyBytes.
	MaxPartBytes int `koanf:"max_part_bytes"`
	// Exclusions switch detectors off for named fields of named routes
	// (payload.exclusions); see Exclusion.
	Exclusions []Exclusion `koanf:"exclusions"`
	// HeaderCacheSize bounds the cache of header values found clean, kept
	// across requests (payload.header_cache_size, hdrcache.go); 0 turns
	// it off.
	HeaderCacheSize int `koanf:"header_cache_size"`

	// LLM tunes the second opinion on borderline payloads (payload.llm.*).
	LLM LLMConfig `koanf:"llm"`

	// Limits bound one inspection's work (payload.limits.*, budget.go).
	Limits Limits `koanf:"limits"`
	// TooComplex decides a request whose inspection hit a limit
	// (payload.too_complex): deny (payload.too_complex), borderline or
	// allow.
	TooComplex TooComplexAction `koanf:"too_complex"`
	// DecisionBudget is server.decision_budget, copied by config.link:
	// Limits.MaxTime must stay below it. Not a key of its own; 0 skips the
	// check.
	DecisionBudget time.Duration `koanf:"-"`
}

// PartialBody policies (payload.partial_body).
const (
	PartialInspectPrefix = "inspect-prefix"
	PartialDeny          = "deny"
)

// Exclusion is one payload.exclusions entry: on requests whose path
// matches Route, findings at one of Fields by one of Rules are dropped.
type Exclusion struct {
	// Route is a path ("/cms/pages") or a prefix ending in '*'
	// ("/cms/pages/*"), matched against the normalised path
	// (internal/pathnorm: dot segments, repeated slashes, case).
	Route string `koanf:"route"`
	// Fields are Finding.Location spellings ("body:$.html", "query:q",
	// "header:user-agent", "cookie:session", "body:comment"); a trailing
	// '*' matches a prefix ("body:$.blocks*", "header:*"). Empty: every
	// field.
	Fields []string `koanf:"fields"`
	// Rules are detector names ("xss", "sqli"), reasons ("payload.xss")
	// or rule names ("payload.xss.tag"); "partial_body" and
	// "undecodable_charset" waive those denials. Empty: every rule.
	Rules []string `koanf:"rules"`
}

// LLMConfig tunes the LLM questions about borderline payloads; like
// behavior.llm, one queue, one worker pool, one timeout and one verdict
// cache for this use.
type LLMConfig struct {
	// Mode decides what borderline payloads do (payload.llm.mode).
	Mode LLMMode `koanf:"mode"`
	// MinConfidence: a "malicious" verdict blocks when its confidence is at
	// least this (payload.llm.min_confidence).
	MinConfidence float64 `koanf:"min_confidence"`
	// MaxExcerpt caps the bytes of normalised payload sent to the LLM
	// (payload.llm.max_excerpt).
	MaxExcerpt int `koanf:"max_excerpt"`
	// QueueSize bounds the async questions waiting for a worker
	// (payload.llm.queue_size); when full, questions are dropped and counted.
	QueueSize int `koanf:"queue_size"`
	// Workers is how many questions are asked at once, async and sync
	// together (payload.llm.workers).
	Workers int `koanf:"workers"`
	// Timeout bounds one question (payload.llm.timeout); a sync question
	// also ends with the request's decision budget.
	Timeout time.Duration `koanf:"timeout"`
	// CacheSize bounds the verdict cache (payload.llm.cache_size), least
	// recently used evicted first.
	CacheSize int `koanf:"cache_size"`
	// CacheTTL is how long a cached verdict is trusted (payload.llm.cache_ttl).
	CacheTTL time.Duration `koanf:"cache_ttl"`
}

// DefaultConfig returns the defaults django-smart-layer uses where it has
// one (block at 3, confidence 0.85, 64 KiB bodies) and ours elsewhere.
func DefaultConfig() Config {
	return Config{
		Mode:         setting.Enforce,
		BlockScore:   3,
		MaxBodyBytes: 65536,
		MaxJSONDepth: 32,
		Headers:      []string{"*"},
		// Only what Envoy itself writes: the request id it generates, its
		// own x-envoy-* headers (stripped from external requests), and the
		// pseudo-header :path (inspected as path and query already).
		SkipHeaders:  []string{":path", "x-request-id", "x-envoy-*"},
		PartialBody:  PartialInspectPrefix,
		MaxPartBytes: 65536,
		Exclusions:   []Exclusion{},
		// 4096 pairs: a few hundred active clients' user agents, accept
		// headers and cookies; at most ~5 MiB with 1 KiB values.
		HeaderCacheSize: 4096,
		LLM: LLMConfig{
			Mode:          LLMAsync,
			MinConfidence: 0.85,
			MaxExcerpt:    2048,
			QueueSize:     256,
			Workers:       2,
			Timeout:       5 * time.Second,
			CacheSize:     10000,
			CacheTTL:      24 * time.Hour,
		},
		Limits:     DefaultLimits(),
		TooComplex: TooComplexDeny,
	}
}

// Validate reports every bad field at once, named by its YAML key
// (payload.*).
func (c Config) Validate() error {
	p := setting.Section("payload")
	p.Mode("mode", c.Mode)
	p.AtLeast("block_score", c.BlockScore, 1)
	p.NonNegative("max_body_bytes", c.MaxBodyBytes)
	p.Between("max_json_depth", c.MaxJSONDepth, 1, 1024)
	switch c.LLM.Mode {
	case LLMAsync, LLMSync, LLMOff:
	default:
		p.Add("llm.mode", int(c.LLM.Mode), "must be one of async, sync, off")
	}
	p.Ratio("llm.min_confidence", c.LLM.MinConfidence)
	p.AtLeast("llm.max_excerpt", c.LLM.MaxExcerpt, 64)
	p.AtLeast("llm.queue_size", c.LLM.QueueSize, 1)
	p.AtLeast("llm.workers", c.LLM.Workers, 1)
	p.AtLeastDuration("llm.timeout", c.LLM.Timeout, 10*time.Millisecond)
	p.AtLeast("llm.cache_size", c.LLM.CacheSize, 1)
	p.AtLeastDuration("llm.cache_ttl", c.LLM.CacheTTL, time.Second)
	c.Limits.validate(p, c.DecisionBudget)
	validTooComplex(p, c.TooComplex)
	for key, list := range map[string][]string{"headers": c.Headers, "skip_headers": c.SkipHeaders} {
		for i, h := range list {
			if h == "*" {
				continue
			}
			// Pseudo-headers (":authority", ":method") are names too.
			p.HeaderName(fmt.Sprintf("%s[%d]", key, i), strings.TrimPrefix(strings.TrimSuffix(h, "*"), ":"), false)
		}
	}
	p.OneOf("partial_body", c.PartialBody, PartialInspectPrefix, PartialDeny)
	p.AtLeast("max_part_bytes", c.MaxPartBytes, 0)
	p.Between("header_cache_size", c.HeaderCacheSize, 0, 1<<20)
	validateExclusions(p, c.Exclusions)
	return p.Err()
}

// headerMatch reports whether name matches one of the patterns (exact, or
// prefix when the pattern ends in '*').
func headerMatch(patterns []string, name string) bool {
	for _, p := range patterns {
		if n := len(p); n > 0 && p[n-1] == '*' {
			if strings.HasPrefix(name, p[:n-1]) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}
