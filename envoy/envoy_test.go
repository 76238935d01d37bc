package envoy

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every typed_config in our YAML must resolve: protojson looks the @type up
	// in the global registry, which these imports fill.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
)

// The contract ports (CONTRACTS.md).
const (
	authzPort = 9001
	alsPort   = 9002
)

// loadBootstrap parses an Envoy YAML bootstrap the strict way Envoy does:
// unknown fields and wrong types fail, every typed_config must name a
// registered type, and the protoc-gen-validate rules hold — including inside
// each Any, which Bootstrap.ValidateAll does not open.
func loadBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	if err := validateAnys(b.ProtoReflect()); err != nil {
		return nil, err
	}
	return &b, nil
}

type validatorAll interface{ ValidateAll() error }

// validateAnys opens every Any below m, validates its content and recurses.
func validateAnys(m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = validateMessage(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = validateMessage(mv.Message())
				return err == nil
			})
		case fd.Message() != nil && !fd.IsMap():
			err = validateMessage(v.Message())
		}
		return err == nil
	})
	return err
}

func validateMessage(m protoreflect.Message) error {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return validateAnys(m)
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("any %s: %w", a.GetTypeUrl(), err)
	}
	if v, ok := inner.(validatorAll); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
		}
	}
	return validateAnys(inner.ProtoReflect())
}

// envoyFiles lists every YAML under envoy/ except istio/ (Istio resources are
// not Envoy bootstraps).
func envoyFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (path == "istio" || path == "testdata") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no Envoy YAML found under envoy/")
	}
	return files
}

func mustBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadBootstrap(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func TestEnvoyFilesAreValidBootstraps(t *testing.T) {
	for _, path := range envoyFiles(t) {
		t.Run(path, func(t *testing.T) {
			b := mustBootstrap(t, path)
			if len(b.GetStaticResources().GetListeners()) == 0 {
				t.Error("no listeners")
			}
		})
	}
}

// TestLoadBootstrapRejects proves the loader is strict enough to catch the
// mistakes Envoy would refuse at startup.
func TestLoadBootstrapRejects(t *testing.T) {
	const tmpl = `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: %s}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %s
          route_config: {virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}]}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              %s: true
              grpc_service: {envoy_grpc: {cluster_name: smartlayer_authz}, timeout: 0.05s}
          - name: envoy.filters.http.router
            typed_config:
              "@type": %s
`
	type args struct{ port, statPrefix, failField, routerType string }
	good := args{"8080", "in", "failure_mode_allow", "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
	tests := map[string]struct {
		mutate  func(a *args)
		wantErr string // "" = must load
	}{
		"valid":                         {mutate: func(*args) {}},
		"misspelled field inside Any":   {mutate: func(a *args) { a.failField = "failure_mode_alow" }, wantErr: "unknown field"},
		"wrong type":                    {mutate: func(a *args) { a.port = `"eighty"` }, wantErr: "portValue"},
		"unregistered typed_config":     {mutate: func(a *args) { a.routerType = "type.googleapis.com/envoy.extensions.filters.http.nosuch.v3.Nosuch" }, wantErr: "nosuch"},
		"validation rule inside an Any": {mutate: func(a *args) { a.statPrefix = `""` }, wantErr: "StatPrefix"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := good
			tc.mutate(&a)
			_, err := loadBootstrap(fmt.Appendf(nil, tmpl, a.port, a.statPrefix, a.failField, a.routerType))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want no error, got %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want error containing %q, got none", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

// smartlayerConfig is the part of deploy/config/smartlayer.yaml Envoy must agree with.
type smartlayerConfig struct {
	Server struct {
		AuthzAddr      string `json:"authz_addr"`
		ALSAddr        string `json:"als_addr"`
		DecisionBudget string `json:"decision_budget"`
		FailMode       string `json:"fail_mode"`
	} `json:"server"`
	Identity struct {
		ClientIP struct {
			Source      string `json:"source"`
			TrustedHops uint32 `json:"trusted_hops"`
		} `json:"client_ip"`
		UserHeader string `json:"user_header"`
		PlanHeader string `json:"plan_header"`
	} `json:"identity"`
	Payload struct {
		MaxBodyBytes uint32 `json:"max_body_bytes"`
	} `json:"payload"`
	Quota struct {
		Plans map[string]json.RawMessage `json:"plans"`
	} `json:"quota"`
}

func loadSmartlayerConfig(t *testing.T) smartlayerConfig {
	t.Helper()
	data, err := os.ReadFile("../deploy/config/smartlayer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c smartlayerConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("smartlayer.yaml: %v", err)
	}
	return c
}

func addrPort(t *testing.T, addr string) uint32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return uint32(n)
}

// The pieces of one bootstrap the checks below look at.
type parts struct {
	hcm        *hcmv3.HttpConnectionManager
	filters    []string // http filter names in order
	extAuthz   *extauthzv3.ExtAuthz
	jwt        *jwtauthnv3.JwtAuthentication
	mutation   *headermutationv3.HeaderMutation
	als        *alsv3.HttpGrpcAccessLogConfig
	clusters   map[string]*clusterv3.Cluster
	authzCName string
	alsCName   string
}

func unpack[T proto.Message](t *testing.T, a *anypb.Any, m T) T {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("unpack %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

func partsOf(t *testing.T, b *bootstrapv3.Bootstrap) parts {
	t.Helper()
	p := parts{clusters: map[string]*clusterv3.Cluster{}}
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 || len(ls[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatalf("want exactly one listener with one filter chain and one network filter")
	}
	p.hcm = unpack(t, ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	for _, f := range p.hcm.GetHttpFilters() {
		p.filters = append(p.filters, f.GetName())
		switch f.GetName() {
		case "envoy.filters.http.ext_authz":
			p.extAuthz = unpack(t, f.GetTypedConfig(), &extauthzv3.ExtAuthz{})
			p.authzCName = p.extAuthz.GetGrpcService().GetEnvoyGrpc().GetClusterName()
		case "envoy.filters.http.jwt_authn":
			p.jwt = unpack(t, f.GetTypedConfig(), &jwtauthnv3.JwtAuthentication{})
		case "envoy.filters.http.header_mutation":
			p.mutation = unpack(t, f.GetTypedConfig(), &headermutationv3.HeaderMutation{})
		}
	}
	for _, l := range p.hcm.GetAccessLog() {
		if l.GetName() == "envoy.access_loggers.http_grpc" {
			p.als = unpack(t, l.GetTypedConfig(), &alsv3.HttpGrpcAccessLogConfig{})
			p.alsCName = p.als.GetCommonConfig().GetGrpcService().GetEnvoyGrpc().GetClusterName()
		}
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		p.clusters[c.GetName()] = c
	}
	if p.extAuthz == nil || p.als == nil {
		t.Fatalf("want an ext_authz filter and an http_grpc access log, got filters %v", p.filters)
	}
	return p
}

func clusterPorts(c *clusterv3.Cluster) []uint32 {
	var ports []uint32
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			ports = append(ports, lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue())
		}
	}
	return ports
}

func isHTTP2(t *testing.T, c *clusterv3.Cluster) bool {
	t.Helper()
	a, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		return false
	}
	o := unpack(t, a, &upstreamhttpv3.HttpProtocolOptions{})
	return o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

func TestEnvoyAgreesWithSmartlayer(t *testing.T) {
	cfg := loadSmartlayerConfig(t)
	budget, err := time.ParseDuration(cfg.Server.DecisionBudget)
	if err != nil {
		t.Fatalf("server.decision_budget: %v", err)
	}
	if budget < 50*time.Millisecond {
		t.Fatalf("server.decision_budget %v: the contract default is 50ms", budget)
	}
	for _, path := range envoyFiles(t) {
		t.Run(path, func(t *testing.T) {
			p := partsOf(t, mustBootstrap(t, path))
			ea := p.extAuthz

			checks := map[string]struct {
				ok   bool
				want string
			}{
				"ext_authz cluster port": {
					slices.Equal(clusterPorts(p.clusters[p.authzCName]), []uint32{authzPort}) &&
						addrPort(t, cfg.Server.AuthzAddr) == authzPort,
					fmt.Sprintf("cluster %q on %d = server.authz_addr", p.authzCName, authzPort),
				},
				"ALS cluster port": {
					slices.Equal(clusterPorts(p.clusters[p.alsCName]), []uint32{alsPort}) &&
						addrPort(t, cfg.Server.ALSAddr) == alsPort,
					fmt.Sprintf("cluster %q on %d = server.als_addr", p.alsCName, alsPort),
				},
				"gRPC clusters speak HTTP/2": {
					p.clusters[p.authzCName] != nil && p.clusters[p.alsCName] != nil &&
						isHTTP2(t, p.clusters[p.authzCName]) && isHTTP2(t, p.clusters[p.alsCName]),
					"explicit_http_config.http2_protocol_options on both",
				},
				"ext_authz timeout >= decision budget": {
					ea.GetGrpcService().GetTimeout().AsDuration() >= budget,
					fmt.Sprintf("timeout %v >= %v", ea.GetGrpcService().GetTimeout().AsDuration(), budget),
				},
				"ext_authz timeout not far above the budget": {
					ea.GetGrpcService().GetTimeout().AsDuration() <= 2*budget,
					"a long timeout would let a stuck authz add latency to every request",
				},
				"ext_authz V3, fail open like fail_mode": {
					ea.GetTransportApiVersion().String() == "V3" && ea.GetFailureModeAllow() == (cfg.Server.FailMode == "allow"),
					"transport_api_version V3, failure_mode_allow = (fail_mode == allow)",
				},
				"ext_authz body": {
					ea.GetWithRequestBody().GetMaxRequestBytes() == cfg.Payload.MaxBodyBytes &&
						ea.GetWithRequestBody().GetAllowPartialMessage() && ea.GetWithRequestBody().GetPackAsBytes(),
					fmt.Sprintf("max_request_bytes = payload.max_body_bytes (%d), partial, as bytes", cfg.Payload.MaxBodyBytes),
				},
				"no peer certificate": {!ea.GetIncludePeerCertificate(), "include_peer_certificate false"},
				"ext_authz sends server.authz_token": {
					bearerToken(ea.GetGrpcService().GetInitialMetadata()) != "",
					`grpc_service.initial_metadata {key: authorization, value: "Bearer <token>"}`,
				},
				"ALS sends server.als_token": {
					bearerToken(p.als.GetCommonConfig().GetGrpcService().GetInitialMetadata()) != "",
					`grpc_service.initial_metadata {key: authorization, value: "Bearer <token>"}`,
				},
				"ALS V3 with log name": {
					p.als.GetCommonConfig().GetTransportApiVersion().String() == "V3" && p.als.GetCommonConfig().GetLogName() != "",
					"common_config transport_api_version V3 and a log_name",
				},
				"ALS logs the identity headers when header identity is on": {
					cfg.Identity.UserHeader == "" ||
						(slices.Contains(p.als.GetAdditionalRequestHeadersToLog(), cfg.Identity.UserHeader) &&
							slices.Contains(p.als.GetAdditionalRequestHeadersToLog(), cfg.Identity.PlanHeader)),
					fmt.Sprintf("additional_request_headers_to_log has %q and %q", cfg.Identity.UserHeader, cfg.Identity.PlanHeader),
				},
				"client-sent trusted headers stripped before ext_authz": {
					stripsBeforeExtAuthz(p, append([]string{"x-smartlayer-plan", "x-smartlayer-score", "x-smartlayer-reason"},
						nonEmpty(cfg.Identity.UserHeader, cfg.Identity.PlanHeader)...)...),
					"a header_mutation filter before ext_authz removes x-smartlayer-* (and the identity headers smartlayer trusts)",
				},
				"ALS does not duplicate entry fields": {
					!slices.ContainsFunc(p.als.GetAdditionalRequestHeadersToLog(), func(h string) bool {
						return h == "user-agent" || h == "referer" || h == "x-request-id" || h == "x-forwarded-for"
					}),
					"user-agent, referer, x-request-id, x-forwarded-for are entry fields already",
				},
				"router is last": {
					len(p.filters) > 0 && p.filters[len(p.filters)-1] == "envoy.filters.http.router",
					"envoy.filters.http.router last",
				},
				"upstream app cluster": {p.clusters["app"] != nil, `a cluster named "app"`},
			}
			for name, c := range checks {
				if !c.ok {
					t.Errorf("%s: want %s", name, c.want)
				}
			}
			checkClientIP(t, p.hcm, cfg.Identity.ClientIP.Source, cfg.Identity.ClientIP.TrustedHops)

			// In-cluster addresses must be Services that deploy/kubernetes creates, on the
			// port Envoy dials.
			services := k8sServicePorts(t)
			for name, c := range p.clusters {
				for _, e := range c.GetLoadAssignment().GetEndpoints() {
					for _, lb := range e.GetLbEndpoints() {
						sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
						if !strings.HasSuffix(sa.GetAddress(), ".svc.cluster.local") {
							continue
						}
						if !slices.Contains(slices.Collect(maps.Values(services[sa.GetAddress()])), int(sa.GetPortValue())) {
							t.Errorf("cluster %s: %s:%d is not a Service port in deploy/kubernetes", name, sa.GetAddress(), sa.GetPortValue())
						}
					}
				}
			}
		})
	}
}

// stripsBeforeExtAuthz reports whether a header_mutation filter placed
// before ext_authz removes every one of names.
func stripsBeforeExtAuthz(p parts, names ...string) bool {
	hm, ea := slices.Index(p.filters, "envoy.filters.http.header_mutation"), slices.Index(p.filters, "envoy.filters.http.ext_authz")
	if hm < 0 || hm > ea {
		return false
	}
	var removed []string
	for _, m := range p.mutation.GetMutations().GetRequestMutations() {
		removed = append(removed, m.GetRemove())
	}
	for _, n := range names {
		if !slices.Contains(removed, n) {
			return false
		}
	}
	return true
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// bearerToken returns the token of an "authorization: Bearer <token>"
// metadata entry, or "".
func bearerToken(md []*corev3.HeaderValue) string {
	for _, h := range md {
		if strings.EqualFold(h.GetKey(), "authorization") {
			if tok, ok := strings.CutPrefix(h.GetValue(), "Bearer "); ok {
				return tok
			}
		}
	}
	return ""
}

// checkClientIP encodes how Envoy's XFF handling maps onto smartlayer's
// identity.client_ip.trusted_hops, which counts from the right of the XFF that
// reaches authz. An Envoy with use_remote_address appends the peer it saw, after
// trusting xff_num_trusted_hops entries itself: smartlayer must trust one more.
// An Envoy without use_remote_address appends nothing: the last entry is the
// one the edge proxy appended, so trusted_hops stays 1.
func checkClientIP(t *testing.T, hcm *hcmv3.HttpConnectionManager, source string, trustedHops uint32) {
	t.Helper()
	if source != "xff" {
		t.Fatalf("identity.client_ip.source %q: these configs are written for xff", source)
	}
	want := uint32(1)
	if hcm.GetUseRemoteAddress().GetValue() {
		want = hcm.GetXffNumTrustedHops() + 1
	}
	if trustedHops != want {
		t.Errorf("identity.client_ip.trusted_hops = %d, want %d for use_remote_address=%v xff_num_trusted_hops=%d",
			trustedHops, want, hcm.GetUseRemoteAddress().GetValue(), hcm.GetXffNumTrustedHops())
	}
	if hcm.GetSkipXffAppend() {
		t.Error("skip_xff_append would hide the client from authz")
	}
}

// TestEdgeIdentityCannotBeSpoofed: at the edge the identity headers must come
// from Envoy (jwt_authn claims), never from the client, and the JWT example must
// not block requests that carry no token.
func TestEdgeIdentityCannotBeSpoofed(t *testing.T) {
	cfg := loadSmartlayerConfig(t)
	p := partsOf(t, mustBootstrap(t, "envoy.yaml"))
	if !p.hcm.GetUseRemoteAddress().GetValue() {
		t.Fatal("envoy.yaml is the edge config: use_remote_address must be true")
	}
	order := func(name string) int { return slices.Index(p.filters, name) }
	if !(order("envoy.filters.http.header_mutation") >= 0 &&
		order("envoy.filters.http.header_mutation") < order("envoy.filters.http.jwt_authn") &&
		order("envoy.filters.http.jwt_authn") < order("envoy.filters.http.ext_authz")) {
		t.Fatalf("want header_mutation < jwt_authn < ext_authz, got %v", p.filters)
	}
	var removed []string
	for _, m := range p.mutation.GetMutations().GetRequestMutations() {
		if r := m.GetRemove(); r != "" {
			removed = append(removed, r)
		}
	}
	// jwt_authn writes x-user-id / x-user-plan for the app: the client's copies go first.
	for _, h := range []string{"x-user-id", "x-user-plan"} {
		if !slices.Contains(removed, h) {
			t.Errorf("header_mutation does not remove client-sent %s (removes %v)", h, removed)
		}
	}
	if !slices.Contains(p.extAuthz.GetMetadataContextNamespaces(), "envoy.filters.http.jwt_authn") {
		t.Error("ext_authz does not forward the jwt_authn metadata namespace")
	}
	for _, r := range p.jwt.GetRules() {
		var safe bool
		for _, req := range r.GetRequires().GetRequiresAny().GetRequirements() {
			safe = safe || req.GetAllowMissing() != nil || req.GetAllowMissingOrFailed() != nil
		}
		if !safe {
			t.Errorf("jwt_authn rule %v: requests without a token would be rejected; want requires_any with allow_missing", r.GetMatch())
		}
	}
	for name, prov := range p.jwt.GetProviders() {
		if prov.GetPayloadInMetadata() == "" {
			t.Errorf("provider %s: payload_in_metadata is empty", name)
		}
		claims := map[string]string{}
		for _, c := range prov.GetClaimToHeaders() {
			claims[c.GetHeaderName()] = c.GetClaimName()
		}
		if cfg.Identity.UserHeader != "" && (claims[cfg.Identity.UserHeader] == "" || claims[cfg.Identity.PlanHeader] == "") {
			t.Errorf("provider %s: claim_to_headers does not set %s and %s", name, cfg.Identity.UserHeader, cfg.Identity.PlanHeader)
		}
	}
}

// TestDemoTokensVerify checks envoy/demo/tokens.env against the demo provider:
// the README's curl examples only work if the tokens verify with the inline JWKS
// and name plans that exist in the quota config.
func TestDemoTokensVerify(t *testing.T) {
	cfg := loadSmartlayerConfig(t)
	p := partsOf(t, mustBootstrap(t, "envoy.yaml"))
	prov := p.jwt.GetProviders()["demo"]
	if prov == nil {
		t.Fatal("no jwt_authn provider named demo")
	}
	var jwks struct {
		Keys []struct{ Kid, N, E string } `json:"keys"`
	}
	if err := json.Unmarshal([]byte(prov.GetLocalJwks().GetInlineString()), &jwks); err != nil || len(jwks.Keys) == 0 {
		t.Fatalf("demo local_jwks: %v (%d keys)", err, len(jwks.Keys))
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range jwks.Keys {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("jwk %s: %v", k.Kid, err)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	tokens := readEnvFile(t, "demo/tokens.env")
	if len(tokens) < 2 {
		t.Fatalf("want at least two demo tokens, got %d", len(tokens))
	}
	plans := map[string]bool{}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			claims, err := verifyRS256(tok, keys)
			if err != nil {
				t.Fatal(err)
			}
			if claims["iss"] != prov.GetIssuer() || !slices.Contains(prov.GetAudiences(), fmt.Sprint(claims["aud"])) {
				t.Errorf("iss %v aud %v, want %s and one of %v", claims["iss"], claims["aud"], prov.GetIssuer(), prov.GetAudiences())
			}
			plan, _ := claims["plan"].(string)
			if _, ok := cfg.Quota.Plans[plan]; !ok {
				t.Errorf("plan %q is not in quota.plans", plan)
			}
			plans[plan] = true
		})
	}
	// A tampered token must fail, or the check above proves nothing.
	for _, tok := range tokens {
		parts := strings.Split(tok, ".")
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"plan":"enterprise"}`))
		if _, err := verifyRS256(strings.Join(parts, "."), keys); err == nil {
			t.Fatal("a token with a swapped payload verified")
		}
		break
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		out[k] = v
	}
	return out
}

func verifyRS256(tok string, keys map[string]*rsa.PublicKey) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS compact token")
	}
	var hdr struct{ Alg, Kid string }
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	key := keys[hdr.Kid]
	if hdr.Alg != "RS256" || key == nil {
		return nil, fmt.Errorf("alg %s kid %s: no matching key", hdr.Alg, hdr.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return claims, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
