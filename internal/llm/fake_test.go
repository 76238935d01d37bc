package llm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRequest is what the fake provider saw of one request.
type fakeRequest struct {
	Path     string
	Auth     string
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	ResponseFormat *struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Name   string          `json:"name"`
			Strict bool            `json:"strict"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	Temperature *float64 `json:"temperature"`
}

func (r fakeRequest) user() string {
	for _, m := range r.Messages {
		if m.Role == "user" {
			return m.Content
		}
	}
	return ""
}

func (r fakeRequest) system() string {
	for _, m := range r.Messages {
		if m.Role == "system" {
			return m.Content
		}
	}
	return ""
}

// fakeLLM is an OpenAI-compatible chat-completions server that records
// requests and answers through a per-test handler. n counts requests from 1.
type fakeLLM struct {
	t        testing.TB
	srv      *httptest.Server
	release  chan struct{} // closed at cleanup: frees hanging handlers
	inFlight atomic.Int32
	maxIn    atomic.Int32

	mu       sync.Mutex
	requests []fakeRequest
	handler  func(n int, req fakeRequest, w http.ResponseWriter, r *http.Request)
}

func newFakeLLM(t testing.TB, handler func(n int, req fakeRequest, w http.ResponseWriter, r *http.Request)) *fakeLLM {
	f := &fakeLLM{t: t, release: make(chan struct{}), handler: handler}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.srv.Close()
	})
	return f
}

func (f *fakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	cur := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxIn.Load()
		if cur <= m || f.maxIn.CompareAndSwap(m, cur) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	req := fakeRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("fake LLM: request body is not JSON: %v", err)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		f.t.Errorf("fake LLM: got %s %s, want POST /v1/chat/completions", r.Method, r.URL.Path)
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	n := len(f.requests)
	h := f.handler
	f.mu.Unlock()
	h(n, req, w, r)
}

func (f *fakeLLM) setHandler(h func(n int, req fakeRequest, w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

func (f *fakeLLM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeLLM) request(i int) fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[i]
}

func (f *fakeLLM) url() string { return f.srv.URL + "/v1" }

// hang blocks until the client gives up or the test ends.
func (f *fakeLLM) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.release:
	}
}

// answer writes a chat completion whose message content is content.
func answer(w http.ResponseWriter, content string) {
	completion(w, map[string]any{"role": "assistant", "content": content}, "stop")
}

func completion(w http.ResponseWriter, msg map[string]any, finish string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "test-model",
		"choices": []any{map[string]any{"index": 0, "finish_reason": finish, "message": msg}},
	})
}

func apiError(w http.ResponseWriter, status int, headers map[string]string) {
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":"status %d","type":"test","code":null,"param":null}}`, status)
}

func always(content string) func(int, fakeRequest, http.ResponseWriter, *http.Request) {
	return func(_ int, _ fakeRequest, w http.ResponseWriter, _ *http.Request) { answer(w, content) }
}

// newFakeClock is a settable clock for the breaker.
func newFakeClock() *testenv.Clock {
	return testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

func testConfig(baseURL string) Config {
	cfg := DefaultConfig()
	cfg.BaseURL = baseURL
	cfg.APIKey = "test-key"
	cfg.Model = "test-model"
	return cfg
}

// newTestClient builds a client with a private registry and closes it at cleanup.
func newTestClient(t testing.TB, cfg Config, opts ...Option) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, reg, nil, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, reg
}

var (
	blockJSON   = `{"action":"BLOCK","confidence":0.92,"reason":"sequential ID enumeration"}`
	payloadJSON = `{"malicious":true,"confidence":0.9,"category":"sqli","reason":"tautology in id parameter"}`
	reportJSON  = `{"health":"degraded","summary":"Errors rose on /api/generate.","findings":["5xx at 4%"],"recommendations":["Check the generate backend","Raise the free plan alert"]}`
)

func sampleSummary() ClientSummary {
	return ClientSummary{
		Client: "203.0.113.7", Plan: "anonymous", UserAgent: "python-requests/2.31",
		Score: 6, Signals: []string{"behavior.suspicious_ua", "behavior.sequential_ids"},
		Window: time.Minute, Requests: 40, Errors: 12, DistinctPaths: 38,
		Recent: []RequestLine{{Method: "GET", Path: "/api/items/101", Status: 200}, {Method: "GET", Path: "/api/items/102", Status: 404}},
	}
}

func samplePayload() PayloadSample {
	return PayloadSample{Method: "GET", Path: "/api/items", Location: "query", Payload: "id=1' OR '1'='1", Detectors: []string{"payload.sqli"}, Score: 2}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
