package authz

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/quota"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

type subjects []string

func (s *subjects) Take(_ context.Context, k quota.Key, _ time.Time) (quota.Result, error) {
	*s = append(*s, k.Subject)
	return quota.Result{Decision: quota.Allowed}, nil
}

// Anonymous quota subjects group IPv6 as behaviour does: rotating
// addresses inside one /64 is one subject (issue 18).
func TestQuotaStageGroupsIPv6(t *testing.T) {
	var got subjects
	st := QuotaStage(&got, 0, 64)
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "192.0.2.7", "::ffff:192.0.2.7"} {
		ip := netip.MustParseAddr(a)
		if _, err := st.Evaluate(context.Background(), &scoring.Request{ClientIP: ip, ClientKey: ip.String(), Path: "/a"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Evaluate(context.Background(), &scoring.Request{User: "42", ClientKey: "2001:db8::1", Path: "/a"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"ip:2001:db8:1:2::/64", "ip:2001:db8:1:2::/64", "ip:2001:db8:1:3::/64", "ip:192.0.2.7", "ip:192.0.2.7", "u:42"}
	if len(got) != len(want) {
		t.Fatalf("subjects %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("subject %d = %q, want %q", i, got[i], want[i])
		}
	}
}

type fixedInspector payload.Result

func (f fixedInspector) Inspect(context.Context, *payload.Input) payload.Result {
	return payload.Result(f)
}

// A payload denial is explained where operators look — metadata (so the
// access log and Envoy's own log), not the client: rule, field, a short
// excerpt (redacted for credentials) and each module's score apart.
func TestPayloadDenialIsExplained(t *testing.T) {
	tests := map[string]struct {
		finding     payload.Finding
		wantExcerpt string
	}{
		"query value": {payload.Finding{Detector: "sqli", Rule: "payload.sqli.tautology", Location: "query:q",
			Excerpt: "' or 1=1 -- " + strings.Repeat("x", 100), Weight: 3}, "' or 1=1 -- " + strings.Repeat("x", 52)},
		"credentials": {payload.Finding{Detector: "sqli", Rule: "payload.sqli.tautology", Location: "header:authorization",
			Excerpt: "Basic ' or 1=1", Weight: 3}, "[redacted]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := payload.Result{Action: payload.Block, Score: 3, Reason: payload.ReasonSQLi, Rule: tc.finding.Rule,
				Findings: []payload.Finding{{Detector: "xss", Location: "header:referer", Weight: 1}, tc.finding}}
			s := NewServer(pipeline(
				NamedStage{Module: ModuleBehavior, Stage: &recorder{v: Verdict{Score: 2}}},
				NamedStage{Module: ModulePayload, Stage: PayloadStage(fixedInspector(res))}), time.Second)
			resp, err := s.Check(context.Background(), envoyCheck("203.0.113.4", "GET", "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			md := resp.GetDynamicMetadata().AsMap()
			want := map[string]any{"reason": payload.ReasonSQLi, "rule": "payload.sqli.tautology", "field": tc.finding.Location,
				"excerpt": tc.wantExcerpt, "behavior_score": 2.0, "payload_score": 3.0}
			for k, v := range want {
				if md[k] != v {
					t.Errorf("metadata %s = %v, want %v", k, md[k], v)
				}
			}
			if body := resp.GetDeniedResponse().GetBody(); strings.Contains(body, "sqli") || strings.Contains(body, "1=1") {
				t.Errorf("the client is told too much: %s", body)
			}
		})
	}
}
