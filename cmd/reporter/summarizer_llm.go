//go:build smartlayer_llm

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/smartlayer/smartlayer/internal/llm"
	"github.com/smartlayer/smartlayer/internal/report"
)

// llmSummarizer adapts internal/llm's client to report.Summarizer; the two
// packages keep their own Narrative types.
type llmSummarizer struct{ c *llm.Client }

func (s llmSummarizer) Narrative(ctx context.Context, aggregates []byte) (report.Narrative, error) {
	n, err := s.c.Narrative(ctx, aggregates)
	if err != nil {
		return report.Narrative{}, err
	}
	return report.Narrative{Health: report.Health(n.Health), Summary: n.Summary,
		Findings: n.Findings, Recommendations: n.Recommendations}, nil
}

// newSummarizer builds the LLM client when llm.base_url is set.
func newSummarizer(cfg llmConfig, log *slog.Logger) (report.Summarizer, func(), error) {
	if cfg.BaseURL == "" {
		return nil, func() {}, nil
	}
	lc := llm.DefaultConfig()
	lc.BaseURL = cfg.BaseURL
	lc.APIKey = llm.Secret(cfg.APIKey)
	lc.Model = cfg.Model
	if cfg.NarrativeTimeout > 0 {
		lc.NarrativeTimeout = cfg.NarrativeTimeout
	}
	c, err := llm.New(lc, nil, log)
	if err != nil {
		return nil, nil, fmt.Errorf("llm: %w", err)
	}
	return llmSummarizer{c}, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	}, nil
}
