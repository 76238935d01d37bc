// Package kube decodes the shipped Kubernetes, Prometheus-operator, Istio and
// kustomize manifests strictly into their real API types, for the tests in
// deploy/ and envoy/: an unknown, misspelt (wrong case included) or duplicated
// field anywhere in a document is an error, as it is for the API server.
//
//   - Kubernetes objects: k8s.io/api types, decoded the way the API server
//     does (sigs.k8s.io/yaml to JSON, then sigs.k8s.io/json's case-sensitive
//     strict decoder).
//   - ServiceMonitor and PrometheusRule: prometheus-operator's monitoring/v1
//     Go types, the same way.
//   - Istio resources: the envelope strictly, the spec with protojson
//     (DiscardUnknown off) into istio.io/api's protos. An EnvoyFilter's patch
//     values are google.protobuf.Struct there, so HTTP_FILTER patches are also
//     decoded into Envoy's HttpFilter, typed_config included.
//   - kustomization.yaml: a local struct with the fields this repository uses
//     (kustomize's own types module is far heavier than what it would check).
//
// Test support only: the product binaries must not import it (deploy's tests
// check with go list -deps ./cmd/...).
package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	goyaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1 "istio.io/api/security/v1"
	telemetryv1 "istio.io/api/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	// typed_config types an EnvoyFilter may insert; protojson resolves "@type" through the
	// global registry, so an unregistered one is an error.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
)

// Object is one decoded document.
type Object struct {
	File       string // path it was read from
	Index      int    // position of the document in the file
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Obj        any    // *appsv1.Deployment, *IstioObject, *Kustomization, ...
	YAML       []byte // the document alone
}

func (o Object) String() string { return fmt.Sprintf("%s#%d %s/%s", o.File, o.Index, o.Kind, o.Name) }

// IstioObject is an Istio custom resource: Spec is the istio.io/api message
// (*securityv1.AuthorizationPolicy, *telemetryv1.Telemetry, ...).
type IstioObject struct {
	metav1.TypeMeta
	Metadata metav1.ObjectMeta
	Spec     proto.Message
}

// IstioOperator is the install overlay; only spec.meshConfig is allowed in it.
type IstioOperator struct {
	metav1.TypeMeta
	Metadata   metav1.ObjectMeta
	MeshConfig *meshv1alpha1.MeshConfig
}

// Kustomization is a kustomization.yaml (kind Kustomization) or a kustomize
// Component: the fields this repository uses, nothing else accepted.
type Kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Images     []Image  `json:"images,omitempty"`
}

// Image is a kustomization images: entry.
type Image struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

type decodeFunc func(doc []byte) (any, error)

// k8s decodes into a fresh T the way the API server's strict decoding does.
func k8s[T any]() decodeFunc {
	return func(doc []byte) (any, error) {
		v := new(T)
		return v, strictJSON(doc, v)
	}
}

func istio[T any, P interface {
	*T
	proto.Message
}](check func(*IstioObject) error) decodeFunc {
	return func(doc []byte) (any, error) {
		var env struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
			Spec            json.RawMessage   `json:"spec"`
		}
		if err := strictJSON(doc, &env); err != nil {
			return nil, err
		}
		if len(env.Spec) == 0 {
			return nil, errors.New("no spec")
		}
		spec := P(new(T))
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(env.Spec, spec); err != nil {
			return nil, fmt.Errorf("spec: %w", err)
		}
		o := &IstioObject{TypeMeta: env.TypeMeta, Metadata: env.Metadata, Spec: spec}
		if check != nil {
			if err := check(o); err != nil {
				return nil, err
			}
		}
		return o, nil
	}
}

func istioOperator(doc []byte) (any, error) {
	var env struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	if err := strictJSON(doc, &env); err != nil {
		return nil, err
	}
	o := &IstioOperator{TypeMeta: env.TypeMeta, Metadata: env.Metadata, MeshConfig: &meshv1alpha1.MeshConfig{}}
	if len(env.Spec.MeshConfig) == 0 {
		return nil, errors.New("spec.meshConfig missing")
	}
	if err := protojson.Unmarshal(env.Spec.MeshConfig, o.MeshConfig); err != nil {
		return nil, fmt.Errorf("spec.meshConfig: %w", err)
	}
	return o, nil
}

// checkEnvoyFilter decodes every HTTP_FILTER patch value into Envoy's
// HttpFilter: Istio keeps it as a Struct, so its own proto checks nothing there.
func checkEnvoyFilter(o *IstioObject) error {
	ef := o.Spec.(*networkingv1alpha3.EnvoyFilter)
	for i, p := range ef.GetConfigPatches() {
		if p.GetApplyTo() != networkingv1alpha3.EnvoyFilter_HTTP_FILTER || p.GetPatch().GetValue() == nil {
			continue
		}
		if _, err := HTTPFilter(p); err != nil {
			return fmt.Errorf("configPatches[%d]: %w", i, err)
		}
	}
	return nil
}

// HTTPFilter decodes an HTTP_FILTER patch's value into Envoy's HttpFilter,
// typed_config resolved and strict.
func HTTPFilter(p *networkingv1alpha3.EnvoyFilter_EnvoyConfigObjectPatch) (*hcmv3.HttpFilter, error) {
	b, err := protojson.Marshal(p.GetPatch().GetValue())
	if err != nil {
		return nil, err
	}
	f := &hcmv3.HttpFilter{}
	if err := protojson.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("patch.value as an Envoy HttpFilter: %w", err)
	}
	if err := f.ValidateAll(); err != nil {
		return nil, fmt.Errorf("patch.value: %w", err)
	}
	return f, nil
}

func kustomization(doc []byte) (any, error) {
	k := &Kustomization{}
	return k, strictJSON(doc, k)
}

// registry maps "apiVersion kind" to its decoder. A kind not listed here is an
// error: add it, with its real Go type, when a manifest needs it.
var registry = map[string]decodeFunc{
	"v1 Namespace":                                  k8s[corev1.Namespace](),
	"v1 ConfigMap":                                  k8s[corev1.ConfigMap](),
	"v1 Secret":                                     k8s[corev1.Secret](),
	"v1 Service":                                    k8s[corev1.Service](),
	"v1 ServiceAccount":                             k8s[corev1.ServiceAccount](),
	"apps/v1 Deployment":                            k8s[appsv1.Deployment](),
	"batch/v1 CronJob":                              k8s[batchv1.CronJob](),
	"batch/v1 Job":                                  k8s[batchv1.Job](),
	"networking.k8s.io/v1 NetworkPolicy":            k8s[networkingv1.NetworkPolicy](),
	"policy/v1 PodDisruptionBudget":                 k8s[policyv1.PodDisruptionBudget](),
	"autoscaling/v2 HorizontalPodAutoscaler":        k8s[autoscalingv2.HorizontalPodAutoscaler](),
	"monitoring.coreos.com/v1 ServiceMonitor":       k8s[monitoringv1.ServiceMonitor](),
	"monitoring.coreos.com/v1 PodMonitor":           k8s[monitoringv1.PodMonitor](),
	"monitoring.coreos.com/v1 PrometheusRule":       k8s[monitoringv1.PrometheusRule](),
	"kustomize.config.k8s.io/v1beta1 Kustomization": kustomization,
	"kustomize.config.k8s.io/v1alpha1 Component":    kustomization,
	"install.istio.io/v1alpha1 IstioOperator":       istioOperator,
	"security.istio.io/v1 AuthorizationPolicy":      istio[securityv1.AuthorizationPolicy](nil),
	"security.istio.io/v1 RequestAuthentication":    istio[securityv1.RequestAuthentication](nil),
	"security.istio.io/v1 PeerAuthentication":       istio[securityv1.PeerAuthentication](nil),
	"telemetry.istio.io/v1 Telemetry":               istio[telemetryv1.Telemetry](nil),
	"networking.istio.io/v1alpha3 EnvoyFilter":      istio[networkingv1alpha3.EnvoyFilter](checkEnvoyFilter),
}

// strictJSON converts YAML to JSON (duplicate keys are an error) and decodes
// it case-sensitively, unknown and duplicate fields being errors.
func strictJSON(doc []byte, into any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// Decode decodes one YAML document into its real type.
func Decode(doc []byte) (Object, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return Object{}, err
	}
	o := Object{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, YAML: doc}
	dec, ok := registry[head.APIVersion+" "+head.Kind]
	if !ok {
		return o, fmt.Errorf("unknown apiVersion %q kind %q (kube.registry lists the types it decodes)", head.APIVersion, head.Kind)
	}
	obj, err := dec(doc)
	if err != nil {
		return o, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	o.Obj = obj
	return o, nil
}

// SplitDocs returns each non-empty document of a YAML stream as its own YAML.
func SplitDocs(data []byte) ([]*goyaml.Node, error) {
	dec := goyaml.NewDecoder(bytes.NewReader(data))
	var out []*goyaml.Node
	for {
		n := &goyaml.Node{}
		err := dec.Decode(n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == goyaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue
		}
		out = append(out, n)
	}
}

// Encode renders one document node back to YAML.
func Encode(n *goyaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := goyaml.NewEncoder(&b)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadFile decodes every document of a file.
func ReadFile(path string) ([]Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	nodes, err := SplitDocs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Object
	for i, n := range nodes {
		doc, err := Encode(n)
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", path, i, err)
		}
		o, err := Decode(doc)
		o.File, o.Index = path, i
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", path, i, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// YAMLFiles lists the .yaml/.yml files under dir, recursively, sorted.
// A missing dir yields none.
func YAMLFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && p == dir {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
