package report

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Summarizer writes the report's prose from the aggregates JSON. It is fed
// nothing else; internal/llm satisfies it through an adapter in cmd/reporter.
type Summarizer interface {
	Narrative(ctx context.Context, aggregates []byte) (Narrative, error)
}

// Narrative is the report's prose. Numbers in the tables never come from it.
type Narrative struct {
	Health          Health   `json:"health"`
	Summary         string   `json:"summary"`
	Findings        []string `json:"findings"`
	Recommendations []string `json:"recommendations"`
}

// NarrativeSource says who wrote the prose (daily_reports.narrative_source).
type NarrativeSource string

// The closed set of narrative sources.
const (
	SourceLLM           NarrativeSource = "llm"
	SourceDeterministic NarrativeSource = "deterministic"
)

// Limits on a model's answer; anything beyond is rejected, not truncated,
// because a runaway answer is a sign the model did not follow the schema.
const (
	maxSummaryRunes = 2000
	maxItemRunes    = 600
	maxFindings     = 10
	minRecs         = 2
	maxRecs         = 3
)

// ErrInvalidNarrative marks an answer that breaks the narrative contract.
var ErrInvalidNarrative = errors.New("invalid narrative")

// ValidateNarrative checks a Summarizer's answer against the day's health and
// returns it cleaned (whitespace collapsed, control characters removed).
// The health must equal the rule's verdict: a model that contradicts the
// numbers it was given is not trusted for the prose either.
func ValidateNarrative(n Narrative, want Health) (Narrative, error) {
	bad := func(format string, a ...any) (Narrative, error) {
		return Narrative{}, fmt.Errorf("%w: %s", ErrInvalidNarrative, fmt.Sprintf(format, a...))
	}
	out := Narrative{Health: Health(strings.ToLower(strings.TrimSpace(string(n.Health))))}
	if !out.Health.Valid() {
		return bad("health %q is not good, degraded or critical", clip(string(n.Health)))
	}
	if out.Health != want {
		return bad("health %q contradicts the rule's %q", out.Health, want)
	}
	var err error
	if out.Summary, err = cleanText(n.Summary, maxSummaryRunes); err != nil {
		return bad("summary: %v", err)
	}
	if len(n.Findings) > maxFindings {
		return bad("%d findings, at most %d", len(n.Findings), maxFindings)
	}
	for i, f := range n.Findings {
		c, err := cleanText(f, maxItemRunes)
		if err != nil {
			return bad("finding %d: %v", i, err)
		}
		out.Findings = append(out.Findings, c)
	}
	if len(n.Recommendations) < minRecs || len(n.Recommendations) > maxRecs {
		return bad("%d recommendations, want %d..%d", len(n.Recommendations), minRecs, maxRecs)
	}
	for i, r := range n.Recommendations {
		c, err := cleanText(r, maxItemRunes)
		if err != nil {
			return bad("recommendation %d: %v", i, err)
		}
		out.Recommendations = append(out.Recommendations, c)
	}
	return out, nil
}

// cleanText collapses whitespace, drops control and format characters
// (bidi overrides included) and enforces a length.
func cleanText(s string, limit int) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("not UTF-8")
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := b.String()
	if out == "" {
		return "", errors.New("empty")
	}
	if n := utf8.RuneCountInString(out); n > limit {
		return "", fmt.Errorf("%d characters, at most %d", n, limit)
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
