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

// UnmarshalText parses the configuration spelling (payload.llm_mode).
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

	// LLMMode decides what borderline payloads do (payload.llm_mode).
	LLMMode LLMMode `koanf:"llm_mode"`
	// MinConfidence: an LLM "malicious" verdict blocks only above it
	// (payload.min_confidence).
	MinConfidence float64 `koanf:"min_confidence"`
	// LLMMaxExcerpt caps the bytes of normalised payload sent to the LLM
	// (payload.llm_max_excerpt).
	LLMMaxExcerpt int `koanf:"llm_max_excerpt"`
	// LLMQueueSize bounds pending async asks (payload.llm_queue_size); when
	// full, asks are dropped and counted.
	LLMQueueSize int `koanf:"llm_queue_size"`
	// LLMWorkers is how many asks run at once, async and sync together
	// (payload.llm_workers).
	LLMWorkers int `koanf:"llm_workers"`
	// VerdictCacheSize bounds the verdict cache entries
	// (payload.verdict_cache_size).
	VerdictCacheSize int `koanf:"verdict_cache_size"`
	// VerdictTTL is how long a cached verdict is trusted
	// (payload.verdict_ttl).
	VerdictTTL time.Duration `koanf:"verdict_ttl"`
	// LLMTimeout bounds one background (async) ask (payload.llm_timeout).
	// Sync asks use the caller's context deadline instead.
	LLMTimeout time.Duration `koanf:"llm_timeout"`
}

// DefaultConfig returns the defaults django-smart-layer uses where it has
// one (block at 3, confidence 0.85, 64 KiB bodies) and ours elsewhere.
func DefaultConfig() Config {
	return Config{
		Mode:         setting.Enforce,
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

// Validate reports every bad field at once, named by its YAML key
// (payload.*).
func (c Config) Validate() error {
	p := setting.Section("payload")
	p.Mode("mode", c.Mode)
	p.AtLeast("block_score", c.BlockScore, 1)
	p.NonNegative("max_body_bytes", c.MaxBodyBytes)
	p.Between("max_json_depth", c.MaxJSONDepth, 1, 1024)
	switch c.LLMMode {
	case LLMAsync, LLMSync, LLMOff:
	default:
		p.Add("llm_mode", int(c.LLMMode), "must be one of async, sync, off")
	}
	p.Ratio("min_confidence", c.MinConfidence)
	p.AtLeast("llm_max_excerpt", c.LLMMaxExcerpt, 64)
	p.AtLeast("llm_queue_size", c.LLMQueueSize, 1)
	p.AtLeast("llm_workers", c.LLMWorkers, 1)
	p.AtLeast("verdict_cache_size", c.VerdictCacheSize, 1)
	p.Positive("verdict_ttl", c.VerdictTTL)
	p.Positive("llm_timeout", c.LLMTimeout)
	for key, list := range map[string][]string{"headers": c.Headers, "skip_headers": c.SkipHeaders} {
		for i, h := range list {
			p.HeaderName(fmt.Sprintf("%s[%d]", key, i), strings.TrimSuffix(h, "*"), false)
		}
	}
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
