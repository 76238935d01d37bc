//go:build !smartlayer_llm

package main

import (
	"log/slog"

	"github.com/smartlayer/smartlayer/internal/report"
)

// newSummarizer: this build has no internal/llm (it lives on branch llm
// until the lead merges it; summarizer_llm.go holds the adapter, built with
// -tags smartlayer_llm). With llm.base_url set the report says so in the log
// and falls back to the deterministic narrative, as on any LLM failure.
func newSummarizer(cfg llmConfig, log *slog.Logger) (report.Summarizer, func(), error) {
	if cfg.BaseURL != "" {
		log.Warn("llm.base_url is set but this reporter was built without internal/llm; writing the deterministic narrative")
	}
	return nil, func() {}, nil
}
