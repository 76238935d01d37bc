package app

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/llm"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// newLLM returns the LLM client, or nil when none is configured: scoring
// and payload then fail open without asking.
func newLLM(c llm.Config, reg prometheus.Registerer, logger *slog.Logger) (*llm.Client, error) {
	if c.BaseURL == "" {
		logger.Info("no LLM configured (llm.base_url is empty): grey-zone clients and borderline payloads are allowed")
		return nil, nil
	}
	return llm.New(c, reg, logger)
}

// clientVerdicts adapts the LLM client to behaviour scoring's Verdicts.
type clientVerdicts struct{ c *llm.Client }

func (v clientVerdicts) ClientVerdict(ctx context.Context, s scoring.ClientSummary) (scoring.ClientVerdict, error) {
	ans, err := v.c.ClientVerdict(ctx, llm.ClientSummary{
		Client: s.ClientKey, UserAgent: s.UserAgent, Score: s.Score, Signals: s.Signals,
		Window: s.RateWindow, Requests: s.RecentRequests, Errors: s.Errors,
		DistinctPaths: s.DistinctEndpoints,
		Recent:        []llm.RequestLine{{Method: s.Method, Path: s.Path}},
	})
	if err != nil {
		return scoring.ClientVerdict{}, err
	}
	return scoring.ClientVerdict{Action: scoring.VerdictAction(ans.Action), Confidence: ans.Confidence, Reason: ans.Reason}, nil
}

// payloadVerdicts adapts the LLM client to payload validation's Verdicts.
type payloadVerdicts struct{ c *llm.Client }

func (v payloadVerdicts) PayloadVerdict(ctx context.Context, s payload.Sample) (payload.Verdict, error) {
	ans, err := v.c.PayloadVerdict(ctx, llm.PayloadSample{
		Location: "request", Payload: s.Excerpt, Detectors: s.Detectors, Score: s.Score,
	})
	if err != nil {
		return payload.Verdict{}, err
	}
	return payload.Verdict{Malicious: ans.Malicious, Confidence: ans.Confidence, Reason: ans.Reason}, nil
}
