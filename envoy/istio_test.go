package envoy

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"
	telemetryv1 "istio.io/api/telemetry/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	corev1 "k8s.io/api/core/v1"

	"github.com/smartlayer/smartlayer/deploy/kube"
)

// k8sServicePorts maps "name.namespace.svc.cluster.local" to the Service's port
// numbers by port name, from deploy/kubernetes.
func k8sServicePorts(t *testing.T) map[string]map[string]int {
	t.Helper()
	files, err := kube.YAMLFiles("../deploy/kubernetes")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	out := map[string]map[string]int{}
	for _, f := range files {
		objs, err := kube.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			svc, ok := o.Obj.(*corev1.Service)
			if !ok {
				continue
			}
			ports := map[string]int{}
			for _, p := range svc.Spec.Ports {
				ports[p.Name] = int(p.Port)
			}
			out[svc.Name+"."+svc.Namespace+".svc.cluster.local"] = ports
		}
	}
	return out
}

// istioFiles decodes envoy/istio/*.yaml strictly (deploy/kube: the envelope
// into Kubernetes' ObjectMeta, the spec with protojson into istio.io/api).
func istioFiles(t *testing.T) []kube.Object {
	t.Helper()
	files, err := filepath.Glob("istio/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in envoy/istio (%v)", err)
	}
	var out []kube.Object
	for _, f := range files {
		objs, err := kube.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, objs...)
	}
	return out
}

// spec returns the one Istio resource whose spec is a T.
func spec[T proto.Message](t *testing.T, objs []kube.Object) (*kube.IstioObject, T) {
	t.Helper()
	var found []*kube.IstioObject
	for _, o := range objs {
		if io, ok := o.Obj.(*kube.IstioObject); ok {
			if _, ok := io.Spec.(T); ok {
				found = append(found, io)
			}
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in envoy/istio, got %d", zero, len(found))
	}
	return found[0], found[0].Spec.(T)
}

func TestIstioResources(t *testing.T) {
	cfg := loadSmartlayerConfig(t)
	budget, err := time.ParseDuration(cfg.Server.DecisionBudget)
	if err != nil {
		t.Fatal(err)
	}
	objs := istioFiles(t)
	var ops []*kube.IstioOperator
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *kube.IstioOperator:
			ops = append(ops, v)
			if o.Namespace != "istio-system" || o.Name == "" {
				t.Errorf("%s: IstioOperator belongs in istio-system, named", o)
			}
		case *kube.IstioObject:
			// Istio applies a Telemetry with a selector only in its own namespace, so the
			// policy, the telemetry and the filter go wherever the app is: kubectl apply -n.
			if o.Namespace != "" || o.Name == "" {
				t.Errorf("%s: want a name and no namespace (applied with -n next to the app)", o)
			}
		default:
			t.Errorf("%s: unexpected %T in envoy/istio", o, o.Obj)
		}
	}
	if len(ops) != 1 {
		t.Fatalf("want exactly one IstioOperator, got %d", len(ops))
	}

	authzProviders, alsProviders := map[string]bool{}, map[string]bool{}
	services := k8sServicePorts(t)
	for _, p := range ops[0].MeshConfig.GetExtensionProviders() {
		switch pr := p.GetProvider().(type) {
		case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
			e := pr.EnvoyExtAuthzGrpc
			authzProviders[p.GetName()] = true
			if got := services[e.GetService()]["grpc-authz"]; got == 0 || got != int(e.GetPort()) || e.GetPort() != authzPort {
				t.Errorf("%s: %s:%d, want a Service in deploy/kubernetes with grpc-authz = %d (found %d)", p.GetName(), e.GetService(), e.GetPort(), authzPort, got)
			}
			if d := e.GetTimeout().AsDuration(); e.GetTimeout() == nil || d < budget || d > 2*budget {
				t.Errorf("%s: timeout %v, want between %v and %v", p.GetName(), d, budget, 2*budget)
			}
			b := e.GetIncludeRequestBodyInCheck()
			if b.GetMaxRequestBytes() != cfg.Payload.MaxBodyBytes || !b.GetAllowPartialMessage() || !b.GetPackAsBytes() {
				t.Errorf("%s: includeRequestBodyInCheck %v, want %d bytes, partial, as bytes", p.GetName(), b, cfg.Payload.MaxBodyBytes)
			}
			if e.GetFailOpen() != (cfg.Server.FailMode == "allow") {
				t.Errorf("%s: failOpen %v disagrees with server.fail_mode %q", p.GetName(), e.GetFailOpen(), cfg.Server.FailMode)
			}
		case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyHttpAls:
			a := pr.EnvoyHttpAls
			alsProviders[p.GetName()] = true
			if got := services[a.GetService()]["grpc-als"]; got == 0 || got != int(a.GetPort()) || a.GetPort() != alsPort {
				t.Errorf("%s: %s:%d, want a Service in deploy/kubernetes with grpc-als = %d (found %d)", p.GetName(), a.GetService(), a.GetPort(), alsPort, got)
			}
			for _, h := range nonEmpty(cfg.Identity.UserHeader, cfg.Identity.PlanHeader) {
				if !slices.Contains(a.GetAdditionalRequestHeadersToLog(), h) {
					t.Errorf("%s: additionalRequestHeadersToLog lacks %s", p.GetName(), h)
				}
			}
		default:
			t.Errorf("provider %q: neither envoyExtAuthzGrpc nor envoyHttpAls", p.GetName())
		}
	}

	_, pol := spec[*securityv1.AuthorizationPolicy](t, objs)
	if pol.GetAction() != securityv1.AuthorizationPolicy_CUSTOM {
		t.Errorf("AuthorizationPolicy action %v, want CUSTOM", pol.GetAction())
	}
	if name := pol.GetProvider().GetName(); !authzProviders[name] {
		t.Errorf("AuthorizationPolicy provider %q is not an envoyExtAuthzGrpc provider (have %v)", name, authzProviders)
	}
	_, tel := spec[*telemetryv1.Telemetry](t, objs)
	var named []string
	for _, al := range tel.GetAccessLogging() {
		for _, p := range al.GetProviders() {
			named = append(named, p.GetName())
			if !alsProviders[p.GetName()] {
				t.Errorf("Telemetry provider %q is not an envoyHttpAls provider (have %v)", p.GetName(), alsProviders)
			}
		}
	}
	if len(named) == 0 {
		t.Error("Telemetry enables no access log provider")
	}
	// The workloads whose requests are checked must be the ones whose results are logged
	// (the error-rate signal comes from the access log) and whose headers are cleaned.
	_, ef := spec[*networkingv1alpha3.EnvoyFilter](t, objs)
	sel := pol.GetSelector().GetMatchLabels()
	if len(sel) == 0 || !proto.Equal(pol.GetSelector(), tel.GetSelector()) ||
		!proto.Equal(pol.GetSelector(), &typev1beta1.WorkloadSelector{MatchLabels: ef.GetWorkloadSelector().GetLabels()}) {
		t.Errorf("selectors differ: AuthorizationPolicy %v, Telemetry %v, EnvoyFilter %v", pol.GetSelector(), tel.GetSelector(), ef.GetWorkloadSelector())
	}
}

// TestIstioStripsSmartlayerHeaders: the EnvoyFilter puts a header_mutation that
// removes client-sent x-smartlayer-* headers right before ext_authz, for
// sidecars and gateways alike.
func TestIstioStripsSmartlayerHeaders(t *testing.T) {
	cfg := loadSmartlayerConfig(t)
	// A trusted identity header would have to be stripped before Istio's JWT filter, not
	// here (see envoy/istio/envoyfilter.yaml): the shipped config trusts none.
	if h := nonEmpty(cfg.Identity.UserHeader, cfg.Identity.PlanHeader); len(h) > 0 {
		t.Errorf("the shipped config trusts identity headers %v; envoy/istio strips none of them", h)
	}
	_, ef := spec[*networkingv1alpha3.EnvoyFilter](t, istioFiles(t))
	want := []string{"x-smartlayer-plan", "x-smartlayer-score", "x-smartlayer-reason"}
	contexts := map[networkingv1alpha3.EnvoyFilter_PatchContext]bool{}
	for i, p := range ef.GetConfigPatches() {
		m := p.GetMatch()
		hcm := m.GetListener().GetFilterChain().GetFilter()
		if p.GetApplyTo() != networkingv1alpha3.EnvoyFilter_HTTP_FILTER ||
			p.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_INSERT_BEFORE ||
			hcm.GetName() != "envoy.filters.network.http_connection_manager" ||
			hcm.GetSubFilter().GetName() != "envoy.filters.http.ext_authz" {
			t.Errorf("patch %d: want HTTP_FILTER INSERT_BEFORE envoy.filters.http.ext_authz, got %v", i, p)
			continue
		}
		f, err := kube.HTTPFilter(p)
		if err != nil {
			t.Fatalf("patch %d: %v", i, err)
		}
		var hm headermutationv3.HeaderMutation
		if f.GetName() != "envoy.filters.http.header_mutation" || f.GetTypedConfig().UnmarshalTo(&hm) != nil {
			t.Errorf("patch %d inserts %s (%s), want a header_mutation", i, f.GetName(), f.GetTypedConfig().GetTypeUrl())
			continue
		}
		var removed []string
		for _, rm := range hm.GetMutations().GetRequestMutations() {
			removed = append(removed, rm.GetRemove())
		}
		for _, h := range want {
			if !slices.Contains(removed, h) {
				t.Errorf("patch %d (%v) does not remove %s (removes %v)", i, m.GetContext(), h, removed)
			}
		}
		contexts[m.GetContext()] = true
	}
	for _, c := range []networkingv1alpha3.EnvoyFilter_PatchContext{networkingv1alpha3.EnvoyFilter_SIDECAR_INBOUND, networkingv1alpha3.EnvoyFilter_GATEWAY} {
		if !contexts[c] {
			t.Errorf("no header-stripping patch for %v", c)
		}
	}
}
