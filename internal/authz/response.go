package authz

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// Response headers smartlayer sets.
const (
	HeaderReason = "x-smartlayer-reason"
	HeaderPlan   = "x-smartlayer-plan"
	HeaderScore  = "x-smartlayer-score"

	ownHeaderPrefix = "x-smartlayer-"
)

// toResponse translates a Decision into Envoy's CheckResponse. Every string
// that came from the request is made valid UTF-8 first: protobuf refuses to
// marshal anything else, and the answer must always go out.
func toResponse(d *Decision, detail bool) *authv3.CheckResponse {
	md := metadata(d)
	if d.Allow {
		ok := &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				header(HeaderPlan, d.Plan, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
				header(HeaderScore, strconv.Itoa(d.Score), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
			},
		}
		for _, h := range d.Headers {
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd,
				header(h.Key, h.Value, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
		}
		ok.HeadersToRemove = d.Strip
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: md,
		}
	}
	status := d.status()
	// What the client sees is minimal by default: the status, a generic
	// word and the request id to quote to support. The reason (which rule
	// fired, and so which product answers) stays in the metadata, the
	// access log and the logs, unless server.deny_detail is "reason".
	denied := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Headers: []*corev3.HeaderValueOption{
			header("content-type", "application/json", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		},
		Body: denyBody(d, status, detail),
	}
	if detail {
		denied.Headers = append(denied.Headers, header(HeaderReason, d.Reason, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	for _, h := range d.Headers {
		denied.Headers = append(denied.Headers, header(h.Key, h.Value, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	code := codes.PermissionDenied
	if status == http.StatusTooManyRequests {
		code = codes.ResourceExhausted
	} else if status >= 500 {
		code = codes.Unavailable
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(code), Message: d.Reason},
		HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
		DynamicMetadata: md,
	}
}

// denyBody is the JSON a denied client reads.
func denyBody(d *Decision, status int, detail bool) string {
	reason := ""
	if detail {
		reason = d.Reason
	}
	body, _ := json.Marshal(struct {
		Error     string `json:"error"`
		Reason    string `json:"reason,omitempty"`
		RequestID string `json:"request_id,omitempty"`
	}{errorWord(status), reason, strings.ToValidUTF8(d.RequestID, "\uFFFD")})
	return string(body)
}

func errorWord(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "too_many_requests"
	case status >= 500:
		return "unavailable"
	default:
		return "forbidden"
	}
}

func header(k, v string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: headerValue(v)},
		AppendAction: action,
	}
}

// headerValue makes v safe as an HTTP header value: valid UTF-8 (for
// protobuf) without control characters (for Envoy, which rejects them).
func headerValue(v string) string {
	v = strings.ToValidUTF8(v, "?")
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, v)
}

// metadata is the dynamic metadata Envoy stores under
// "envoy.filters.http.ext_authz", so the access log carries the decision.
func metadata(d *Decision) *structpb.Struct {
	decision, module, reason := metadataDecision(d)
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"decision":       structpb.NewStringValue(decision),
		"module":         structpb.NewStringValue(module),
		"reason":         structpb.NewStringValue(reason),
		"score":          structpb.NewNumberValue(float64(d.Score)),
		"status":         structpb.NewNumberValue(float64(d.status())),
		"shadow":         structpb.NewBoolValue(d.Shadow),
		"user":           structpb.NewStringValue(strings.ToValidUTF8(d.User, "\uFFFD")),
		"rule":           structpb.NewStringValue(d.Rule),
		"field":          structpb.NewStringValue(strings.ToValidUTF8(d.Field, "\uFFFD")),
		"excerpt":        structpb.NewStringValue(strings.ToValidUTF8(d.Excerpt, "\uFFFD")),
		"behavior_score": structpb.NewNumberValue(float64(d.BehaviorScore)),
		"payload_score":  structpb.NewNumberValue(float64(d.PayloadScore)),
		"plan":           structpb.NewStringValue(strings.ToValidUTF8(d.Plan, "\uFFFD")),
		"request_id":     structpb.NewStringValue(strings.ToValidUTF8(d.RequestID, "\uFFFD")),
	}}
}

// metadataDecision is the metadata's decision, module and reason: a shadow
// denial's module and reason on an allowed request.
func metadataDecision(d *Decision) (decision, module, reason string) {
	decision = "allow"
	if !d.Allow {
		decision = "deny"
	}
	module, reason = d.Module, d.Reason
	if d.Allow && d.Shadow {
		module, reason = d.ShadowModule, d.ShadowReason
	}
	return decision, module, reason
}
