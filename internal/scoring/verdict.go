package scoring

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Verdicts judges a grey-zone client. internal/llm satisfies it through an
// adapter in internal/app.
type Verdicts interface {
	ClientVerdict(ctx context.Context, s ClientSummary) (ClientVerdict, error)
}

// ClientSummary is what the LLM is told about a grey-zone client: the
// numbers behind its score, never raw payloads.
type ClientSummary struct {
	ClientKey string
	UserAgent string
	Method    string
	// Path is the cleaned path of the request that reached the grey zone.
	Path              string
	Score             int
	Signals           []string
	Requests          int64
	RecentRequests    int
	RateWindow        time.Duration
	Responses         int
	Errors            int
	ErrorWindow       time.Duration
	DistinctEndpoints int
	SequentialRun     int
	IdleBurst         int
}

// VerdictAction is the LLM's decision.
type VerdictAction string

const (
	VerdictAllow VerdictAction = "ALLOW"
	VerdictBlock VerdictAction = "BLOCK"
)

// ClientVerdict is the LLM's answer.
type ClientVerdict struct {
	Action     VerdictAction
	Confidence float64
	Reason     string
}

// errInvalidVerdict marks an answer that is neither ALLOW nor BLOCK with a
// confidence in [0,1].
var errInvalidVerdict = errors.New("invalid verdict")

func (v ClientVerdict) validate() error {
	if v.Action != VerdictAllow && v.Action != VerdictBlock {
		return fmt.Errorf("%w: action %q", errInvalidVerdict, v.Action)
	}
	if math.IsNaN(v.Confidence) || v.Confidence < 0 || v.Confidence > 1 {
		return fmt.Errorf("%w: confidence %v", errInvalidVerdict, v.Confidence)
	}
	return nil
}

// blocks reports whether v bans: a BLOCK at least minConfidence sure.
func (v ClientVerdict) blocks(minConfidence float64) bool {
	return v.Action == VerdictBlock && v.Confidence >= minConfidence
}

// question is what a worker asks about one grey-zone client.
type question struct {
	summary ClientSummary
	score   int
}
