package envoy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/smartlayer/smartlayer/internal/manifest"
)

// decode re-reads part of a document into a typed struct; unknown fields fail,
// so a misspelled key in the YAML is caught by the struct that names it.
func decode(v any, into any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(b, into)
}

type istioProviders struct {
	ExtensionProviders []struct {
		Name              string `json:"name"`
		EnvoyExtAuthzGrpc *struct {
			Service                   string `json:"service"`
			Port                      int    `json:"port"`
			Timeout                   string `json:"timeout"`
			FailOpen                  bool   `json:"failOpen"`
			IncludeRequestBodyInCheck struct {
				MaxRequestBytes     uint32 `json:"maxRequestBytes"`
				AllowPartialMessage bool   `json:"allowPartialMessage"`
				PackAsBytes         bool   `json:"packAsBytes"`
			} `json:"includeRequestBodyInCheck"`
		} `json:"envoyExtAuthzGrpc"`
		EnvoyHTTPAls *struct {
			Service                       string   `json:"service"`
			Port                          int      `json:"port"`
			LogName                       string   `json:"logName"`
			AdditionalRequestHeadersToLog []string `json:"additionalRequestHeadersToLog"`
		} `json:"envoyHttpAls"`
	} `json:"extensionProviders"`
}

// k8sServicePorts maps "name.namespace.svc.cluster.local" to the Service's port
// numbers by port name, from deploy/kubernetes.
func k8sServicePorts(t *testing.T) map[string]map[string]int {
	t.Helper()
	files, err := filepath.Glob("../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	out := map[string]map[string]int{}
	for _, f := range files {
		docs, err := manifest.ReadDocs(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if d.Kind() != "Service" {
				continue
			}
			var spec struct {
				Ports []struct {
					Name string `json:"name"`
					Port int    `json:"port"`
				} `json:"ports"`
			}
			if err := yaml.Unmarshal(mustJSON(t, manifest.Get(d.Raw, "spec")), &spec); err != nil {
				t.Fatal(err)
			}
			ports := map[string]int{}
			for _, p := range spec.Ports {
				ports[p.Name] = p.Port
			}
			out[d.Name()+"."+d.Namespace()+".svc.cluster.local"] = ports
		}
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIstioResources(t *testing.T) {
	cfg := loadSmartlayerConfig(t)
	budget, err := time.ParseDuration(cfg.Server.DecisionBudget)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("istio/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in envoy/istio (%v)", err)
	}
	known := map[string]string{ // kind -> apiVersion
		"IstioOperator":       "install.istio.io/v1alpha1",
		"AuthorizationPolicy": "security.istio.io/v1",
		"Telemetry":           "telemetry.istio.io/v1",
	}
	byKind := map[string][]manifest.Doc{}
	for _, f := range files {
		docs, err := manifest.ReadDocs(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			want, ok := known[d.Kind()]
			switch {
			case !ok:
				t.Errorf("%s: unexpected kind %q", d.File, d.Kind())
			case d.APIVersion() != want:
				t.Errorf("%s: %s apiVersion %q, want %q", d.File, d.Kind(), d.APIVersion(), want)
			case d.Name() == "":
				t.Errorf("%s: %s needs metadata.name", d.File, d.Kind())
			case d.Kind() == "IstioOperator" && d.Namespace() != "istio-system":
				t.Errorf("%s: IstioOperator belongs in istio-system", d.File)
			case d.Kind() != "IstioOperator" && d.Namespace() != "":
				// Istio applies a Telemetry with a selector only in its own namespace, so
				// the policy and the telemetry go wherever the app is: kubectl apply -n.
				t.Errorf("%s: %s must not pin a namespace (applied with -n next to the app)", d.File, d.Kind())
			}
			byKind[d.Kind()] = append(byKind[d.Kind()], d)
		}
	}
	for kind := range known {
		if len(byKind[kind]) != 1 {
			t.Fatalf("want exactly one %s, got %d", kind, len(byKind[kind]))
		}
	}

	var mesh istioProviders
	if err := decode(manifest.Get(byKind["IstioOperator"][0].Raw, "spec", "meshConfig"), &mesh); err != nil {
		t.Fatalf("meshConfig: %v", err)
	}
	authzProviders, alsProviders := map[string]bool{}, map[string]bool{}
	services := k8sServicePorts(t)
	for _, p := range mesh.ExtensionProviders {
		switch {
		case p.EnvoyExtAuthzGrpc != nil:
			e := p.EnvoyExtAuthzGrpc
			authzProviders[p.Name] = true
			if got := services[e.Service]["grpc-authz"]; got == 0 || got != e.Port || e.Port != authzPort {
				t.Errorf("%s: %s:%d, want a Service in deploy/kubernetes with grpc-authz = %d (found %d)", p.Name, e.Service, e.Port, authzPort, got)
			}
			d, err := time.ParseDuration(e.Timeout)
			if err != nil || d < budget || d > 2*budget {
				t.Errorf("%s: timeout %q, want between %v and %v (%v)", p.Name, e.Timeout, budget, 2*budget, err)
			}
			b := e.IncludeRequestBodyInCheck
			if b.MaxRequestBytes != cfg.Payload.MaxBodyBytes || !b.AllowPartialMessage || !b.PackAsBytes {
				t.Errorf("%s: includeRequestBodyInCheck %+v, want %d bytes, partial, as bytes", p.Name, b, cfg.Payload.MaxBodyBytes)
			}
			if e.FailOpen != (cfg.Server.FailMode == "allow") {
				t.Errorf("%s: failOpen %v disagrees with server.fail_mode %q", p.Name, e.FailOpen, cfg.Server.FailMode)
			}
		case p.EnvoyHTTPAls != nil:
			a := p.EnvoyHTTPAls
			alsProviders[p.Name] = true
			if got := services[a.Service]["grpc-als"]; got == 0 || got != a.Port || a.Port != alsPort {
				t.Errorf("%s: %s:%d, want a Service in deploy/kubernetes with grpc-als = %d (found %d)", p.Name, a.Service, a.Port, alsPort, got)
			}
			for _, h := range nonEmpty(cfg.Identity.UserHeader, cfg.Identity.PlanHeader) {
				if !slices.Contains(a.AdditionalRequestHeadersToLog, h) {
					t.Errorf("%s: additionalRequestHeadersToLog lacks %s", p.Name, h)
				}
			}
		default:
			t.Errorf("provider %q: neither envoyExtAuthzGrpc nor envoyHttpAls", p.Name)
		}
	}

	pol := byKind["AuthorizationPolicy"][0]
	if manifest.Str(pol.Raw, "spec", "action") != "CUSTOM" {
		t.Errorf("AuthorizationPolicy action %q, want CUSTOM", manifest.Str(pol.Raw, "spec", "action"))
	}
	if name := manifest.Str(pol.Raw, "spec", "provider", "name"); !authzProviders[name] {
		t.Errorf("AuthorizationPolicy provider %q is not an envoyExtAuthzGrpc provider (have %v)", name, authzProviders)
	}
	tel := byKind["Telemetry"][0]
	var telSpec struct {
		Selector      map[string]any `json:"selector"`
		AccessLogging []struct {
			Providers []struct {
				Name string `json:"name"`
			} `json:"providers"`
		} `json:"accessLogging"`
	}
	if err := decode(manifest.Get(tel.Raw, "spec"), &telSpec); err != nil {
		t.Fatalf("Telemetry spec: %v", err)
	}
	var named []string
	for _, al := range telSpec.AccessLogging {
		for _, p := range al.Providers {
			named = append(named, p.Name)
			if !alsProviders[p.Name] {
				t.Errorf("Telemetry provider %q is not an envoyHttpAls provider (have %v)", p.Name, alsProviders)
			}
		}
	}
	if len(named) == 0 {
		t.Error("Telemetry enables no access log provider")
	}
	// The workloads whose requests are checked must be the ones whose results are logged:
	// the error-rate signal comes from the access log.
	if a, b := fmt.Sprint(manifest.Get(pol.Raw, "spec", "selector")), fmt.Sprint(telSpec.Selector); a != b || !strings.Contains(a, "matchLabels") {
		t.Errorf("AuthorizationPolicy selector %s and Telemetry selector %s differ", a, b)
	}
}
