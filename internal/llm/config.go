package llm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Secret holds a credential. Every way of printing it (fmt verbs, slog,
// JSON) shows a redaction marker, so a Config can be logged whole; Reveal
// returns the value for the one place that sends it.
type Secret string

const redacted = "[REDACTED]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String redacts a non-empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("llm.Secret(%q)", s.String()) }

// Format routes every fmt verb through String, so %v, %s, %q and %x redact too.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 's', 'q', 'v':
	default:
		verb = 's'
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// LogValue redacts the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts the secret in JSON/YAML dumps of a Config.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// OutputMode says how the client asks the provider for structured output.
type OutputMode string

const (
	// OutputJSONSchema sends response_format {type: json_schema, strict: true}.
	// When the provider rejects the request (400/422, as Ollama versions and
	// some Groq models do), the client retries once without response_format and
	// keeps doing so; the answer is validated against the same schema either way.
	OutputJSONSchema OutputMode = "json_schema"
	// OutputText never sends response_format; the schema is only in the prompt
	// and the answer is extracted from plain text (markdown fences allowed).
	OutputText OutputMode = "text"
)

func (m OutputMode) String() string { return string(m) }

func (m OutputMode) valid() bool { return m == OutputJSONSchema || m == OutputText }

// Config configures the client. The zero BaseURL means "no LLM": New then
// returns a disabled client that answers ErrDisabled at once.
type Config struct {
	// BaseURL of an OpenAI-compatible API, e.g. https://api.openai.com/v1.
	BaseURL string `koanf:"base_url"`
	// APIKey is sent as a bearer token; may be empty for local servers (Ollama).
	APIKey Secret `koanf:"api_key"`
	// Model name, required when llm.base_url is set.
	Model string `koanf:"model"`
	// Timeout bounds one verdict call end to end: waiting for a concurrency
	// slot, every attempt and every retry wait.
	Timeout time.Duration `koanf:"timeout"`
	// NarrativeTimeout bounds one Narrative call (the reporter is off the
	// request path and asks for a longer answer).
	NarrativeTimeout time.Duration `koanf:"-"`
	// MaxConcurrency bounds calls in flight to the provider (sync and async).
	MaxConcurrency int `koanf:"max_concurrency"`
	// QueueSize bounds the async queue; a full queue drops and counts.
	QueueSize int `koanf:"queue_size"`
	// CacheTTL is how long a validated answer is reused for the same input;
	// 0 disables the cache.
	CacheTTL time.Duration `koanf:"cache_ttl"`
	// CacheSize bounds the number of cached answers.
	CacheSize int `koanf:"cache_size"`
	// BreakerFailures consecutive failures open the circuit ...
	BreakerFailures int `koanf:"breaker_failures"`
	// ... for BreakerCooldown, after which one probe call is let through.
	BreakerCooldown time.Duration `koanf:"breaker_cooldown"`
	// MaxRetries is the number of retries after the first attempt, made only
	// for retryable errors and only while the call's deadline allows.
	MaxRetries int `koanf:"max_retries"`
	// Output selects structured output via response_format or plain text.
	Output OutputMode `koanf:"output"`
	// Temperature is sent when non-nil. Leave nil for models that reject
	// anything but their default (OpenAI reasoning models).
	Temperature *float64 `koanf:"-"`
}

// DefaultConfig returns the defaults; BaseURL is empty (disabled).
func DefaultConfig() Config {
	return Config{
		Timeout:          3 * time.Second,
		NarrativeTimeout: 60 * time.Second,
		MaxConcurrency:   4,
		QueueSize:        256,
		CacheTTL:         10 * time.Minute,
		CacheSize:        10000,
		BreakerFailures:  5,
		BreakerCooldown:  30 * time.Second,
		MaxRetries:       2,
		Output:           OutputJSONSchema,
	}
}

// Enabled reports whether a provider is configured.
func (c Config) Enabled() bool { return c.BaseURL != "" }

// String prints the config with the API key redacted.
func (c Config) String() string {
	temp := "default"
	if c.Temperature != nil {
		temp = fmt.Sprint(*c.Temperature)
	}
	return fmt.Sprintf("llm.Config{BaseURL:%q APIKey:%q Model:%q Timeout:%s NarrativeTimeout:%s MaxConcurrency:%d QueueSize:%d CacheTTL:%s CacheSize:%d BreakerFailures:%d BreakerCooldown:%s MaxRetries:%d Output:%s Temperature:%s}",
		c.BaseURL, c.APIKey.String(), c.Model, c.Timeout, c.NarrativeTimeout, c.MaxConcurrency, c.QueueSize,
		c.CacheTTL, c.CacheSize, c.BreakerFailures, c.BreakerCooldown, c.MaxRetries, c.Output, temp)
}

// LogValue makes slog print the redacted form.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every invalid field, naming it by its YAML key. A disabled config (no
// BaseURL) is always valid: nothing else is used.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("llm.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if u, err := url.Parse(c.BaseURL); err != nil {
		bad("base_url", "%v", err)
	} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		bad("base_url", "want an absolute http(s) URL, got %q", c.BaseURL)
	}
	if c.Model == "" {
		bad("model", "required when llm.base_url is set")
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be > 0, got %s", c.Timeout)
	}
	if c.NarrativeTimeout <= 0 {
		bad("narrative_timeout", "must be > 0, got %s", c.NarrativeTimeout)
	}
	if c.MaxConcurrency < 1 {
		bad("max_concurrency", "must be >= 1, got %d", c.MaxConcurrency)
	}
	if c.QueueSize < 1 {
		bad("queue_size", "must be >= 1, got %d", c.QueueSize)
	}
	if c.CacheTTL < 0 {
		bad("cache_ttl", "must be >= 0, got %s", c.CacheTTL)
	}
	if c.CacheTTL > 0 && c.CacheSize < 1 {
		bad("cache_size", "must be >= 1 when CacheTTL > 0, got %d", c.CacheSize)
	}
	if c.BreakerFailures < 1 {
		bad("breaker_failures", "must be >= 1, got %d", c.BreakerFailures)
	}
	if c.BreakerCooldown <= 0 {
		bad("breaker_cooldown", "must be > 0, got %s", c.BreakerCooldown)
	}
	if c.MaxRetries < 0 {
		bad("max_retries", "must be >= 0, got %d", c.MaxRetries)
	}
	if !c.Output.valid() {
		bad("output", "want %q or %q, got %q", OutputJSONSchema, OutputText, c.Output)
	}
	if c.Temperature != nil && (*c.Temperature < 0 || *c.Temperature > 2) {
		bad("temperature", "must be in [0, 2], got %v", *c.Temperature)
	}
	return errors.Join(errs...)
}
