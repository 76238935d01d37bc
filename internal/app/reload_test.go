package app

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// TestPayloadReload: a reload's pipeline applies payload.exclusions (and
// the rest of payload.*) to the running validator, and
// behavior.allow_cidrs_skip_payload to the payload stage.
func TestPayloadReload(t *testing.T) {
	cfg := config.Default()
	a := newReloadApp(t, cfg)
	in := &payload.Input{Path: "/cms/pages/42", ContentType: "application/json",
		Body: []byte(`{"html":"<p onclick=\"alert(1)\">hi</p><script>alert(1)</script>"}`)}
	check := func(want payload.Action) {
		t.Helper()
		if res := a.payload.Inspect(context.Background(), in); res.Action != want {
			t.Fatalf("action %v, want %v: %+v", res.Action, want, res.Findings)
		}
	}
	payloadStage := func(p *authz.Pipeline) authz.NamedStage {
		for _, s := range p.Stages {
			if s.Module == authz.ModulePayload {
				return s
			}
		}
		t.Fatal("no payload stage")
		return authz.NamedStage{}
	}

	p, err := a.pipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(payload.Block)
	if payloadStage(p).SkipAllowListed {
		t.Error("allow-listed clients skip payload by default")
	}

	next := cfg
	next.Payload.Exclusions = []payload.Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.html"}, Rules: []string{"xss"}}}
	next.Behavior.AllowCIDRsSkipPayload = true
	if p, err = a.pipeline(next); err != nil {
		t.Fatal(err)
	}
	check(payload.Allow)
	if !payloadStage(p).SkipAllowListed {
		t.Error("allow_cidrs_skip_payload not applied")
	}

	bad := next
	bad.Payload.Exclusions = []payload.Exclusion{{Route: "cms"}}
	if _, err := a.pipeline(bad); err == nil {
		t.Fatal("bad exclusion accepted")
	}
	check(payload.Allow) // the last good configuration stays

	if _, err = a.pipeline(cfg); err != nil {
		t.Fatal(err)
	}
	check(payload.Block)
}

// TestPayloadReloadDropsHeaderCache: header values cached as clean under
// one configuration are inspected again after a reload. The cookie fits
// the default payload.limits.max_values but not the reloaded one; a
// cache kept across the reload would still answer it as clean.
func TestPayloadReloadDropsHeaderCache(t *testing.T) {
	cfg := config.Default()
	a := newReloadApp(t, cfg)
	if _, err := a.pipeline(cfg); err != nil {
		t.Fatal(err)
	}
	in := &payload.Input{Path: "/", Headers: map[string]string{"cookie": "a=1; b=2; c=3; d=4; e=5; f=6"}}
	for range 2 {
		if res := a.payload.Inspect(context.Background(), in); res.Action != payload.Allow || res.TooComplex != "" {
			t.Fatalf("before the reload: %+v", res)
		}
	}
	next := cfg
	next.Payload.Limits.MaxValues = 4
	if _, err := a.pipeline(next); err != nil {
		t.Fatal(err)
	}
	if res := a.payload.Inspect(context.Background(), in); res.TooComplex != payload.LimitValues {
		t.Errorf("after the reload: too complex %q, want %q (the old configuration's cache answered?)", res.TooComplex, payload.LimitValues)
	}
}

// newReloadApp builds the modules for cfg, as authz does at start.
func newReloadApp(t *testing.T, cfg config.Config) *app {
	t.Helper()
	a := &app{logger: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	if err := a.build(cfg, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.behavior.Close() })
	return a
}
