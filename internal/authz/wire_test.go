package authz

import (
	"context"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// wireDecisions covers every branch of toResponse: allow with and without
// stage headers and stripped headers, shadow, each denial status, with
// and without detail, and strings protobuf or Envoy would refuse.
var wireDecisions = map[string]Decision{
	"allow": {Allow: true, Module: "", Plan: "free", Score: 0, RequestID: "r-1"},
	"allow with headers": {Allow: true, Plan: "pro", Score: 3, User: "u-7", RequestID: "r-2",
		Headers: []Header{{"RateLimit-Remaining", "9"}, {"RateLimit-Reset", "30"}}, Strip: []string{"x-smartlayer-user"},
		BehaviorScore: 3},
	"shadow": {Allow: true, Shadow: true, ShadowModule: ModulePayload, ShadowReason: "payload.sqli", Rule: "payload.sqli.tautology",
		Field: "query.q", Excerpt: "' or 1=1", PayloadScore: 9, Plan: "free", RequestID: "r-3"},
	"payload deny": {Module: ModulePayload, Reason: "payload.xss", Rule: "payload.xss.tag", Field: "body.$.a",
		Excerpt: "<script>", Score: 12, PayloadScore: 12, BehaviorScore: 2, Plan: "free", User: "u", RequestID: "r-4"},
	"quota 429": {Module: ModuleQuota, Reason: "quota.exceeded", Status: 429, Plan: "free", RequestID: "r-5",
		Headers: []Header{{"Retry-After", "12"}}},
	"fail closed 503": {Module: ModuleFailMode, Reason: ReasonStageError, Status: 503, RequestID: "r-6"},
	"malformed 400":   {Module: ModuleRequest, Reason: ReasonMalformed, Status: 400},
	"negative score":  {Allow: true, Score: -4, Plan: "p"},
	"invalid UTF-8": {Module: ModuleBehavior, Reason: "behavior.ban", User: "u\xff", Plan: "p\xfe", Field: "header.x\xc0",
		Excerpt: "\xff\xfe", RequestID: "id\xff", Headers: []Header{{"x-a", "v\r\nSet-Cookie: x\x7f\xff"}}},
	"empty": {},
}

func TestWireResponseMatches(t *testing.T) {
	for name, d := range wireDecisions {
		for _, detail := range []bool{false, true} {
			t.Run(name, func(t *testing.T) {
				checkWireMatches(t, d, detail)
			})
		}
	}
}

func checkWireMatches(t *testing.T, d Decision, detail bool) {
	t.Helper()
	want := toResponse(&d, detail)
	var got authv3.CheckResponse
	if err := proto.Unmarshal(appendResponse(nil, &d, detail), &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !proto.Equal(want, &got) {
		t.Fatalf("wire response differs from toResponse:\nwant %v\ngot  %v", want, &got)
	}
}

func FuzzWireResponse(f *testing.F) {
	f.Add(true, false, false, 0, 0, "free", "u", "r", "payload.sqli", "query.q", "' or 1=1", "RateLimit-Remaining", "9")
	f.Add(false, true, true, 429, -3, "p\xff", "", "id", "quota.exceeded", "", "", "Retry-After", "1\r\n")
	f.Fuzz(func(t *testing.T, allow, shadow, detail bool, status, score int, plan, user, id, reason, field, excerpt, hk, hv string) {
		if status < 0 || status > 599 {
			status = 0
		}
		d := Decision{Allow: allow, Shadow: shadow, ShadowModule: ModulePayload, ShadowReason: reason, Module: ModulePayload,
			Reason: reason, Status: status, Score: score, Plan: plan, User: user, RequestID: id, Rule: reason,
			Field: field, Excerpt: excerpt, Headers: []Header{{hk, hv}}, Strip: []string{hk}, PayloadScore: score}
		// Strings the pipeline builds are UTF-8 (module, reason, rule,
		// header keys from stages); those from the request are not always.
		if !validUTF8(reason, hk) {
			t.Skip()
		}
		checkWireMatches(t, d, detail)
	})
}

func validUTF8(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// The service as registered answers over real gRPC with the bytes an
// Envoy client decodes as the CheckResponse Check returns.
func TestRegisteredServiceAnswersCheck(t *testing.T) {
	s := NewServer(pipeline(), time.Second)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(ServerCodec())
	s.Register(g)
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	for _, tc := range []struct {
		ip   string
		deny bool
	}{{"203.0.113.9", false}, {"192.0.2.7", true}} {
		req := envoyCheck(tc.ip, "GET", "/a?b=c", map[string]string{"x-request-id": "rid-" + tc.ip})
		got, err := c.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", tc.ip, err)
		}
		want, _ := s.Check(context.Background(), req)
		if !proto.Equal(want, got) {
			t.Fatalf("%s: over gRPC:\nCheck %v\nwire  %v", tc.ip, want, got)
		}
		if (got.GetDeniedResponse() != nil) != tc.deny {
			t.Fatalf("%s: denied=%v, want %v", tc.ip, got.GetDeniedResponse() != nil, tc.deny)
		}
	}
}

// A run the budget cut short finishes on its own; the call it leaves
// behind must not answer a later Check (its answer is drained before the
// call is reused), and a stage that panics leaves the worker working.
func TestRunnerReuseAfterBudgetAndPanic(t *testing.T) {
	slow := &recorder{delay: time.Hour, v: Verdict{Deny: true, Reason: "slow"}}
	boom := &recorder{panic: true}
	deny := &recorder{v: Verdict{Deny: true, Reason: "fast.deny"}}
	s := NewServer(pipeline(NamedStage{Module: ModuleBehavior, Stage: slow}), 5*time.Millisecond)
	for i := range 50 {
		s.Swap(pipeline(NamedStage{Module: ModuleBehavior, Stage: slow}), 5*time.Millisecond)
		d, _ := s.decide(context.Background(), envoyCheck("203.0.113.1", "GET", "/", nil), nameHints{})
		if d.Reason != ReasonBudgetExceeded {
			t.Fatalf("round %d: slow stage answered %q, want %q", i, d.Reason, ReasonBudgetExceeded)
		}
		s.Swap(pipeline(NamedStage{Module: ModuleBehavior, Stage: boom}), time.Second)
		if d, _ := s.decide(context.Background(), envoyCheck("203.0.113.1", "GET", "/", nil), nameHints{}); d.Reason != ReasonInternalFailure {
			t.Fatalf("round %d: panicking stage answered %q", i, d.Reason)
		}
		s.Swap(pipeline(NamedStage{Module: ModuleBehavior, Stage: deny}), time.Second)
		for range 3 {
			if d, _ := s.decide(context.Background(), envoyCheck("203.0.113.1", "GET", "/", nil), nameHints{}); d.Reason != "fast.deny" {
				t.Fatalf("round %d: a fast stage answered %q (a stale answer?)", i, d.Reason)
			}
		}
	}
}
