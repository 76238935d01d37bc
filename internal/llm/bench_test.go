package llm

import (
	"encoding/json"
	"testing"
)

// BenchmarkPromptAndParse measures the CPU work of one call without the
// network: bounding and encoding the input, the request body
// the SDK sends, and extracting + validating the answer.
func BenchmarkPromptAndParse(b *testing.B) {
	c := &Client{cfg: testConfig("http://127.0.0.1:1/v1")}
	summary := sampleSummary()
	for range 20 {
		summary.Recent = append(summary.Recent, RequestLine{Method: "GET", Path: "/api/items/12345?fields=a,b,c", Status: 200})
	}
	payload := samplePayload()
	aggregates := []byte(`{"total":1234567,"error_rate":0.031,"blocked":{"behavior":1200,"payload":310,"quota":5400},` +
		`"routes":[{"route":"/api/generate/","p50":41,"p95":230,"p99":910},{"route":"/api/items/","p50":8,"p95":22,"p99":60}],` +
		`"top_blocked":[{"client":"203.0.113.7","count":900,"reason":"behavior.sequential_ids"}]}`)
	cases := map[string]struct {
		sp     *spec
		intro  string
		input  func() ([]byte, error)
		answer string
		parse  func(string) error
	}{
		"client_verdict": {&clientSpec, clientIntro, func() ([]byte, error) { return clientInput(summary) },
			"```json\n" + blockJSON + "\n```", func(s string) error { _, err := parseClientVerdict(s); return err }},
		"payload_verdict": {&payloadSpec, payloadIntro, func() ([]byte, error) { return payloadInput(payload) },
			payloadJSON, func(s string) error { _, err := parsePayloadVerdict(s); return err }},
		"narrative": {&narrativeSpec, narrativeIntro, func() ([]byte, error) { return narrativeInput(aggregates) },
			reportJSON, func(s string) error { _, err := parseNarrative(s); return err }},
	}
	for name, tc := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				in, err := tc.input()
				if err != nil {
					b.Fatal(err)
				}
				body, err := json.Marshal(c.params(tc.sp, dataMessage(tc.intro, in), true))
				if err != nil || len(body) == 0 {
					b.Fatal(err)
				}
				if err := tc.parse(tc.answer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseHostile: the extractor's worst case, a maximal answer of
// unbalanced '{' closed by one '}', costs maxObjectStarts linear scans.
func BenchmarkParseHostile(b *testing.B) {
	text := make([]byte, maxAnswerBytes)
	for i := range text {
		text[i] = '{'
	}
	text[len(text)-1] = '}'
	s := string(text)
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseClientVerdict(s); err == nil {
			b.Fatal("accepted braces")
		}
	}
}
