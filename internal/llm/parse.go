package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Answer limits. The schema sent to the provider cannot express string
// lengths in strict mode, so they are enforced here.
const (
	maxAnswerBytes    = 64 << 10
	maxReasonRunes    = 500
	maxSummaryRunes   = 2000
	maxFindingRunes   = 500
	maxFindings       = 10
	minRecommendation = 2
	maxRecommendation = 3
	// maxObjectStarts bounds the extraction scan so a hostile answer full of
	// '{' costs O(maxObjectStarts·n), not O(n²).
	maxObjectStarts = 16
	excerptBytes    = 200
)

// extractJSON finds the single JSON object in a model's answer. It accepts a
// bare object, an object inside a markdown fence, or an object surrounded by
// prose, and drops <think>…</think> blocks of reasoning models. More than one
// object, or none, is an error: picking one would be guessing.
func extractJSON(text string) ([]byte, error) {
	if len(text) > maxAnswerBytes {
		return nil, &AnswerError{Problem: fmt.Sprintf("answer is %d bytes, limit %d", len(text), maxAnswerBytes), Excerpt: excerpt(text)}
	}
	s := stripThink(text)
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return []byte(t), nil
	}
	var found []byte
	starts := 0
	lastClose := strings.LastIndexByte(s, '}')
	for i := 0; i < lastClose; {
		j := strings.IndexByte(s[i:], '{')
		if j < 0 {
			break
		}
		start := i + j
		if starts++; starts > maxObjectStarts {
			break
		}
		end := matchObject(s, start)
		if end < 0 || !json.Valid([]byte(s[start:end])) {
			i = start + 1
			continue
		}
		if found != nil {
			return nil, &AnswerError{Problem: "answer holds more than one JSON object", Excerpt: excerpt(text)}
		}
		found = []byte(s[start:end])
		i = end
	}
	if found == nil {
		return nil, &AnswerError{Problem: "no JSON object in answer", Excerpt: excerpt(text)}
	}
	return found, nil
}

// matchObject returns the index just past the '}' that closes the '{' at
// start, honouring JSON strings, or -1.
func matchObject(s string, start int) int {
	depth := 0
	inString, escaped := false, false
	for k := start; k < len(s); k++ {
		c := s[k]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return k + 1
			}
		}
	}
	return -1
}

// stripThink removes <think>…</think> blocks (DeepSeek-R1, Qwen3 via Ollama
// or vLLM put their reasoning there, braces and all).
func stripThink(s string) string {
	for {
		i := strings.Index(s, "<think>")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i:], "</think>")
		if j < 0 {
			return s[:i]
		}
		s = s[:i] + s[i+j+len("</think>"):]
	}
}

func excerpt(s string) string { return cutRunes(s, excerptBytes, "…") }

// decodeStrict decodes obj into dst, rejecting unknown fields and trailing data.
func decodeStrict(obj []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &AnswerError{Field: te.Field, Problem: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}
		}
		return &AnswerError{Problem: err.Error()}
	}
	return nil
}

// Raw answer shapes: pointers tell a missing field from a zero value.
type rawClientVerdict struct {
	Action     *string  `json:"action"`
	Confidence *float64 `json:"confidence"`
	Reason     *string  `json:"reason"`
}

type rawPayloadVerdict struct {
	Malicious  *bool    `json:"malicious"`
	Confidence *float64 `json:"confidence"`
	Category   *string  `json:"category"`
	Reason     *string  `json:"reason"`
}

type rawNarrative struct {
	Health          *string   `json:"health"`
	Summary         *string   `json:"summary"`
	Findings        *[]string `json:"findings"`
	Recommendations *[]string `json:"recommendations"`
}

func missing(field string) error { return &AnswerError{Field: field, Problem: "missing"} }

func checkConfidence(c *float64) error {
	if c == nil {
		return missing("confidence")
	}
	if math.IsNaN(*c) || *c < 0 || *c > 1 {
		return &AnswerError{Field: "confidence", Problem: fmt.Sprintf("must be in [0, 1], got %v", *c)}
	}
	return nil
}

func checkText(field string, s *string, maxRunes int) (string, error) {
	if s == nil {
		return "", missing(field)
	}
	t := strings.TrimSpace(*s)
	if t == "" {
		return "", &AnswerError{Field: field, Problem: "empty"}
	}
	if !utf8.ValidString(t) {
		return "", &AnswerError{Field: field, Problem: "not valid UTF-8"}
	}
	if n := utf8.RuneCountInString(t); n > maxRunes {
		return "", &AnswerError{Field: field, Problem: fmt.Sprintf("%d characters, limit %d", n, maxRunes)}
	}
	return t, nil
}

// rawAnswer is the decoded JSON of an answer of type V, not yet checked.
type rawAnswer[V any] interface {
	validate() (V, error)
}

// parseAnswer extracts the JSON object from answer text, decodes it
// strictly into R and validates it into V.
func parseAnswer[V any, R rawAnswer[V]](text string) (V, error) {
	obj, err := extractJSON(text)
	if err != nil {
		var zero V
		return zero, err
	}
	var raw R
	if err := decodeStrict(obj, &raw); err != nil {
		var zero V
		return zero, withExcerpt(err, text)
	}
	v, err := raw.validate()
	return v, withExcerpt(err, text)
}

// The parsers of the three answers, from answer text to a valid value.
var (
	parseClientVerdict  = parseAnswer[ClientVerdict, rawClientVerdict]
	parsePayloadVerdict = parseAnswer[PayloadVerdict, rawPayloadVerdict]
	parseNarrative      = parseAnswer[Narrative, rawNarrative]
)

func (r rawClientVerdict) validate() (ClientVerdict, error) {
	if r.Action == nil {
		return ClientVerdict{}, missing("action")
	}
	a := Action(*r.Action)
	if a != ActionBlock && a != ActionAllow {
		return ClientVerdict{}, &AnswerError{Field: "action", Problem: fmt.Sprintf("want BLOCK or ALLOW, got %q", *r.Action)}
	}
	if err := checkConfidence(r.Confidence); err != nil {
		return ClientVerdict{}, err
	}
	reason, err := checkText("reason", r.Reason, maxReasonRunes)
	if err != nil {
		return ClientVerdict{}, err
	}
	return ClientVerdict{Action: a, Confidence: *r.Confidence, Reason: reason}, nil
}

func (r rawPayloadVerdict) validate() (PayloadVerdict, error) {
	if r.Malicious == nil {
		return PayloadVerdict{}, missing("malicious")
	}
	if err := checkConfidence(r.Confidence); err != nil {
		return PayloadVerdict{}, err
	}
	if r.Category == nil {
		return PayloadVerdict{}, missing("category")
	}
	cat := Category(*r.Category)
	known := false
	for _, c := range Categories {
		known = known || c == cat
	}
	if !known {
		return PayloadVerdict{}, &AnswerError{Field: "category", Problem: fmt.Sprintf("unknown category %q", *r.Category)}
	}
	// "Not malicious, but SQL injection" is a contradiction, not a verdict.
	if *r.Malicious == (cat == CategoryNone) {
		return PayloadVerdict{}, &AnswerError{Field: "category", Problem: fmt.Sprintf("%q contradicts malicious=%v", cat, *r.Malicious)}
	}
	reason, err := checkText("reason", r.Reason, maxReasonRunes)
	if err != nil {
		return PayloadVerdict{}, err
	}
	return PayloadVerdict{Malicious: *r.Malicious, Confidence: *r.Confidence, Category: cat, Reason: reason}, nil
}

func (r rawNarrative) validate() (Narrative, error) {
	if r.Health == nil {
		return Narrative{}, missing("health")
	}
	h := Health(*r.Health)
	if h != HealthGood && h != HealthDegraded && h != HealthCritical {
		return Narrative{}, &AnswerError{Field: "health", Problem: fmt.Sprintf("want good, degraded or critical, got %q", *r.Health)}
	}
	summary, err := checkText("summary", r.Summary, maxSummaryRunes)
	if err != nil {
		return Narrative{}, err
	}
	if r.Findings == nil {
		return Narrative{}, missing("findings")
	}
	if n := len(*r.Findings); n > maxFindings {
		return Narrative{}, &AnswerError{Field: "findings", Problem: fmt.Sprintf("%d items, limit %d", n, maxFindings)}
	}
	findings, err := checkList("findings", *r.Findings, maxFindingRunes)
	if err != nil {
		return Narrative{}, err
	}
	if r.Recommendations == nil {
		return Narrative{}, missing("recommendations")
	}
	if n := len(*r.Recommendations); n < minRecommendation || n > maxRecommendation {
		return Narrative{}, &AnswerError{Field: "recommendations", Problem: fmt.Sprintf("want %d to %d items, got %d", minRecommendation, maxRecommendation, n)}
	}
	recs, err := checkList("recommendations", *r.Recommendations, maxFindingRunes)
	if err != nil {
		return Narrative{}, err
	}
	return Narrative{Health: h, Summary: summary, Findings: findings, Recommendations: recs}, nil
}

func checkList(field string, items []string, maxRunes int) ([]string, error) {
	out := make([]string, len(items))
	for i := range items {
		t, err := checkText(fmt.Sprintf("%s[%d]", field, i), &items[i], maxRunes)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func withExcerpt(err error, text string) error {
	var ae *AnswerError
	if errors.As(err, &ae) && ae.Excerpt == "" {
		ae.Excerpt = excerpt(text)
	}
	return err
}
