package llmconfig

import (
	"reflect"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/llm"
)

// TestDefaultsMatch: the configuration defaults are the client's own.
func TestDefaultsMatch(t *testing.T) {
	if got, want := FromConfig(config.Default().LLM), llm.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("llm defaults drifted:\n config: %+v\n module: %+v", got, want)
	}
}

// TestEveryFieldMapped: a value set in every config field reaches the
// client's Config (a new key that is not mapped leaves a zero there).
func TestEveryFieldMapped(t *testing.T) {
	c := config.LLM{BaseURL: "http://llm:8080/v1", APIKey: "k", Model: "m", Timeout: time.Second,
		NarrativeTimeout: 2 * time.Second, MaxConcurrency: 3, QueueSize: 4, CacheTTL: time.Minute,
		CacheSize: 5, BreakerFailures: 6, BreakerCooldown: 7 * time.Second, MaxRetries: 8, Output: "text"}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test leaves config.LLM.%s zero: set it", v.Type().Field(i).Name)
		}
	}
	// Not configurable: nil sends no temperature (the model's default).
	unmapped := map[string]bool{"Temperature": true}
	got := reflect.ValueOf(FromConfig(c))
	for i := range got.NumField() {
		if got.Field(i).IsZero() && !unmapped[got.Type().Field(i).Name] {
			t.Errorf("llm.Config.%s is not mapped from config.LLM", got.Type().Field(i).Name)
		}
	}
}
