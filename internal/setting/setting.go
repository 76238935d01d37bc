// Package setting holds the building blocks every module's configuration is
// made of: the key-naming error, a collector that validates a section and
// reports every problem at once, the pipeline Mode and a Secret that never
// prints. It imports nothing of smartlayer's, so every module can own its
// Config (koanf tags, DefaultConfig, Validate) and internal/config only
// composes them — the OpenTelemetry collector's pattern.
package setting

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// KeyError names the configuration key a problem is about, spelt as the
// user writes it in YAML ("behavior.rate_block").
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

// Problems collects a section's validation errors. The zero value has no
// prefix; Section names the YAML section every key is relative to.
type Problems struct {
	prefix string
	errs   []error
}

// Section returns a collector whose keys are relative to section
// ("behavior" → "behavior.rate_block").
func Section(section string) *Problems { return &Problems{prefix: section} }

// Key returns the full key name of a key relative to the section.
func (p *Problems) Key(key string) string {
	if p.prefix == "" {
		return key
	}
	if key == "" {
		return p.prefix
	}
	return p.prefix + "." + key
}

// Add records a problem with key; value may be nil.
func (p *Problems) Add(key string, value any, format string, args ...any) {
	p.errs = append(p.errs, &KeyError{Key: p.Key(key), Value: value, Msg: fmt.Sprintf(format, args...)})
}

// Join records every error of err (a module's own Validate) unchanged.
func (p *Problems) Join(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// Err returns every recorded problem joined, or nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// Positive requires d > 0.
func (p *Problems) Positive(key string, d time.Duration) {
	if d <= 0 {
		p.Add(key, d, "must be > 0")
	}
}

// AtLeastDuration requires d ≥ low (a sane minimum for a duration).
func (p *Problems) AtLeastDuration(key string, d, low time.Duration) {
	if d < low {
		p.Add(key, d, "must be at least %s", low)
	}
}

// NonNegative requires v ≥ 0.
func (p *Problems) NonNegative(key string, v int) {
	if v < 0 {
		p.Add(key, v, "must not be negative")
	}
}

// AtLeast requires v ≥ low.
func (p *Problems) AtLeast(key string, v, low int) {
	if v < low {
		p.Add(key, v, "must be ≥ %d", low)
	}
}

// Between requires low ≤ v ≤ high.
func (p *Problems) Between(key string, v, low, high int) {
	if v < low || v > high {
		p.Add(key, v, "must be in %d..%d", low, high)
	}
}

// Ratio requires 0 ≤ v ≤ 1.
func (p *Problems) Ratio(key string, v float64) {
	if !(v >= 0 && v <= 1) {
		p.Add(key, v, "must be between 0 and 1")
	}
}

// OneOf requires v to be one of allowed.
func (p *Problems) OneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.Add(key, v, "must be one of %s", strings.Join(allowed, ", "))
}

// Addr requires host:port; an empty v is a problem only when required.
func (p *Problems) Addr(key, v string, required bool) {
	if v == "" {
		if required {
			p.Add(key, nil, "must be set (host:port)")
		}
		return
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		p.Add(key, v, "must be host:port")
	}
}

// HeaderName requires a lowercase HTTP header name; empty is allowed only
// when optional.
func (p *Problems) HeaderName(key, v string, optional bool) {
	if v == "" {
		if !optional {
			p.Add(key, nil, "must be set")
		}
		return
	}
	if v != strings.ToLower(v) || strings.ContainsAny(v, " :\t\r\n") {
		p.Add(key, v, "must be a lowercase header name")
	}
}

// Mode says whether a pipeline module denies, only records what it would
// deny (shadow), or is switched off.
type Mode string

// Modes of a pipeline module.
const (
	Enforce Mode = "enforce"
	Shadow  Mode = "shadow"
	Off     Mode = "off"
)

// Valid reports whether m is one of the three modes.
func (m Mode) Valid() bool { return m == Enforce || m == Shadow || m == Off }

// Check records a problem when m is not a mode.
func (p *Problems) Mode(key string, m Mode) {
	if !m.Valid() {
		p.Add(key, m, "must be one of enforce, shadow, off")
	}
}

// Secret is a string that never prints: String, fmt verbs and
// MarshalText (so a printed configuration) redact a non-empty value.
type Secret string

// Reveal returns the value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// String redacts a non-empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the value in %#v.
func (s Secret) GoString() string { return fmt.Sprintf("setting.Secret(%q)", s.String()) }

// MarshalText redacts the secret in any printed configuration.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
