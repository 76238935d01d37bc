package authz

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// Issue 17: a payload.too_complex denial still takes quota; a denial for
// an attack found does not; a quota failure after it changes nothing.
func TestTooComplexStillCountsQuota(t *testing.T) {
	tooComplex := Verdict{Deny: true, Reason: payload.ReasonTooComplex, Charge: true}
	sqli := Verdict{Deny: true, Reason: payload.ReasonSQLi}
	tests := map[string]struct {
		payload   Verdict
		quota     *recorder
		wantTaken int
		wantMode  Mode
	}{
		"too complex is counted":             {payload: tooComplex, quota: &recorder{}, wantTaken: 1},
		"attack found is not":                {payload: sqli, quota: &recorder{}},
		"quota exhausted: still too_complex": {payload: tooComplex, quota: &recorder{v: Verdict{Deny: true, Status: 429, Reason: "quota.per_minute"}}, wantTaken: 1},
		"quota store down: still denied":     {payload: tooComplex, quota: &recorder{err: errors.New("redis down")}, wantTaken: 1},
		"quota off: not run":                 {payload: tooComplex, quota: &recorder{}, wantMode: Off},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := pipeline(
				NamedStage{Module: ModulePayload, Stage: &recorder{v: tc.payload}},
				NamedStage{Module: ModuleQuota, Mode: tc.wantMode, Counts: true, Stage: tc.quota})
			d, err := p.decide(context.Background(), &scoring.Request{ClientIP: netip.MustParseAddr("203.0.113.1"), Path: "/api"})
			if err != nil {
				t.Fatalf("decide: %v", err)
			}
			if d.Allow || d.Module != ModulePayload || d.Reason != tc.payload.Reason {
				t.Errorf("decision %+v, want the payload denial %s", d, tc.payload.Reason)
			}
			if len(tc.quota.seen) != tc.wantTaken {
				t.Errorf("quota taken %d times, want %d", len(tc.quota.seen), tc.wantTaken)
			}
		})
	}
}

// The real payload stage marks a too-complex denial Charge, and only it.
func TestPayloadStageCharges(t *testing.T) {
	v, err := payload.New(payload.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	st := PayloadStage(v)
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < 65000; i++ {
		fmt.Fprintf(&b, `"<a%d",`, i)
	}
	b.WriteString(`"x"]`)
	hostile := &scoring.Request{Path: "/api", Body: []byte(b.String()), Headers: map[string]string{"content-type": "application/json"}}
	got, err := st.Evaluate(context.Background(), hostile)
	if err != nil || !got.Deny || got.Reason != payload.ReasonTooComplex || !got.Charge {
		t.Errorf("hostile padding: %+v, %v; want a charged too_complex denial", got, err)
	}
	got, err = st.Evaluate(context.Background(), &scoring.Request{Path: "/search", RawQuery: "q=%27+UNION+SELECT+password+FROM+users--"})
	if err != nil || !got.Deny || got.Reason != payload.ReasonSQLi || got.Charge {
		t.Errorf("sqli: %+v, %v; want an uncharged sqli denial", got, err)
	}
}

// A budget that runs out while the payload stage inspects is the
// request's cost: its OnBudget answer (too_complex), not the fail mode;
// in a store stage it is still the fail mode.
func TestBudgetInPayloadIsNotFailOpen(t *testing.T) {
	onBudget := PayloadOnBudget(payload.TooComplexDeny)
	r := &scoring.Request{ClientIP: netip.MustParseAddr("203.0.113.1"), Path: "/api"}
	slowPayload := pipeline(NamedStage{Module: ModulePayload, OnBudget: onBudget, Stage: &recorder{delay: time.Second}})
	s := NewServer(slowPayload, 20*time.Millisecond)
	d, err := s.decideWithin(context.Background(), slowPayload, r)
	if err != nil || d.Allow || d.Module != ModulePayload || d.Reason != payload.ReasonTooComplex {
		t.Errorf("slow payload: %+v, %v; want denied as %s", d, err, payload.ReasonTooComplex)
	}
	shadow := pipeline(NamedStage{Module: ModulePayload, Mode: Shadow, OnBudget: onBudget, Stage: &recorder{delay: time.Second}})
	if d, err := s.decideWithin(context.Background(), shadow, r); err == nil || d.Reason != ReasonBudgetExceeded {
		t.Errorf("slow shadow payload: %+v, %v; want the fail mode", d, err)
	}
	slowQuota := pipeline(NamedStage{Module: ModuleQuota, Stage: &recorder{delay: time.Second}})
	if d, err := s.decideWithin(context.Background(), slowQuota, r); err == nil || !d.Allow || d.Reason != ReasonBudgetExceeded {
		t.Errorf("slow quota: %+v, %v; want the fail mode (open)", d, err)
	}
	// Before the payload stage: a body nobody inspected is not let
	// through; a request without one gets the fail mode.
	slowBehaviour := pipeline(
		NamedStage{Module: ModuleBehavior, Stage: &recorder{delay: time.Second}},
		NamedStage{Module: ModulePayload, OnBudget: onBudget, Stage: &recorder{}})
	withBody := *r
	withBody.Body = []byte(`{"a":1}`)
	if d, err := s.decideWithin(context.Background(), slowBehaviour, &withBody); err != nil || d.Allow || d.Reason != payload.ReasonTooComplex {
		t.Errorf("slow behaviour, body: %+v, %v; want %s", d, err, payload.ReasonTooComplex)
	}
	if d, err := s.decideWithin(context.Background(), slowBehaviour, r); err == nil || d.Reason != ReasonBudgetExceeded {
		t.Errorf("slow behaviour, no body: %+v, %v; want the fail mode", d, err)
	}
	// After a charged denial, a slow quota changes nothing.
	chargedThenSlow := pipeline(
		NamedStage{Module: ModulePayload, OnBudget: onBudget, Stage: &recorder{v: Verdict{Deny: true, Reason: payload.ReasonTooComplex, Charge: true}}},
		NamedStage{Module: ModuleQuota, Counts: true, Stage: &recorder{delay: time.Second}})
	if d, err := s.decideWithin(context.Background(), chargedThenSlow, r); err != nil || d.Allow || d.Reason != payload.ReasonTooComplex {
		t.Errorf("charged denial, slow quota: %+v, %v; want %s", d, err, payload.ReasonTooComplex)
	}
	// After the payload stage passed, a slow quota is ours: the fail mode.
	passedThenSlow := pipeline(
		NamedStage{Module: ModulePayload, OnBudget: onBudget, Stage: &recorder{}},
		NamedStage{Module: ModuleQuota, Counts: true, Stage: &recorder{delay: time.Second}})
	if d, err := s.decideWithin(context.Background(), passedThenSlow, &withBody); err == nil || d.Reason != ReasonBudgetExceeded {
		t.Errorf("payload passed, slow quota: %+v, %v; want the fail mode", d, err)
	}
	if v := PayloadOnBudget(payload.TooComplexBorderline); v == nil || v.Deny {
		t.Errorf("borderline: %+v, want an allow", v)
	}
}
