package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
	"github.com/smartlayer/smartlayer/internal/setting"
	"github.com/smartlayer/smartlayer/internal/store"
)

// CurlRequest is a request described the way curl takes it, for
// authz explain.
type CurlRequest struct {
	Method  string
	URL     string   // http://host/path?query
	Headers []string // "Name: value"
	Body    string
	// Client is the client address (as Envoy's edge would put it in
	// x-forwarded-for); Claims, when set, are a verified JWT's payload.
	Client string
	Claims map[string]any
}

// CheckRequest builds the CheckRequest an edge Envoy (envoy/envoy.yaml)
// would send for c.
func (c CurlRequest) CheckRequest() (*authv3.CheckRequest, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("url %q: want http(s)://host/path", c.URL)
	}
	method := c.Method
	if method == "" {
		method = "GET"
		if c.Body != "" {
			method = "POST"
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	client := c.Client
	if client == "" {
		client = "203.0.113.10"
	}
	h := map[string]string{":method": method, ":path": path, ":authority": u.Host, "user-agent": "curl/8.5.0",
		"x-forwarded-for": client, "x-request-id": "explain"}
	for _, line := range c.Headers {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("header %q: want \"Name: value\"", line)
		}
		h[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	http := &authv3.AttributeContext_HttpRequest{Id: "explain", Method: method, Path: path, Host: u.Host,
		Scheme: u.Scheme, Headers: h, RawBody: []byte(c.Body)}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: client}}}},
		Request: &authv3.AttributeContext_Request{Http: http},
	}}
	if c.Claims != nil {
		payload, err := structpb.NewStruct(map[string]any{"jwt_payload": c.Claims})
		if err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
		req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": payload}}
	}
	return req, nil
}

// Explain decides req as serve would with cfg — but on a fresh memory
// store (no history, nothing written to a shared Redis), without the LLM,
// and scoring from the first request — and writes every signal: the
// identity, the decision with its metadata, behaviour's signals and each
// payload finding with its rule, field and weight.
func Explain(ctx context.Context, cfg config.Config, req *authv3.CheckRequest, w io.Writer) error {
	cfg.Store.Backend = store.BackendMemory
	cfg.LLM.BaseURL = ""
	cfg.Payload.LLM.Mode = payload.LLMOff
	cfg.Behavior.GraceRequests = 0
	a := &app{logger: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	if err := a.build(cfg, nil, nil); err != nil {
		return err
	}
	defer a.behavior.Close()
	p, err := a.pipeline(cfg)
	if err != nil {
		return err
	}
	now := time.Now()
	r, ok := authz.ParseRequest(req, p.Identity, now)
	resp, err := authz.NewServer(p, time.Minute).Check(ctx, req)
	if err != nil {
		return err
	}
	md := resp.GetDynamicMetadata().AsMap()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "request\t%s %s\tclient %s\tuser %q\tplan %s\n", r.Method, r.Path, r.ClientKey, r.User, r.Plan)
	if !ok {
		fmt.Fprintln(tw, "\t(no HTTP attributes: not a request Envoy sends)")
	}
	fmt.Fprintf(tw, "decision\t%v\tstatus %v\tmodule %v\treason %v\n", md["decision"], md["status"], md["module"], md["reason"])
	if md["rule"] != "" {
		fmt.Fprintf(tw, "\trule %v\tfield %v\texcerpt %q\n", md["rule"], md["field"], md["excerpt"])
	}
	fmt.Fprintf(tw, "behaviour\tscore %v\t(block at %d, grey zone from %d; a fresh client, no history)\n",
		md["behavior_score"], cfg.Behavior.BlockThreshold, cfg.Behavior.GreyThreshold)

	// Each module on its own, on a second fresh store, for what the
	// pipeline's first deny may have cut short.
	b := &app{logger: a.logger, reg: prometheus.NewRegistry()}
	if err := b.build(cfg, nil, nil); err != nil {
		return err
	}
	defer b.behavior.Close()
	if cfg.Behavior.Mode != setting.Off {
		out, err := b.behavior.Check(ctx, r)
		if err == nil {
			fmt.Fprintf(tw, "\tsignals %s\n", strings.Join(out.Signals, ", "))
		}
	}
	res := b.payload.Inspect(ctx, &payload.Input{Path: r.Path, RawQuery: r.RawQuery, Headers: r.Headers,
		Body: r.Body, ContentType: r.ContentType(), Client: r.ClientKey})
	fmt.Fprintf(tw, "payload\tscore %d\t(block at %d)\t%s\n", res.Score, cfg.Payload.BlockScore, res.Action)
	fs := append([]payload.Finding(nil), res.Findings...)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Weight > fs[j].Weight })
	for _, f := range fs {
		fmt.Fprintf(tw, "\t%s\t%s\t%s\tweight %d\t%q\n", f.Detector, f.Rule, f.Location, f.Weight, f.Excerpt)
	}
	if res.BodySkipped != "" || res.BodyTruncated {
		fmt.Fprintf(tw, "\tbody skipped %q, truncated %v\n", res.BodySkipped, res.BodyTruncated)
	}
	return tw.Flush()
}
