package payload

import (
	"errors"
	"fmt"
	"strings"
	"time"
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
	// BlockScore is the score at or above which a request is blocked
	// (payload.block_score). Scores 1..BlockScore-1 are borderline.
	BlockScore int
	// MaxBodyBytes caps how much of a body is inspected
	// (payload.max_body_bytes); longer bodies are scanned up to the cap and
	// flagged in Result.BodyTruncated.
	MaxBodyBytes int
	// MaxJSONDepth bounds how deep the JSON walker descends
	// (payload.max_json_depth); deeper values are not inspected.
	MaxJSONDepth int

	// Headers lists the request headers to inspect (payload.headers),
	// lowercased; a trailing '*' matches a prefix ("x-*"). "cookie" is
	// inspected value by value.
	Headers []string
	// SkipHeaders are never inspected even when Headers matches them
	// (payload.skip_headers); a trailing '*' matches a prefix.
	SkipHeaders []string

	// LLMMode decides what borderline payloads do (payload.llm_mode).
	LLMMode LLMMode
	// MinConfidence: an LLM "malicious" verdict blocks only above it
	// (payload.min_confidence).
	MinConfidence float64
	// LLMMaxExcerpt caps the bytes of normalised payload sent to the LLM
	// (payload.llm_max_excerpt).
	LLMMaxExcerpt int
	// LLMQueueSize bounds pending async asks (payload.llm_queue_size); when
	// full, asks are dropped and counted.
	LLMQueueSize int
	// LLMWorkers is how many asks run at once, async and sync together
	// (payload.llm_workers).
	LLMWorkers int
	// VerdictCacheSize bounds the verdict cache entries
	// (payload.verdict_cache_size).
	VerdictCacheSize int
	// VerdictTTL is how long a cached verdict is trusted
	// (payload.verdict_ttl).
	VerdictTTL time.Duration
	// LLMTimeout bounds one background (async) ask (payload.llm_timeout).
	// Sync asks use the caller's context deadline instead.
	LLMTimeout time.Duration
}

// DefaultConfig returns the defaults django-smart-layer uses where it has
// one (block at 3, confidence 0.85, 64 KiB bodies) and ours elsewhere.
func DefaultConfig() Config {
	return Config{
		BlockScore:   3,
		MaxBodyBytes: 65536,
		MaxJSONDepth: 32,
		Headers:      []string{"user-agent", "referer", "cookie", "x-*"},
		SkipHeaders: []string{
			"x-request-id", "x-forwarded-*", "x-real-ip", "x-envoy-*",
			"x-b3-*", "x-ot-span-context", "x-amzn-trace-id",
			"x-cloud-trace-context", "x-datadog-*", "x-user-id", "x-user-plan",
			"x-smartlayer-*", "x-client-trace-id",
		},
		LLMMode:          LLMAsync,
		MinConfidence:    0.85,
		LLMMaxExcerpt:    2048,
		LLMQueueSize:     256,
		LLMWorkers:       2,
		VerdictCacheSize: 10000,
		VerdictTTL:       24 * time.Hour,
		LLMTimeout:       5 * time.Second,
	}
}

// validate reports every bad field, named by its YAML key.
func (c *Config) validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("payload.%s: "+format, append([]any{key}, args...)...))
	}
	if c.BlockScore < 1 {
		bad("block_score", "must be >= 1, got %d", c.BlockScore)
	}
	if c.MaxBodyBytes < 0 {
		bad("max_body_bytes", "must be >= 0, got %d", c.MaxBodyBytes)
	}
	if c.MaxJSONDepth < 1 || c.MaxJSONDepth > 1024 {
		bad("max_json_depth", "must be in 1..1024, got %d", c.MaxJSONDepth)
	}
	switch c.LLMMode {
	case LLMAsync, LLMSync, LLMOff:
	default:
		bad("llm_mode", "unknown mode %d", int(c.LLMMode))
	}
	if c.MinConfidence < 0 || c.MinConfidence > 1 {
		bad("min_confidence", "must be in 0..1, got %v", c.MinConfidence)
	}
	if c.LLMMaxExcerpt < 64 {
		bad("llm_max_excerpt", "must be >= 64, got %d", c.LLMMaxExcerpt)
	}
	if c.LLMQueueSize < 1 {
		bad("llm_queue_size", "must be >= 1, got %d", c.LLMQueueSize)
	}
	if c.LLMWorkers < 1 {
		bad("llm_workers", "must be >= 1, got %d", c.LLMWorkers)
	}
	if c.VerdictCacheSize < 1 {
		bad("verdict_cache_size", "must be >= 1, got %d", c.VerdictCacheSize)
	}
	if c.VerdictTTL <= 0 {
		bad("verdict_ttl", "must be > 0, got %v", c.VerdictTTL)
	}
	if c.LLMTimeout <= 0 {
		bad("llm_timeout", "must be > 0, got %v", c.LLMTimeout)
	}
	for i, h := range c.Headers {
		if h == "" || h != strings.ToLower(h) {
			bad("headers", "entry %d (%q) must be a non-empty lowercase name", i, h)
		}
	}
	for i, h := range c.SkipHeaders {
		if h == "" || h != strings.ToLower(h) {
			bad("skip_headers", "entry %d (%q) must be a non-empty lowercase name", i, h)
		}
	}
	return errors.Join(errs...)
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
