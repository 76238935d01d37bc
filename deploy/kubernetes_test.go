package deploy

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/smartlayer/smartlayer/internal/manifest"
)

const k8sDir = repo + "/deploy/kubernetes"

// Minimal Kubernetes shapes: only the fields the checks read.
type (
	container struct {
		Name    string   `json:"name"`
		Image   string   `json:"image"`
		Command []string `json:"command"`
		Args    []string `json:"args"`
		Ports   []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		EnvFrom []struct {
			SecretRef *struct {
				Name string `json:"name"`
			} `json:"secretRef"`
		} `json:"envFrom"`
		ReadinessProbe *probe `json:"readinessProbe"`
		LivenessProbe  *probe `json:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `json:"requests"`
			Limits   map[string]string `json:"limits"`
		} `json:"resources"`
		SecurityContext struct {
			RunAsNonRoot             *bool `json:"runAsNonRoot"`
			ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
		} `json:"securityContext"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
		} `json:"volumeMounts"`

		owner string // "Deployment/x" etc., filled by the loader
	}
	probe struct {
		HTTPGet struct {
			Path string `json:"path"`
			Port any    `json:"port"`
		} `json:"httpGet"`
	}
	podSpec struct {
		RestartPolicy   string `json:"restartPolicy"`
		SecurityContext struct {
			RunAsNonRoot *bool `json:"runAsNonRoot"`
			RunAsUser    *int  `json:"runAsUser"`
		} `json:"securityContext"`
		Containers []container `json:"containers"`
		Volumes    []struct {
			Name      string         `json:"name"`
			EmptyDir  map[string]any `json:"emptyDir"`
			ConfigMap *struct {
				Name string `json:"name"`
			} `json:"configMap"`
		} `json:"volumes"`
	}
	servicePort struct {
		Name        string `json:"name"`
		Port        int    `json:"port"`
		TargetPort  any    `json:"targetPort"`
		AppProtocol string `json:"appProtocol"`
	}
)

type manifests struct {
	byKind map[string][]manifest.Doc
	files  []string
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(k8sDir + "/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests (%v)", err)
	}
	m := manifests{byKind: map[string][]manifest.Doc{}}
	for _, f := range files {
		docs, err := manifest.ReadDocs(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) == 0 {
			t.Errorf("%s: no documents", f)
		}
		for _, d := range docs {
			m.byKind[d.Kind()] = append(m.byKind[d.Kind()], d)
		}
		m.files = append(m.files, filepath.Base(f))
	}
	return m
}

func (m manifests) one(t *testing.T, kind string) manifest.Doc {
	t.Helper()
	if len(m.byKind[kind]) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(m.byKind[kind]))
	}
	return m.byKind[kind][0]
}

func podOf(t *testing.T, d manifest.Doc) podSpec {
	t.Helper()
	keys := []any{"spec", "template", "spec"}
	if d.Kind() == "CronJob" {
		keys = []any{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	var p podSpec
	decode(t, manifest.Get(d.Raw, keys...), &p)
	for i := range p.Containers {
		p.Containers[i].owner = d.Kind() + "/" + d.Name()
	}
	return p
}

// k8sContainers lists the containers of every workload (Deployment, CronJob).
func k8sContainers(t *testing.T) []container {
	t.Helper()
	m := loadManifests(t)
	var out []container
	for _, kind := range []string{"Deployment", "CronJob"} {
		for _, d := range m.byKind[kind] {
			out = append(out, podOf(t, d).Containers...)
		}
	}
	return out
}

func TestManifestsWellFormed(t *testing.T) {
	m := loadManifests(t)
	want := map[string]string{
		"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
		"Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1",
		"HorizontalPodAutoscaler": "autoscaling/v2", "CronJob": "batch/v1",
		"NetworkPolicy": "networking.k8s.io/v1",
		"Kustomization": "kustomize.config.k8s.io/v1beta1",
	}
	for kind, docs := range m.byKind {
		for _, d := range docs {
			switch {
			case want[kind] == "":
				t.Errorf("%s: unexpected kind %q", d.File, kind)
			case d.APIVersion() != want[kind]:
				t.Errorf("%s: %s apiVersion %q, want %q", d.File, kind, d.APIVersion(), want[kind])
			case kind != "Kustomization" && d.Name() == "":
				t.Errorf("%s: %s without metadata.name", d.File, kind)
			case kind != "Kustomization" && kind != "Namespace" && d.Namespace() != "smartlayer":
				t.Errorf("%s: %s/%s in namespace %q, want smartlayer", d.File, kind, d.Name(), d.Namespace())
			}
		}
	}
	for kind := range want {
		if len(m.byKind[kind]) == 0 {
			t.Errorf("no %s", kind)
		}
	}
	// kubectl apply -k must ship everything except the example Secret.
	var k struct {
		Resources []string `json:"resources"`
	}
	decode(t, m.one(t, "Kustomization").Raw, &k)
	for _, f := range m.files {
		listed := slices.Contains(k.Resources, f)
		switch {
		case f == "kustomization.yaml":
		case strings.Contains(f, "example"):
			if listed {
				t.Errorf("kustomization ships the example %s", f)
			}
		case !listed:
			t.Errorf("kustomization does not list %s", f)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization: %v", err)
		}
	}
}

// resolvePort finds the container port a probe or Service targetPort names.
func resolvePort(c container, p any) (int, error) {
	for _, cp := range c.Ports {
		switch v := p.(type) {
		case string:
			if cp.Name == v {
				return cp.ContainerPort, nil
			}
		case int, float64:
			if fmt.Sprint(v) == fmt.Sprint(cp.ContainerPort) {
				return cp.ContainerPort, nil
			}
		}
	}
	return 0, fmt.Errorf("port %v is not a port of container %s", p, c.Name)
}

// checkServicePorts: every Service port must reach a container port with the
// same number (clients dial 9001/9002 whether they go through the Service or
// not) and carry a name Istio's protocol selection understands.
func checkServicePorts(ports []servicePort, c container) []error {
	var errs []error
	for _, sp := range ports {
		cp, err := resolvePort(c, sp.TargetPort)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("service port %s: %w", sp.Name, err))
		case cp != sp.Port:
			errs = append(errs, fmt.Errorf("service port %s: %d targets container port %d", sp.Name, sp.Port, cp))
		}
		if !strings.HasPrefix(sp.Name, "grpc-") && !strings.HasPrefix(sp.Name, "http-") {
			errs = append(errs, fmt.Errorf("service port %q: name it grpc-* or http-* for Istio", sp.Name))
		}
	}
	return errs
}

func TestDeploymentAndServices(t *testing.T) {
	m := loadManifests(t)
	cfg := loadConfig(t)
	dep := m.one(t, "Deployment")
	pod := podOf(t, dep)
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	// Container ports = the config's listen addresses.
	for name, addr := range map[string]string{"grpc-authz": cfg.Server.AuthzAddr, "grpc-als": cfg.Server.ALSAddr, "http-admin": cfg.Server.AdminAddr} {
		_, want := hostPort(t, addr)
		if got, err := resolvePort(c, name); err != nil || got != want {
			t.Errorf("container port %s = %d (%v), want %d from the config", name, got, err, want)
		}
	}
	_, admin := hostPort(t, cfg.Server.AdminAddr)
	for name, pr := range map[string]struct {
		p    *probe
		path string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
		if pr.p == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		if port, err := resolvePort(c, pr.p.HTTPGet.Port); pr.p.HTTPGet.Path != pr.path || err != nil || port != admin {
			t.Errorf("%s probe %s on %v (%v), want %s on the admin port %d", name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, err, pr.path, admin)
		}
	}
	checkWorkload(t, m, pod, c)

	labels, _ := manifest.Get(dep.Raw, "spec", "template", "metadata", "labels").(map[string]any)
	subset := func(sel any) bool {
		s, ok := sel.(map[string]any)
		if !ok || len(s) == 0 {
			return false
		}
		for k, v := range s {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	if !subset(manifest.Get(dep.Raw, "spec", "selector", "matchLabels")) {
		t.Error("Deployment selector does not match its pod labels")
	}
	if !subset(manifest.Get(m.one(t, "PodDisruptionBudget").Raw, "spec", "selector", "matchLabels")) {
		t.Error("PodDisruptionBudget selector does not match the Deployment's pods")
	}
	hpa := m.one(t, "HorizontalPodAutoscaler")
	if manifest.Str(hpa.Raw, "spec", "scaleTargetRef", "kind") != "Deployment" || manifest.Str(hpa.Raw, "spec", "scaleTargetRef", "name") != dep.Name() {
		t.Error("HPA does not target the Deployment")
	}
	if len(m.byKind["Service"]) == 0 {
		t.Fatal("no Service")
	}
	for _, svc := range m.byKind["Service"] {
		if !subset(manifest.Get(svc.Raw, "spec", "selector")) {
			t.Errorf("Service %s selector does not match the Deployment's pods", svc.Name())
		}
		var spec struct {
			Ports []servicePort `json:"ports"`
		}
		decode(t, manifest.Get(svc.Raw, "spec"), &spec)
		for _, err := range checkServicePorts(spec.Ports, c) {
			t.Errorf("Service %s: %v", svc.Name(), err)
		}
	}
	// The port check must be able to fail.
	bad := []servicePort{{Name: "grpc-authz", Port: 9001, TargetPort: "grpc-als"}, {Name: "authz", Port: 9001, TargetPort: 9001}, {Name: "grpc-x", Port: 1, TargetPort: "nope"}}
	if errs := checkServicePorts(bad, c); len(errs) != 3 {
		t.Errorf("checkServicePorts on bad ports: want 3 errors, got %v", errs)
	}
}

// checkWorkload holds what the Deployment and the CronJob share.
func checkWorkload(t *testing.T, m manifests, pod podSpec, c container) {
	t.Helper()
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("%s: pod needs runAsNonRoot and a numeric non-zero runAsUser (the image's USER is a name)", c.owner)
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: want readOnlyRootFilesystem true and allowPrivilegeEscalation false", c.owner)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("%s: want cpu/memory requests and a memory limit, got %+v", c.owner, c.Resources)
	}
	// --config points into the ConfigMap volume, at the key the ConfigMap has.
	cfgPath := argAfter(c.Args, "--config")
	cm := m.one(t, "ConfigMap")
	var found bool
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != path.Dir(cfgPath) {
			continue
		}
		for _, v := range pod.Volumes {
			found = found || (v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name() &&
				manifest.Get(cm.Raw, "data", path.Base(cfgPath)) != nil)
		}
	}
	if !found {
		t.Errorf("%s: --config %q is not the ConfigMap %s mounted with that key", c.owner, cfgPath, cm.Name())
	}
	secret := m.one(t, "Secret")
	if len(c.EnvFrom) == 0 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != secret.Name() {
		t.Errorf("%s: want envFrom the Secret %s", c.owner, secret.Name())
	}
}

func TestConfigMapIsTheConfigFile(t *testing.T) {
	m := loadManifests(t)
	embedded := manifest.Str(m.one(t, "ConfigMap").Raw, "data", "config.yaml")
	file, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := yaml.Unmarshal([]byte(embedded), &a); err != nil || a == nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	if err := yaml.Unmarshal(file, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("deploy/kubernetes/configmap.yaml's config.yaml differs from deploy/config/smartlayer.yaml; regenerate it:\n" +
			"  sed 's/^/    /; s/^    $//' deploy/config/smartlayer.yaml  (below the `config.yaml: |` line)")
	}
}

func TestSpoolAndSecrets(t *testing.T) {
	m := loadManifests(t)
	cfg := loadConfig(t)
	pod := podOf(t, m.one(t, "Deployment"))
	c := pod.Containers[0]
	var spool bool
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != cfg.AccessLog.SpoolDir {
			continue
		}
		for _, v := range pod.Volumes {
			spool = spool || (v.Name == vm.Name && v.EmptyDir != nil)
		}
	}
	if !spool {
		t.Errorf("no emptyDir mounted at accesslog.spool_dir %s", cfg.AccessLog.SpoolDir)
	}
	keys, _ := manifest.Get(m.one(t, "Secret").Raw, "stringData").(map[string]any)
	for _, k := range []string{"SMARTLAYER_LLM_API_KEY", "SMARTLAYER_ACCESSLOG_CLICKHOUSE_PASSWORD"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("Secret example lacks %s", k)
		}
	}
}

func TestReporterCronJob(t *testing.T) {
	m := loadManifests(t)
	cj := m.one(t, "CronJob")
	for field, want := range map[string]string{"schedule": "0 6 * * *", "concurrencyPolicy": "Forbid"} {
		if got := manifest.Str(cj.Raw, "spec", field); got != want {
			t.Errorf("CronJob %s %q, want %q", field, got, want)
		}
	}
	pod := podOf(t, cj)
	if pod.RestartPolicy != "OnFailure" {
		t.Errorf("CronJob restartPolicy %q, want OnFailure", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one reporter container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	authz := podOf(t, m.one(t, "Deployment")).Containers[0]
	if c.Image != authz.Image || c.Image == "" || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("reporter image %q, authz image %q: want the same pinned image", c.Image, authz.Image)
	}
	if path.Base(c.Command[0]) != "reporter" {
		t.Errorf("CronJob runs %q, want the reporter binary", c.Command)
	}
	checkWorkload(t, m, pod, c)
}

// TestNetworkPolicyAdmitsOnlyWhatIsNeeded: every authz port is covered by a
// rule with a source restriction, so no port is open to the whole cluster.
func TestNetworkPolicyAdmitsOnlyWhatIsNeeded(t *testing.T) {
	m := loadManifests(t)
	var np struct {
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"podSelector"`
			PolicyTypes []string `json:"policyTypes"`
			Ingress     []struct {
				From  []map[string]any `json:"from"`
				Ports []struct {
					Port int `json:"port"`
				} `json:"ports"`
			} `json:"ingress"`
		} `json:"spec"`
	}
	decode(t, m.one(t, "NetworkPolicy").Raw, &np)
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] != "authz" || !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Fatalf("NetworkPolicy must select the authz pods for Ingress: %+v", np.Spec)
	}
	restricted := map[int]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("an ingress rule without from admits everyone: ports %+v", rule.Ports)
			continue
		}
		for _, p := range rule.Ports {
			restricted[p.Port] = true
		}
	}
	for _, port := range []int{9001, 9002, 9090} {
		if !restricted[port] {
			t.Errorf("port %d has no source-restricted rule", port)
		}
	}
}
