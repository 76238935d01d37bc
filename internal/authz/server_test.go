package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// recorder is a stage that records what it saw and answers a fixed verdict.
type recorder struct {
	mu    sync.Mutex // a run the budget cut short may still be in Evaluate
	v     Verdict
	err   error
	delay time.Duration
	seen  []*scoring.Request
	panic bool
}

func (r *recorder) Evaluate(ctx context.Context, req *scoring.Request) (Verdict, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req)
	r.mu.Unlock()
	if r.panic {
		panic("stage bug")
	}
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return Verdict{}, ctx.Err()
		}
	}
	return r.v, r.err
}

func pipeline(stages ...NamedStage) *Pipeline {
	return &Pipeline{
		Deny:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Allow:    []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		Stages:   stages,
		FailOpen: true,
		Identity: *testIdentity(),
	}
}

type denied struct {
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	RequestID string `json:"request_id"`
}

func TestCheckDecisions(t *testing.T) {
	deny403 := Verdict{Deny: true, Reason: "behavior.request_burst", Score: 9}
	deny429 := Verdict{Deny: true, Status: 429, Reason: "quota.per_minute",
		Headers: []Header{{"Retry-After", "12"}, {"RateLimit-Limit", "2"}}}
	allowRL := Verdict{Headers: []Header{{"RateLimit-Remaining", "1"}}}
	tests := map[string]struct {
		peer       string
		stages     []NamedStage
		failOpen   bool
		wantAllow  bool
		wantStatus int
		wantReason string
		wantModule string
		wantShadow bool
		wantHeader map[string]string
	}{
		"no stages allows": {peer: "203.0.113.1", wantAllow: true},
		"deny cidr": {peer: "192.0.2.9", wantStatus: 403, wantReason: ReasonDenyCIDR, wantModule: ModuleLists,
			wantHeader: map[string]string{HeaderReason: ReasonDenyCIDR, "content-type": "application/json"}},
		"behaviour denies": {peer: "203.0.113.1", stages: []NamedStage{{Module: ModuleBehavior, Stage: &recorder{v: deny403}}},
			wantStatus: 403, wantReason: "behavior.request_burst", wantModule: ModuleBehavior},
		"quota 429 with headers": {peer: "203.0.113.1", stages: []NamedStage{{Module: ModuleQuota, Stage: &recorder{v: deny429}}},
			wantStatus: 429, wantReason: "quota.per_minute", wantModule: ModuleQuota,
			wantHeader: map[string]string{"Retry-After": "12", "RateLimit-Limit": "2"}},
		"allowed carries stage headers": {peer: "203.0.113.1", stages: []NamedStage{{Module: ModuleQuota, Stage: &recorder{v: allowRL}}},
			wantAllow: true, wantHeader: map[string]string{"RateLimit-Remaining": "1"}},
		"shadow records and allows": {peer: "203.0.113.1", stages: []NamedStage{
			{Module: ModuleBehavior, Mode: Shadow, Stage: &recorder{v: deny403}},
			{Module: ModuleQuota, Stage: &recorder{v: allowRL}}},
			wantAllow: true, wantShadow: true, wantReason: "behavior.request_burst", wantModule: ModuleBehavior},
		"off stage skipped": {peer: "203.0.113.1", stages: []NamedStage{{Module: ModuleBehavior, Mode: Off, Stage: &recorder{v: deny403}}},
			wantAllow: true},
		"allow list skips behaviour only": {peer: "10.1.2.3", stages: []NamedStage{
			{Module: ModuleBehavior, SkipAllowListed: true, Stage: &recorder{v: deny403}},
			{Module: ModuleQuota, Stage: &recorder{v: deny429}}},
			wantStatus: 429, wantReason: "quota.per_minute", wantModule: ModuleQuota},
		"stage error fails open": {peer: "203.0.113.1", failOpen: true, stages: []NamedStage{{Module: ModuleQuota, Stage: &recorder{err: errors.New("redis down")}}},
			wantAllow: true, wantReason: ReasonStageError, wantModule: ModuleFailMode},
		"stage error fails closed": {peer: "203.0.113.1", failOpen: false, stages: []NamedStage{{Module: ModuleQuota, Stage: &recorder{err: errors.New("redis down")}}},
			wantStatus: 503, wantReason: ReasonStageError, wantModule: ModuleFailMode},
		"budget overrun fails open": {peer: "203.0.113.1", failOpen: true, stages: []NamedStage{{Module: ModuleQuota, Stage: &recorder{delay: time.Second}}},
			wantAllow: true, wantReason: ReasonBudgetExceeded, wantModule: ModuleFailMode},
		"panicking stage fails open": {peer: "203.0.113.1", failOpen: true, stages: []NamedStage{{Module: ModulePayload, Stage: &recorder{panic: true}}},
			wantAllow: true, wantReason: ReasonInternalFailure, wantModule: ModuleFailMode},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := pipeline(tc.stages...)
			p.FailOpen = tc.failOpen || tc.wantAllow
			reg := prometheus.NewRegistry()
			s := NewServer(p, 20*time.Millisecond, WithRegisterer(reg), WithDenyDetail(true))
			start := time.Now()
			resp, err := s.Check(context.Background(), envoyCheck(tc.peer, "GET", "/x", nil))
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Fatalf("Check took %v with a 20ms budget", took)
			}
			// The response must survive the wire.
			if _, err := proto.Marshal(resp); err != nil {
				t.Fatalf("marshal: %v", err)
			}
			md := resp.GetDynamicMetadata().AsMap()
			if md["module"] != tc.wantModule || md["reason"] != tc.wantReason || md["shadow"] != tc.wantShadow {
				t.Fatalf("metadata %v", md)
			}
			headers := map[string]string{}
			if tc.wantAllow {
				if resp.GetOkResponse() == nil || resp.GetStatus().GetCode() != int32(codes.OK) {
					t.Fatalf("want OK, got %v", resp)
				}
				if md["decision"] != "allow" {
					t.Fatalf("metadata decision %v", md["decision"])
				}
				for _, h := range resp.GetOkResponse().GetResponseHeadersToAdd() {
					headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
			} else {
				dr := resp.GetDeniedResponse()
				if dr == nil || int(dr.GetStatus().GetCode()) != tc.wantStatus || md["decision"] != "deny" || md["status"] != float64(tc.wantStatus) {
					t.Fatalf("want denied %d, got %v", tc.wantStatus, resp)
				}
				var body denied
				if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil || body.Reason != tc.wantReason || body.RequestID != "req-1" || body.Error == "" {
					t.Fatalf("body %q: %v", dr.GetBody(), err)
				}
				for _, h := range dr.GetHeaders() {
					headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
			}
			for k, v := range tc.wantHeader {
				if headers[k] != v {
					t.Errorf("header %s = %q, want %q (all: %v)", k, headers[k], v, headers)
				}
			}
			decision := "allow"
			if !tc.wantAllow {
				decision = "deny"
			}
			module, reason := tc.wantModule, tc.wantReason
			if tc.wantShadow {
				module, reason = "", ""
			}
			if got := testutil.ToFloat64(s.m.checks.WithLabelValues(decision, module, reason)); got != 1 {
				t.Errorf("smartlayer_checks_total{%s,%s,%s} = %v", decision, module, reason, got)
			}
		})
	}
}

func TestCheckSurvivesBadInput(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	bad := string([]byte{0xff, 0xfe, 'a', 0x00, '\n'})
	reqs := map[string]*authv3.CheckRequest{
		"nil":            nil,
		"empty":          {},
		"no http":        {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
		"invalid utf8":   envoyCheck("203.0.113.1", bad, "/"+bad, map[string]string{"x-request-id": bad, "x-user-id": bad, "x-user-plan": bad}),
		"1 MiB header":   envoyCheck("203.0.113.1", "GET", "/", map[string]string{"cookie": huge, "x-forwarded-for": huge}),
		"garbage source": envoyCheck("not an address", "GET", "/", nil),
	}
	s := NewServer(pipeline(NamedStage{Module: ModuleQuota, Stage: &recorder{v: Verdict{Deny: true, Reason: "quota.per_minute", Headers: []Header{{"x-echo", bad}}}}}), time.Second)
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := proto.Marshal(resp); err != nil {
				t.Fatalf("response does not marshal: %v", err)
			}
			if resp.GetOkResponse() == nil && resp.GetDeniedResponse() == nil {
				t.Fatalf("no decision: %v", resp)
			}
		})
	}
}

func TestCheckCancelledContext(t *testing.T) {
	s := NewServer(pipeline(), time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Check(ctx, envoyCheck("203.0.113.1", "GET", "/", nil)); err == nil {
		t.Fatal("want an error for a request Envoy already gave up on")
	}
}

func TestSwap(t *testing.T) {
	s := NewServer(pipeline(), time.Second)
	deny := NamedStage{Module: ModuleBehavior, Stage: &recorder{v: Verdict{Deny: true, Reason: "behavior.score"}}}
	s.Swap(pipeline(deny), time.Second)
	resp, _ := s.Check(context.Background(), envoyCheck("203.0.113.1", "GET", "/", nil))
	if resp.GetDeniedResponse() == nil {
		t.Fatal("swapped pipeline not used")
	}
}

func FuzzToRequest(f *testing.F) {
	seed := envoyCheck("203.0.113.7", "GET", "/users/1?q=%27or%201=1", map[string]string{"x-forwarded-for": "1.1.1.1, 2.2.2.2", "x-user-id": "u"})
	b, _ := proto.Marshal(seed)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	s := NewServer(pipeline(), time.Second)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return
		}
		r, _ := toRequest(&req, testIdentity(), time.Now())
		if r.ClientKey == "" || r.Plan == "" {
			t.Fatalf("request without client key or plan: %+v", r)
		}
		resp, err := s.Check(context.Background(), &req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proto.Marshal(resp); err != nil {
			t.Fatalf("response does not marshal: %v", err)
		}
	})
}

// A client that sends our own headers gets them removed (or overwritten)
// before the request reaches the upstream, which trusts them.
func TestClientSentOwnHeadersAreRemoved(t *testing.T) {
	s := NewServer(pipeline(), time.Second)
	req := envoyCheck("203.0.113.9", "GET", "/", map[string]string{
		"x-smartlayer-plan": "premium", "x-smartlayer-score": "0", "x-smartlayer-reason": "trusted",
		"x-smartlayer-anything": "x", "x-other": "kept"})
	resp, err := s.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("not allowed: %v", resp)
	}
	removed := ok.GetHeadersToRemove()
	slices.Sort(removed)
	if want := []string{"x-smartlayer-anything", "x-smartlayer-reason"}; !slices.Equal(removed, want) {
		t.Errorf("headers_to_remove %v, want %v", removed, want)
	}
	set := map[string]string{}
	for _, h := range ok.GetHeaders() {
		set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if set[HeaderPlan] != "anonymous" || set[HeaderScore] != "0" {
		t.Errorf("plan/score headers %v: ours must overwrite the client's", set)
	}
}

// By default a denied client learns the status and the request id, not
// which rule fired (nor, from a header, which product answered); the
// reason is in the dynamic metadata for Envoy's log and ours.
func TestDenyDetailIsOffByDefault(t *testing.T) {
	s := NewServer(pipeline(), time.Second)
	resp, err := s.Check(context.Background(), envoyCheck("192.0.2.9", "GET", "/x", nil))
	if err != nil {
		t.Fatal(err)
	}
	dr := resp.GetDeniedResponse()
	if dr == nil {
		t.Fatalf("deny-listed peer allowed: %v", resp)
	}
	if strings.Contains(dr.GetBody(), ReasonDenyCIDR) || !strings.Contains(dr.GetBody(), `"request_id":"req-1"`) {
		t.Errorf("body %q: want the request id and no reason", dr.GetBody())
	}
	for _, h := range dr.GetHeaders() {
		if strings.HasPrefix(h.GetHeader().GetKey(), "x-smartlayer-") {
			t.Errorf("denial carries %s", h.GetHeader().GetKey())
		}
	}
	if got := resp.GetDynamicMetadata().AsMap()["reason"]; got != ReasonDenyCIDR {
		t.Errorf("metadata reason %v", got)
	}
}

// A CheckRequest without HTTP attributes is denied (400), not failed open.
func TestMalformedRequestIsDenied(t *testing.T) {
	s := NewServer(pipeline(), time.Second)
	for name, req := range map[string]*authv3.CheckRequest{"nil": nil, "empty": {},
		"no http": {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}} {
		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if dr := resp.GetDeniedResponse(); dr == nil || dr.GetStatus().GetCode() != 400 ||
			resp.GetDynamicMetadata().AsMap()["reason"] != ReasonMalformed {
			t.Errorf("%s: %v, want denied 400 %s", name, resp, ReasonMalformed)
		}
	}
}
