// Package llmconfig maps the llm.* configuration onto the LLM client's
// Config for both commands: internal/config imports only koanf and
// internal/llm only openai-go, so neither can hold the mapping.
package llmconfig

import (
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/llm"
)

// FromConfig returns the client configuration for c.
func FromConfig(c config.LLM) llm.Config {
	return llm.Config{
		BaseURL: c.BaseURL, APIKey: llm.Secret(c.APIKey), Model: c.Model,
		Timeout: c.Timeout, NarrativeTimeout: c.NarrativeTimeout,
		MaxConcurrency: c.MaxConcurrency, QueueSize: c.QueueSize,
		CacheTTL: c.CacheTTL, CacheSize: c.CacheSize,
		BreakerFailures: c.BreakerFailures, BreakerCooldown: c.BreakerCooldown,
		MaxRetries: c.MaxRetries, Output: llm.OutputMode(c.Output),
	}
}
