package envoy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goyaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// doc is one YAML document with the fields every Kubernetes object has.
type doc struct {
	file string
	raw  map[string]any
}

func (d doc) kind() string       { return str(d.raw, "kind") }
func (d doc) apiVersion() string { return str(d.raw, "apiVersion") }
func (d doc) name() string       { return str(d.raw, "metadata", "name") }
func (d doc) namespace() string  { return str(d.raw, "metadata", "namespace") }

// decode re-reads part of a document into a typed struct; unknown fields fail,
// so a misspelled key in the YAML is caught by the struct that names it.
func decode(v any, into any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(b, into)
}

// readDocs parses every document of a multi-document YAML stream.
func readDocs(path string) ([]doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := goyaml.NewDecoder(bytes.NewReader(data))
	var docs []doc
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m != nil {
			docs = append(docs, doc{file: filepath.Base(path), raw: m})
		}
	}
}

// get walks nested maps; a missing key yields nil.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
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
		docs, err := readDocs(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if d.kind() != "Service" {
				continue
			}
			var spec struct {
				Ports []struct {
					Name string `json:"name"`
					Port int    `json:"port"`
				} `json:"ports"`
			}
			if err := yaml.Unmarshal(mustJSON(t, get(d.raw, "spec")), &spec); err != nil {
				t.Fatal(err)
			}
			ports := map[string]int{}
			for _, p := range spec.Ports {
				ports[p.Name] = p.Port
			}
			out[d.name()+"."+d.namespace()+".svc.cluster.local"] = ports
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
	byKind := map[string][]doc{}
	for _, f := range files {
		docs, err := readDocs(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			want, ok := known[d.kind()]
			switch {
			case !ok:
				t.Errorf("%s: unexpected kind %q", d.file, d.kind())
			case d.apiVersion() != want:
				t.Errorf("%s: %s apiVersion %q, want %q", d.file, d.kind(), d.apiVersion(), want)
			case d.name() == "":
				t.Errorf("%s: %s needs metadata.name", d.file, d.kind())
			case d.kind() == "IstioOperator" && d.namespace() != "istio-system":
				t.Errorf("%s: IstioOperator belongs in istio-system", d.file)
			case d.kind() != "IstioOperator" && d.namespace() != "":
				// Istio applies a Telemetry with a selector only in its own namespace, so
				// the policy and the telemetry go wherever the app is: kubectl apply -n.
				t.Errorf("%s: %s must not pin a namespace (applied with -n next to the app)", d.file, d.kind())
			}
			byKind[d.kind()] = append(byKind[d.kind()], d)
		}
	}
	for kind := range known {
		if len(byKind[kind]) != 1 {
			t.Fatalf("want exactly one %s, got %d", kind, len(byKind[kind]))
		}
	}

	var mesh istioProviders
	if err := decode(get(byKind["IstioOperator"][0].raw, "spec", "meshConfig"), &mesh); err != nil {
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
			for _, h := range []string{cfg.Identity.UserHeader, cfg.Identity.PlanHeader} {
				if !slices.Contains(a.AdditionalRequestHeadersToLog, h) {
					t.Errorf("%s: additionalRequestHeadersToLog lacks %s", p.Name, h)
				}
			}
		default:
			t.Errorf("provider %q: neither envoyExtAuthzGrpc nor envoyHttpAls", p.Name)
		}
	}

	pol := byKind["AuthorizationPolicy"][0]
	if str(pol.raw, "spec", "action") != "CUSTOM" {
		t.Errorf("AuthorizationPolicy action %q, want CUSTOM", str(pol.raw, "spec", "action"))
	}
	if name := str(pol.raw, "spec", "provider", "name"); !authzProviders[name] {
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
	if err := decode(get(tel.raw, "spec"), &telSpec); err != nil {
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
	if a, b := fmt.Sprint(get(pol.raw, "spec", "selector")), fmt.Sprint(telSpec.Selector); a != b || !strings.Contains(a, "matchLabels") {
		t.Errorf("AuthorizationPolicy selector %s and Telemetry selector %s differ", a, b)
	}
}
