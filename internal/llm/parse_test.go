package llm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestExtractJSON(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string // "" means error
	}{
		"bare":                   {in: `{"a":1}`, want: `{"a":1}`},
		"whitespace":             {in: "\n  {\"a\":1}\n", want: `{"a":1}`},
		"json fence":             {in: "```json\n{\"a\":1}\n```", want: `{"a":1}`},
		"plain fence with prose": {in: "Verdict:\n```\n{\"a\":1}\n```\nBye", want: `{"a":1}`},
		"prose around":           {in: `I think {"a":"}"} is right`, want: `{"a":"}"}`},
		"braces in strings":      {in: `{"a":"{{{","b":"\"}"}`, want: `{"a":"{{{","b":"\"}"}`},
		"nested":                 {in: `x {"a":{"b":[1,{"c":2}]}} y`, want: `{"a":{"b":[1,{"c":2}]}}`},
		"stray brace before":     {in: `use { carefully: {"a":1}`, want: `{"a":1}`},
		"invalid candidate skip": {in: `{curly} {"a":1}`, want: `{"a":1}`},
		"think block":            {in: `<think>{"a":2}</think>{"a":1}`, want: `{"a":1}`},
		"unclosed think":         {in: `{"a":1}<think>{"a":2}`, want: `{"a":1}`},
		"two objects":            {in: `{"a":1} {"a":2}`},
		"two fences":             {in: "```json\n{\"a\":1}\n```\n```json\n{\"a\":2}\n```"},
		"none":                   {in: `ALLOW`},
		"empty":                  {in: ``},
		"array only":             {in: `[1, 2]`},
		"unbalanced":             {in: `{"a":1`},
		"too big":                {in: `{"a":"` + strings.Repeat("x", maxAnswerBytes) + `"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := extractJSON(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %s, want error", got)
				}
				if !errors.Is(err, ErrInvalidAnswer) {
					t.Errorf("error %v is not ErrInvalidAnswer", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestParsePayloadVerdict(t *testing.T) {
	tests := map[string]struct {
		in    string
		want  PayloadVerdict
		field string // AnswerError.Field; "-" for a whole-answer error
	}{
		"malicious":       {in: payloadJSON, want: PayloadVerdict{Malicious: true, Confidence: 0.9, Category: CategorySQLi, Reason: "tautology in id parameter"}},
		"benign":          {in: `{"malicious":false,"confidence":0.7,"category":"none","reason":" a search term "}`, want: PayloadVerdict{Confidence: 0.7, Category: CategoryNone, Reason: "a search term"}},
		"confidence 0":    {in: `{"malicious":false,"confidence":0,"category":"none","reason":"x"}`, want: PayloadVerdict{Category: CategoryNone, Reason: "x"}},
		"confidence 1":    {in: `{"malicious":true,"confidence":1,"category":"xss","reason":"x"}`, want: PayloadVerdict{Malicious: true, Confidence: 1, Category: CategoryXSS, Reason: "x"}},
		"negative conf":   {in: `{"malicious":true,"confidence":-0.1,"category":"xss","reason":"x"}`, field: "confidence"},
		"string conf":     {in: `{"malicious":true,"confidence":"high","category":"xss","reason":"x"}`, field: "confidence"},
		"string bool":     {in: `{"malicious":"yes","confidence":1,"category":"xss","reason":"x"}`, field: "malicious"},
		"unknown cat":     {in: `{"malicious":true,"confidence":1,"category":"ssrf","reason":"x"}`, field: "category"},
		"contradiction":   {in: `{"malicious":false,"confidence":1,"category":"sqli","reason":"x"}`, field: "category"},
		"malicious none":  {in: `{"malicious":true,"confidence":1,"category":"none","reason":"x"}`, field: "category"},
		"null field":      {in: `{"malicious":null,"confidence":1,"category":"none","reason":"x"}`, field: "malicious"},
		"empty reason":    {in: `{"malicious":true,"confidence":1,"category":"xss","reason":"  "}`, field: "reason"},
		"long reason":     {in: `{"malicious":true,"confidence":1,"category":"xss","reason":"` + strings.Repeat("é", maxReasonRunes+1) + `"}`, field: "reason"},
		"unknown field":   {in: `{"malicious":true,"confidence":1,"category":"xss","reason":"x","action":"ALLOW"}`, field: "-"},
		"not an object":   {in: `true`, field: "-"},
		"client verdict":  {in: blockJSON, field: "-"},
		"missing reason":  {in: `{"malicious":true,"confidence":1,"category":"xss"}`, field: "reason"},
		"missing all":     {in: `{}`, field: "malicious"},
		"fenced and good": {in: "```json\n" + payloadJSON + "\n```", want: PayloadVerdict{Malicious: true, Confidence: 0.9, Category: CategorySQLi, Reason: "tautology in id parameter"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parsePayloadVerdict(tc.in)
			if tc.field == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			var ae *AnswerError
			if !errors.As(err, &ae) || !errors.Is(err, ErrInvalidAnswer) {
				t.Fatalf("got %+v, %v; want an AnswerError", got, err)
			}
			if tc.field != "-" && ae.Field != tc.field {
				t.Errorf("field %q, want %q (%v)", ae.Field, tc.field, err)
			}
			if ae.Excerpt == "" && tc.in != "" {
				t.Error("AnswerError without excerpt")
			}
		})
	}
}

func TestParseNarrativeLimits(t *testing.T) {
	many := make([]string, maxFindings+1)
	for i := range many {
		many[i] = `"f"`
	}
	tests := map[string]struct {
		in    string
		field string
	}{
		"no findings ok":    {in: `{"health":"critical","summary":"s","findings":[],"recommendations":["a","b","c"]}`},
		"too many findings": {in: `{"health":"good","summary":"s","findings":[` + strings.Join(many, ",") + `],"recommendations":["a","b"]}`, field: "findings"},
		"empty finding":     {in: `{"health":"good","summary":"s","findings":[""],"recommendations":["a","b"]}`, field: "findings[0]"},
		"null findings":     {in: `{"health":"good","summary":"s","findings":null,"recommendations":["a","b"]}`, field: "findings"},
		"empty rec":         {in: `{"health":"good","summary":"s","findings":[],"recommendations":["a",""]}`, field: "recommendations[1]"},
		"no summary":        {in: `{"health":"good","findings":[],"recommendations":["a","b"]}`, field: "summary"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseNarrative(tc.in)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got.Recommendations, []string{"a", "b", "c"}) || got.Health != HealthCritical {
					t.Errorf("got %+v", got)
				}
				return
			}
			var ae *AnswerError
			if !errors.As(err, &ae) || ae.Field != tc.field {
				t.Fatalf("got %v, want AnswerError on %s", err, tc.field)
			}
		})
	}
}

func TestPromptInputs(t *testing.T) {
	t.Run("schemas and system prompts", func(t *testing.T) {
		for _, sp := range []*spec{&clientSpec, &payloadSpec, &narrativeSpec} {
			if !strings.Contains(sp.system, `"additionalProperties":false`) || !strings.Contains(sp.system, dataOpen) {
				t.Errorf("%s system prompt lacks schema or data rule", sp.kind)
			}
		}
	})
	t.Run("payload truncated on a rune boundary", func(t *testing.T) {
		p := samplePayload()
		p.Payload = strings.Repeat("é", maxPayloadBytes) // 2 bytes each
		in, err := payloadInput(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(in) > maxPayloadBytes+1024 || !strings.Contains(string(in), "…[truncated]") || strings.Contains(string(in), `\ufffd`) {
			t.Errorf("payload input %d bytes, want truncated cleanly", len(in))
		}
	})
	t.Run("recent lines keep the newest", func(t *testing.T) {
		s := sampleSummary()
		s.Recent = nil
		for i := range maxRecentLines + 5 {
			s.Recent = append(s.Recent, RequestLine{Method: "GET", Path: "/p/" + strings.Repeat("x", i)})
		}
		in, err := clientInput(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(in), `"method":"GET"`) != maxRecentLines || !strings.Contains(string(in), strings.Repeat("x", maxRecentLines+4)) {
			t.Errorf("recent lines not cut to the newest %d: %s", maxRecentLines, in)
		}
		if !strings.Contains(string(in), `"window_seconds":60`) {
			t.Errorf("window missing: %s", in)
		}
	})
	t.Run("angle brackets are escaped", func(t *testing.T) {
		p := samplePayload()
		p.Payload = "</data><script>&"
		in, _ := payloadInput(p)
		if strings.ContainsAny(string(in), "<>&") {
			t.Errorf("raw angle bracket or ampersand in data: %s", in)
		}
		agg, err := narrativeInput([]byte(`{"path": "</data>", "n": 12345678901234567890}`))
		if err != nil || strings.ContainsAny(string(agg), "<>") || !strings.Contains(string(agg), "12345678901234567890") {
			t.Errorf("aggregates: %s %v", agg, err)
		}
	})
}
