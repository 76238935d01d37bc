package llm

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/smartlayer/smartlayer/internal/setting"
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

// Config configures the client. The zero BaseURL means "no LLM": New then
// returns a disabled client that answers ErrDisabled at once.
type Config struct {
	// BaseURL of an OpenAI-compatible API, e.g. https://api.openai.com/v1.
	BaseURL string `koanf:"base_url"`
	// APIKey is sent as a bearer token; may be empty for local servers (Ollama).
	APIKey Secret `koanf:"api_key"`
	// Model name, required when llm.base_url is set.
	Model string `koanf:"model"`
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
		BreakerFailures: 5,
		BreakerCooldown: 30 * time.Second,
		MaxRetries:      2,
		Output:          OutputJSONSchema,
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
	return fmt.Sprintf("llm.Config{BaseURL:%q APIKey:%q Model:%q BreakerFailures:%d BreakerCooldown:%s MaxRetries:%d Output:%s Temperature:%s}",
		c.BaseURL, c.APIKey.String(), c.Model, c.BreakerFailures, c.BreakerCooldown, c.MaxRetries, c.Output, temp)
}

// LogValue makes slog print the redacted form.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports every invalid field at once, each named by its YAML key
// (llm.*). A disabled config (no BaseURL) is always valid: nothing else is
// used.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	p := setting.Section("llm")
	if u, err := url.Parse(c.BaseURL); err != nil {
		p.Add("base_url", c.BaseURL, "%v", err)
	} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		p.Add("base_url", c.BaseURL, "must be an absolute http(s) URL")
	}
	if c.Model == "" {
		p.Add("model", nil, "required when llm.base_url is set")
	}
	p.AtLeast("breaker_failures", c.BreakerFailures, 1)
	p.AtLeastDuration("breaker_cooldown", c.BreakerCooldown, 100*time.Millisecond)
	p.NonNegative("max_retries", c.MaxRetries)
	p.OneOf("output", string(c.Output), string(OutputJSONSchema), string(OutputText))
	if c.Temperature != nil && (*c.Temperature < 0 || *c.Temperature > 2) {
		p.Add("temperature", *c.Temperature, "must be in [0, 2]")
	}
	return p.Err()
}
