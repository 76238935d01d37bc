// Package envoysim plays Envoy for end-to-end tests: it builds CheckRequests
// the way Envoy's ext_authz filter does (edge listener, use_remote_address,
// with_request_body packed as bytes), applies the answer, asks a simulated
// upstream for allowed requests, and streams HTTPAccessLogEntry batches the
// way Envoy's gRPC access logger does, ext_authz dynamic metadata and the
// UAEX flag included. It uses only public packages.
package envoysim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ExtAuthzNamespace is where Envoy keeps ext_authz dynamic metadata.
const ExtAuthzNamespace = "envoy.filters.http.ext_authz"

// Request is one client request arriving at the simulated Envoy.
type Request struct {
	Client  string // client IP
	Method  string
	Path    string // with query
	Host    string
	Headers map[string]string // lowercased; user-agent absent unless set
	Body    []byte
	// Claims, when set, are the payload of a JWT that Envoy's jwt_authn
	// verified: forwarded to ext_authz in metadata_context under
	// envoy.filters.http.jwt_authn/jwt_payload, as envoy/envoy.yaml does.
	Claims map[string]any
	// Time is the request's start; zero means time.Now().
	Time time.Time
}

// Upstream answers allowed requests: status and time taken.
type Upstream func(r *Request) (status int, latency time.Duration)

// App plays the application the scenarios and the demo drive:
// /reports/slow answers 200 after slow, /missing 404 after 5 ms, any other
// path 200 after 15 ms.
func App(slow time.Duration) Upstream {
	return func(r *Request) (int, time.Duration) {
		switch {
		case strings.HasPrefix(r.Path, "/reports/slow"):
			return 200, slow
		case strings.HasPrefix(r.Path, "/missing"):
			return 404, 5 * time.Millisecond
		default:
			return 200, 15 * time.Millisecond
		}
	}
}

// Result is what the client saw.
type Result struct {
	Allowed   bool
	Status    int
	Reason    string // the deny reason, from the ext_authz metadata
	Headers   map[string]string
	Body      string
	Metadata  map[string]any
	RequestID string
}

// Envoy is one simulated Envoy with its ext_authz and ALS connections.
type Envoy struct {
	authz    authv3.AuthorizationClient
	als      alsv3.AccessLogServiceClient
	upstream Upstream
	node     string
	logName  string
	// MaxBodyBytes mirrors with_request_body.max_request_bytes.
	MaxBodyBytes int
	// AdditionalHeaders mirrors additional_request_headers_to_log.
	AdditionalHeaders []string
	// RouteName is the matched route's name in the access log; Envoy
	// leaves it empty for unnamed routes, and so does the default.
	RouteName string

	mu      sync.Mutex
	stream  alsv3.AccessLogService_StreamAccessLogsClient
	pending []*alsdatav3.HTTPAccessLogEntry
	// The access-log stream lives as long as the Envoy, like Envoy's own,
	// not as long as one Flush call's context.
	streamCtx    context.Context
	cancelStream context.CancelFunc
}

// New returns an Envoy that checks with authz and logs to als (nil: no
// access log).
func New(authz, als grpc.ClientConnInterface, upstream Upstream, node string) *Envoy {
	e := &Envoy{
		authz: authv3.NewAuthorizationClient(authz), upstream: upstream, node: node,
		logName: "smartlayer", MaxBodyBytes: 65536,
		AdditionalHeaders: []string{"x-user-id", "x-user-plan"},
	}
	if als != nil {
		e.als = alsv3.NewAccessLogServiceClient(als)
	}
	e.streamCtx, e.cancelStream = context.WithCancel(context.Background())
	return e
}

// NewRequestID returns an x-request-id like Envoy's (a UUID v4).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// CheckRequest builds the CheckRequest Envoy's ext_authz filter sends for r
// at an edge listener with use_remote_address: true (Envoy appends the
// client to x-forwarded-for and sets x-request-id and x-forwarded-proto).
func (e *Envoy) CheckRequest(r *Request, requestID string) *authv3.CheckRequest {
	method := r.Method
	if method == "" {
		method = "GET"
	}
	host := r.Host
	if host == "" {
		host = "api.example.com"
	}
	h := map[string]string{}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = v
	}
	h[":authority"], h[":method"], h[":path"], h[":scheme"] = host, method, r.Path, "http"
	h["x-forwarded-proto"] = "http"
	h["x-request-id"] = requestID
	if xff := h["x-forwarded-for"]; xff != "" {
		h["x-forwarded-for"] = xff + "," + r.Client
	} else {
		h["x-forwarded-for"] = r.Client
	}
	http := &authv3.AttributeContext_HttpRequest{
		Id: requestID, Method: method, Headers: h, Path: r.Path, Host: host, Scheme: "http",
		Protocol: "HTTP/1.1", Size: int64(len(r.Body)),
	}
	if len(r.Body) > 0 {
		body := r.Body
		if len(body) > e.MaxBodyBytes {
			body = body[:e.MaxBodyBytes]
			h["x-envoy-auth-partial-body"] = "true"
		} else {
			h["x-envoy-auth-partial-body"] = "false"
		}
		http.RawBody = body // pack_as_bytes: true
	}
	start := r.Time
	if start.IsZero() {
		start = time.Now()
	}
	var md *corev3.Metadata
	if r.Claims != nil {
		payload, err := structpb.NewStruct(map[string]any{"jwt_payload": r.Claims})
		if err == nil {
			md = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": payload}}
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socket(r.Client, 40000+int(start.UnixNano()%20000))},
		Destination: &authv3.AttributeContext_Peer{Address: socket("10.0.0.10", 8080)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(start),
			Http: http,
		},
		MetadataContext: md,
	}}
}

func socket(ip string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}
}

// Do sends r through the simulated Envoy: Check, then the upstream when
// allowed, then queues the access-log entry (Flush sends it).
func (e *Envoy) Do(ctx context.Context, r *Request) (Result, error) {
	id := NewRequestID()
	start := r.Time
	if start.IsZero() {
		start = time.Now()
	}
	resp, err := e.authz.Check(ctx, e.CheckRequest(r, id))
	if err != nil {
		return Result{}, fmt.Errorf("check %s %s: %w", r.Method, r.Path, err)
	}
	res := Result{RequestID: id, Headers: map[string]string{}, Metadata: resp.GetDynamicMetadata().AsMap()}
	var latency time.Duration
	flags := &alsdatav3.ResponseFlags{}
	switch {
	case resp.GetOkResponse() != nil:
		res.Allowed = true
		res.Status, latency = e.upstream(r)
		for _, h := range resp.GetOkResponse().GetResponseHeadersToAdd() {
			res.Headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	case resp.GetDeniedResponse() != nil:
		dr := resp.GetDeniedResponse()
		res.Status = int(dr.GetStatus().GetCode())
		if res.Status == 0 {
			res.Status = 403 // Envoy's default for a denial without status
		}
		res.Body = dr.GetBody()
		for _, h := range dr.GetHeaders() {
			res.Headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		res.Reason, _ = res.Metadata["reason"].(string)
		flags.UnauthorizedDetails = &alsdatav3.ResponseFlags_Unauthorized{
			Reason: alsdatav3.ResponseFlags_Unauthorized_EXTERNAL_SERVICE}
		latency = time.Millisecond
	default:
		return Result{}, errors.New("check response without http response")
	}
	if e.als != nil {
		e.queue(e.entry(r, id, start, res, latency, flags, resp.GetDynamicMetadata()))
	}
	return res, nil
}

// Forge queues an access-log entry for a request no Check decided, as
// anyone who reaches the ALS port could send it. requestID "" makes a new
// one; passing a real request's id with another client forges a
// response for someone else's request.
func (e *Envoy) Forge(r *Request, requestID string, status int) {
	e.ForgeAt(r, requestID, status, time.Now())
}

// ForgeAt is Forge with the entry's start time chosen by the forger.
func (e *Envoy) ForgeAt(r *Request, requestID string, status int, at time.Time) {
	if requestID == "" {
		requestID = NewRequestID()
	}
	e.queue(e.entry(r, requestID, at, Result{Allowed: true, Status: status}, time.Millisecond,
		&alsdatav3.ResponseFlags{}, nil))
}

func (e *Envoy) entry(r *Request, id string, start time.Time, res Result, latency time.Duration,
	flags *alsdatav3.ResponseFlags, md *structpb.Struct) *alsdatav3.HTTPAccessLogEntry {
	headers := map[string]string{}
	for _, h := range e.AdditionalHeaders {
		if v, ok := r.Headers[h]; ok {
			headers[h] = v
		}
	}
	common := &alsdatav3.AccessLogCommon{
		DownstreamRemoteAddress:       socket(r.Client, 40000),
		DownstreamDirectRemoteAddress: socket(r.Client, 40000),
		DownstreamLocalAddress:        socket("10.0.0.10", 8080),
		StartTime:                     timestamppb.New(start),
		TimeToLastRxByte:              durationpb.New(100 * time.Microsecond),
		TimeToLastDownstreamTxByte:    durationpb.New(latency),
		ResponseFlags:                 flags,
		RouteName:                     e.RouteName,
		AccessLogType:                 alsdatav3.AccessLogType_DownstreamEnd,
	}
	if res.Allowed {
		common.UpstreamCluster = "app"
		common.UpstreamRemoteAddress = socket("10.0.0.20", 8000)
	}
	if md != nil {
		// Envoy stores ext_authz dynamic metadata under the filter's name.
		common.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{ExtAuthzNamespace: md}}
	}
	method := corev3.RequestMethod_GET
	if v, ok := corev3.RequestMethod_value[strings.ToUpper(r.Method)]; ok {
		method = corev3.RequestMethod(v)
	}
	host := r.Host
	if host == "" {
		host = "api.example.com"
	}
	return &alsdatav3.HTTPAccessLogEntry{
		CommonProperties: common,
		ProtocolVersion:  alsdatav3.HTTPAccessLogEntry_HTTP11,
		Request: &alsdatav3.HTTPRequestProperties{
			RequestMethod: method, Scheme: "http", Authority: host, Path: r.Path,
			UserAgent: r.Headers["user-agent"], Referer: r.Headers["referer"],
			ForwardedFor: r.Client, RequestId: id, RequestHeaders: headers,
			RequestHeadersBytes: 200, RequestBodyBytes: uint64(len(r.Body)),
		},
		Response: &alsdatav3.HTTPResponseProperties{
			ResponseCode:         wrapperspb.UInt32(uint32(res.Status)),
			ResponseHeadersBytes: 120, ResponseBodyBytes: uint64(len(res.Body) + 512),
		},
	}
}

func (e *Envoy) queue(entry *alsdatav3.HTTPAccessLogEntry) {
	e.mu.Lock()
	e.pending = append(e.pending, entry)
	e.mu.Unlock()
}

// Pending returns how many entries wait for Flush.
func (e *Envoy) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

// Flush sends queued entries on the access-log stream, opening it (with
// the identifier, as Envoy does on a stream's first message) when needed.
// ctx bounds only this call.
func (e *Envoy) Flush(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pending) == 0 || e.als == nil {
		return nil
	}
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: e.pending}}}
	if e.stream == nil {
		s, err := e.als.StreamAccessLogs(e.streamCtx)
		if err != nil {
			return fmt.Errorf("open access-log stream: %w", err)
		}
		e.stream = s
		msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{
			Node: &corev3.Node{Id: e.node, Cluster: "edge"}, LogName: e.logName}
	}
	sent := make(chan error, 1)
	go func() { sent <- e.stream.Send(msg) }()
	select {
	case err := <-sent:
		if err != nil {
			e.stream = nil // Envoy reopens the stream on the next flush
			return fmt.Errorf("send access logs: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	e.pending = nil
	return nil
}

// Close ends the access-log stream after the server has read everything.
func (e *Envoy) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.cancelStream()
	if e.stream == nil {
		return nil
	}
	_, err := e.stream.CloseAndRecv()
	e.stream = nil
	return err
}
