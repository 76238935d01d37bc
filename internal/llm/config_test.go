package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	valid := testConfig("https://api.groq.com/openai/v1")
	tests := map[string]struct {
		mutate func(*Config)
		field  string // "" means valid
	}{
		"defaults with provider": {mutate: func(*Config) {}},
		"disabled ignores the rest": {mutate: func(c *Config) {
			*c = Config{MaxRetries: -1}
		}},
		"relative base URL":   {mutate: func(c *Config) { c.BaseURL = "api.openai.com/v1" }, field: "llm.base_url"},
		"ftp base URL":        {mutate: func(c *Config) { c.BaseURL = "ftp://x/v1" }, field: "llm.base_url"},
		"no model":            {mutate: func(c *Config) { c.Model = "" }, field: "llm.model"},
		"zero breaker":        {mutate: func(c *Config) { c.BreakerFailures = 0 }, field: "llm.breaker_failures"},
		"zero cooldown":       {mutate: func(c *Config) { c.BreakerCooldown = 0 }, field: "llm.breaker_cooldown"},
		"negative retries":    {mutate: func(c *Config) { c.MaxRetries = -1 }, field: "llm.max_retries"},
		"unknown output":      {mutate: func(c *Config) { c.Output = "xml" }, field: "llm.output"},
		"temperature too hot": {mutate: func(c *Config) { v := 3.0; c.Temperature = &v }, field: "llm.temperature"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := valid
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.field)
			}
			if _, nerr := New(cfg, nil, nil); nerr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
	t.Run("reports every problem", func(t *testing.T) {
		cfg := valid
		cfg.Model, cfg.MaxRetries = "", -1
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "llm.model:") || !strings.Contains(err.Error(), "llm.max_retries:") {
			t.Fatalf("Validate = %v", err)
		}
	})
}

func TestAPIKeyIsRedacted(t *testing.T) {
	const key = "sk-very-secret-123"
	cfg := testConfig("https://api.openai.com/v1")
	cfg.APIKey = key
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logger.Info("cfg", "config", cfg, "key", cfg.APIKey)
	c, err := New(cfg, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	js, _ := json.Marshal(cfg)
	outputs := map[string]string{
		"String":   cfg.String(),
		"%v":       fmt.Sprintf("%v", cfg),
		"%+v":      fmt.Sprintf("%+v", cfg),
		"%#v":      fmt.Sprintf("%#v", cfg),
		"%s key":   fmt.Sprintf("%s", cfg.APIKey),
		"%q key":   fmt.Sprintf("%q", cfg.APIKey),
		"%x key":   fmt.Sprintf("%x", cfg.APIKey),
		"%#v key":  fmt.Sprintf("%#v", cfg.APIKey),
		"json":     string(js),
		"slog+New": logs.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, key) || strings.Contains(out, fmt.Sprintf("%x", key)) {
			t.Errorf("%s leaks the key: %s", name, out)
		}
	}
	if !strings.Contains(cfg.String(), redacted) {
		t.Errorf("String() does not show the redaction marker: %s", cfg.String())
	}
	if cfg.APIKey.Reveal() != key {
		t.Error("Reveal lost the key")
	}
}
