package eval

// This file is the only one that uses smartlayer's own API (internal/authz,
// internal/scoring/payload). The pipeline's construction is being
// restructured; when it changes, this adapter is what to update.

import (
	"context"
	"fmt"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// maxBodyBytes is the deployed with_request_body.max_request_bytes and
// payload.max_body_bytes (envoy/envoy.yaml, deploy/config).
const maxBodyBytes = 65536

// Smartlayer runs CheckRequests through smartlayer's real Check path with
// one stage, payload, in enforce mode: no behaviour scoring (it would ban
// the replaying client), no quota, no LLM (llm.mode off, no verdicts).
type Smartlayer struct {
	srv *authz.Server
}

// NewSmartlayer builds the server with payload.DefaultConfig() and
// llm.mode off. allHeaders widens payload.headers to every header (a
// diagnostic: the default inspects user-agent, referer, cookie and x-*).
func NewSmartlayer(allHeaders bool) (*Smartlayer, error) {
	cfg := payload.DefaultConfig()
	cfg.LLM.Mode = payload.LLMOff
	if allHeaders {
		cfg.Headers = []string{"*"}
	}
	cfg.MaxBodyBytes = maxBodyBytes
	v, err := payload.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("payload validator: %w", err)
	}
	p := &authz.Pipeline{
		Identity: authz.Identity{AnonymousPlan: "anonymous", MaxBodyBytes: maxBodyBytes},
		Stages: []authz.NamedStage{{
			Module: authz.ModulePayload, Mode: authz.Enforce,
			// nil ban: with the LLM off nothing is ever known malicious.
			Stage: authz.PayloadStage(v),
		}},
	}
	// A generous budget: the machine is shared, and a budget overrun would
	// be counted as an error, not a verdict.
	return &Smartlayer{srv: authz.NewServer(p, 5*time.Second)}, nil
}

// Check asks the server about req and classifies its answer: a denial with
// status 403 is Blocked; an OK whose dynamic metadata carries a payload
// score above 0 is Borderline (score 1..block_score-1: the request would
// have gone to the LLM); any other answer is Passed, or Error for a fail-mode
// denial (5xx).
func (s *Smartlayer) Check(ctx context.Context, req *authv3.CheckRequest) (Verdict, error) {
	resp, err := s.srv.Check(ctx, req)
	if err != nil {
		return Verdict{}, err
	}
	md := resp.GetDynamicMetadata().GetFields()
	v := Verdict{
		Score:  int(md["score"].GetNumberValue()),
		Reason: md["reason"].GetStringValue(),
	}
	switch {
	case resp.GetDeniedResponse() != nil:
		code := int(resp.GetDeniedResponse().GetStatus().GetCode())
		if code == 403 || code == 0 {
			v.Class = Blocked
		} else {
			v.Class = Error
		}
	case v.Score > 0:
		v.Class = Borderline
	default:
		v.Class = Passed
	}
	return v, nil
}
