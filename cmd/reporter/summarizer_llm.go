package main

import (
	"context"
	"fmt"
	"log/slog"

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
func newSummarizer(cfg llm.Config, log *slog.Logger) (report.Summarizer, func(), error) {
	if cfg.BaseURL == "" {
		return nil, func() {}, nil
	}
	c, err := llm.New(cfg, nil, log)
	if err != nil {
		return nil, nil, fmt.Errorf("llm: %w", err)
	}
	return llmSummarizer{c}, c.Close, nil
}
