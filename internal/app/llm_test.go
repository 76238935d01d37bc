package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// fakeProvider is an OpenAI-compatible chat-completions endpoint answering
// every payload question with content (or with status, or not at all).
func fakeProvider(t *testing.T, status int, content string, hang bool) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK {
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":{"message":"boom"}}`)
			return
		}
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}]}`, content)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv.URL + "/v1"
}

// TestPayloadLLMThroughTheApp wires the real LLM client, payload validation
// and behaviour bans as Run does, against good, hanging, erroring and
// garbage providers: only a confident "malicious" verdict blocks, and its
// sender is banned — in sync mode at once, in async mode when the answer
// arrives, and a repeat from another client from the cache.
func TestPayloadLLMThroughTheApp(t *testing.T) {
	const malicious = `{"malicious":true,"confidence":0.9,"category":"shell_injection","reason":"pipe to id"}`
	tests := map[string]struct {
		status  int
		content string
		hang    bool
		mode    payload.LLMMode
		banned  bool
	}{
		"good, sync":    {status: 200, content: malicious, mode: payload.LLMSync, banned: true},
		"good, async":   {status: 200, content: malicious, mode: payload.LLMAsync, banned: true},
		"benign":        {status: 200, content: `{"malicious":false,"confidence":0.9,"category":"none","reason":"a pipe in prose"}`, mode: payload.LLMSync},
		"unsure":        {status: 200, content: `{"malicious":true,"confidence":0.5,"category":"other","reason":"maybe"}`, mode: payload.LLMSync},
		"hanging":       {hang: true, mode: payload.LLMSync},
		"erroring":      {status: 500, mode: payload.LLMSync},
		"garbage":       {status: 200, content: `I think it is fine!`, mode: payload.LLMSync},
		"garbage async": {status: 200, content: `{"malicious":"yes"}`, mode: payload.LLMAsync},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			cfg.LLM.BaseURL, cfg.LLM.Model, cfg.LLM.MaxRetries = fakeProvider(t, tc.status, tc.content, tc.hang), "m", 0
			cfg.Payload.LLM.Mode, cfg.Payload.LLM.Timeout = tc.mode, 300*time.Millisecond
			logger := slog.New(slog.DiscardHandler)
			a := &app{logger: logger, reg: prometheus.NewRegistry()}
			model, err := newLLM(cfg.LLM, a.reg, logger)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(model.Close)
			if err := a.build(cfg, clientVerdicts{model}, payloadVerdicts{model}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.behavior.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- a.payload.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			borderline := func(client string) payload.Result {
				// The decision budget: a sync question ends with it.
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				return a.payload.Inspect(rctx, &payload.Input{Path: "/", RawQuery: "q=foo+%7C+cat", Client: client})
			}
			isBanned := func(client string) bool {
				bans, err := a.behavior.ListBans(context.Background(), time.Now(), 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range bans {
					if b.ClientKey == client {
						return true
					}
				}
				return false
			}

			start := time.Now()
			first := borderline("192.0.2.1")
			if took := time.Since(start); took > 900*time.Millisecond {
				t.Errorf("Inspect took %v: the question outlived payload.llm.timeout", took)
			}
			if tc.mode == payload.LLMSync && (first.Action == payload.Block) != tc.banned {
				t.Fatalf("sync first request: %+v", first)
			}
			if tc.mode == payload.LLMAsync {
				if first.Action != payload.Allow {
					t.Fatalf("async first request blocked: %+v", first)
				}
				deadline := time.Now().Add(3 * time.Second)
				for tc.banned && !isBanned("192.0.2.1") && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond) // a wrong ban would have landed
			}
			if got := isBanned("192.0.2.1"); got != tc.banned {
				t.Fatalf("sender banned %v, want %v", got, tc.banned)
			}
			// A repeat from another client: decided from the cache when the
			// verdict was confident, and that client banned too.
			again := borderline("192.0.2.2")
			if (again.Action == payload.Block) != tc.banned || isBanned("192.0.2.2") != tc.banned {
				t.Fatalf("repeat: %+v, banned %v", again, isBanned("192.0.2.2"))
			}
		})
	}
}

func TestSchemaFix(t *testing.T) {
	for msg, want := range map[string]string{
		"code: 516, message: default: Authentication failed: password is incorrect": "01-smartlayer.sql",
		"code: 497, message: smartlayer: Not enough privileges":                     "grant",
		"dial tcp 127.0.0.1:9000: connect: connection refused":                      "unreachable",
		"something else": "rows spool",
	} {
		if got := schemaFix(errors.New(msg)); !strings.Contains(got, want) {
			t.Errorf("%q: fix %q, want it to mention %q", msg, got, want)
		}
	}
}
