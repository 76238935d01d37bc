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

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/smartlayer/smartlayer/deploy/kube"
)

const k8sDir = repo + "/deploy/kubernetes"

// manifests is everything under deploy/kubernetes, each document decoded
// strictly into its real type (deploy/kube).
type manifests struct {
	objs  []kube.Object
	files []string // every YAML file, relative to k8sDir
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := kube.YAMLFiles(k8sDir)
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests (%v)", err)
	}
	var m manifests
	for _, f := range files {
		objs, err := kube.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s: no documents", f)
		}
		rel, _ := filepath.Rel(k8sDir, f)
		m.files = append(m.files, filepath.ToSlash(rel))
		m.objs = append(m.objs, objs...)
	}
	return m
}

// all lists the objects of Go type T (e.g. appsv1.Deployment).
func all[T any](m manifests) []*T {
	var out []*T
	for _, o := range m.objs {
		if v, ok := o.Obj.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one is the only object of type T.
func one[T any](t *testing.T, m manifests) *T {
	t.Helper()
	l := all[T](m)
	if len(l) != 1 {
		t.Fatalf("want exactly one %T, got %d", *new(T), len(l))
	}
	return l[0]
}

// ownedContainer is a workload's container with "Kind/name" of its owner.
type ownedContainer struct {
	corev1.Container
	owner string
}

// workload is a pod template of a Deployment or a CronJob.
type workload struct {
	owner string
	pod   corev1.PodSpec
}

// podSpecOf is the pod template of a Deployment or CronJob, else nil.
func podSpecOf(obj any) *corev1.PodSpec {
	switch v := obj.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template.Spec
	case *batchv1.CronJob:
		return &v.Spec.JobTemplate.Spec.Template.Spec
	}
	return nil
}

func workloads(m manifests) []workload {
	var out []workload
	for _, d := range all[appsv1.Deployment](m) {
		out = append(out, workload{"Deployment/" + d.Name, d.Spec.Template.Spec})
	}
	for _, c := range all[batchv1.CronJob](m) {
		out = append(out, workload{"CronJob/" + c.Name, c.Spec.JobTemplate.Spec.Template.Spec})
	}
	return out
}

// k8sContainers lists the containers of every workload (Deployment, CronJob).
func k8sContainers(t *testing.T) []ownedContainer {
	t.Helper()
	var out []ownedContainer
	for _, w := range workloads(loadManifests(t)) {
		for _, c := range w.pod.Containers {
			out = append(out, ownedContainer{c, w.owner})
		}
	}
	return out
}

func TestManifestsWellFormed(t *testing.T) {
	m := loadManifests(t)
	need := map[string]bool{
		"Namespace": true, "ConfigMap": true, "Secret": true, "Service": true, "Deployment": true,
		"PodDisruptionBudget": true, "HorizontalPodAutoscaler": true, "CronJob": true,
		"NetworkPolicy": true, "Kustomization": true, "ServiceMonitor": true, "Component": true,
	}
	seen := map[string]bool{}
	for _, o := range m.objs {
		seen[o.Kind] = true
		switch o.Kind {
		case "Kustomization", "Component":
		case "Namespace":
			if o.Name != "smartlayer" {
				t.Errorf("%s: Namespace %q", o, o.Name)
			}
		default:
			if o.Name == "" || o.Namespace != "smartlayer" {
				t.Errorf("%s: want a name and namespace smartlayer, got %q/%q", o, o.Namespace, o.Name)
			}
		}
	}
	for kind := range need {
		if !seen[kind] {
			t.Errorf("no %s", kind)
		}
	}
	checkKustomizations(t, m)
}

// checkKustomizations: each kustomization (the root one and the optional
// components below it) lists every YAML file of its directory except the
// example Secret, every listed file exists, and each component is named by the
// root kustomization, which does not enable it (its CRDs may be missing).
func checkKustomizations(t *testing.T, m manifests) {
	t.Helper()
	var root *kube.Kustomization
	comps := map[string]*kube.Kustomization{} // dir -> component
	for _, o := range m.objs {
		k, ok := o.Obj.(*kube.Kustomization)
		if !ok {
			continue
		}
		dir, _ := filepath.Rel(k8sDir, filepath.Dir(o.File))
		dir = filepath.ToSlash(dir)
		switch {
		case dir == "." && o.Kind == "Kustomization":
			root = k
		case dir != "." && o.Kind == "Component":
			comps[dir] = k
		default:
			t.Errorf("%s: a %s in %q", o.File, o.Kind, dir)
		}
	}
	if root == nil {
		t.Fatal("no kustomization.yaml in deploy/kubernetes")
	}
	if root.Namespace != "smartlayer" {
		t.Errorf("kustomization namespace %q, want smartlayer", root.Namespace)
	}
	listedIn := map[string]*kube.Kustomization{".": root}
	for dir, c := range comps {
		listedIn[dir] = c
	}
	for _, f := range m.files {
		dir, base := path.Split(f)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		k := listedIn[dir]
		switch {
		case base == "kustomization.yaml":
		case k == nil:
			t.Errorf("%s: no kustomization in its directory", f)
		case strings.Contains(base, "example"):
			if slices.Contains(k.Resources, base) {
				t.Errorf("kustomization ships the example %s", f)
			}
		case !slices.Contains(k.Resources, base):
			t.Errorf("%s/kustomization.yaml does not list %s", dir, base)
		}
	}
	for dir, k := range listedIn {
		for _, r := range k.Resources {
			if _, err := os.Stat(filepath.Join(k8sDir, dir, r)); err != nil {
				t.Errorf("kustomization: %v", err)
			}
		}
	}
	text, err := os.ReadFile(k8sDir + "/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for dir := range comps {
		if slices.Contains(root.Components, dir) {
			t.Errorf("kustomization.yaml enables the optional component %s: it needs CRDs a bare cluster lacks", dir)
		}
		if !strings.Contains(string(text), "# - "+dir+"\n") {
			t.Errorf("kustomization.yaml does not show how to enable the component %s (a commented `# - %s` under `# components:`)", dir, dir)
		}
	}
}

// resolvePort finds the container port a probe or Service targetPort names.
func resolvePort(c corev1.Container, p intstr.IntOrString) (int32, error) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("port %s is not a port of container %s", p.String(), c.Name)
}

// checkServicePorts: every Service port must reach a container port with the
// same number (clients dial 9001/9002 whether they go through the Service or
// not) and carry a name Istio's protocol selection understands.
func checkServicePorts(ports []corev1.ServicePort, c corev1.Container) []error {
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

// selects reports whether a non-empty label selector matches the labels.
func selects(sel map[string]string, l map[string]string) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(l))
}

func TestDeploymentAndServices(t *testing.T) {
	m := loadManifests(t)
	cfg := loadConfig(t)
	dep := one[appsv1.Deployment](t, m)
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	// Container ports = the config's listen addresses.
	for name, addr := range map[string]string{"grpc-authz": cfg.Server.AuthzAddr, "grpc-als": cfg.Server.ALSAddr, "http-admin": cfg.Server.AdminAddr} {
		_, want := hostPort(t, addr)
		if got, err := resolvePort(c, intstr.FromString(name)); err != nil || int(got) != want {
			t.Errorf("container port %s = %d (%v), want %d from the config", name, got, err, want)
		}
	}
	_, admin := hostPort(t, cfg.Server.AdminAddr)
	for name, pr := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", name)
			continue
		}
		g := pr.p.HTTPGet
		if port, err := resolvePort(c, g.Port); g.Path != pr.path || err != nil || int(port) != admin {
			t.Errorf("%s probe %s on %s (%v), want %s on the admin port %d", name, g.Path, g.Port.String(), err, pr.path, admin)
		}
	}
	checkWorkload(t, m, workload{"Deployment/" + dep.Name, pod}, c)

	podLabels := dep.Spec.Template.Labels
	if dep.Spec.Selector == nil || !selects(dep.Spec.Selector.MatchLabels, podLabels) || len(dep.Spec.Selector.MatchExpressions) > 0 {
		t.Error("Deployment selector does not match its pod labels")
	}
	if pdb := one[policyv1.PodDisruptionBudget](t, m); pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Error("PodDisruptionBudget selector does not match the Deployment's pods")
	}
	hpa := one[autoscalingv2.HorizontalPodAutoscaler](t, m)
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != dep.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA targets %+v, want the Deployment", ref)
	}
	services := all[corev1.Service](m)
	if len(services) == 0 {
		t.Fatal("no Service")
	}
	for _, svc := range services {
		if !selects(svc.Spec.Selector, podLabels) {
			t.Errorf("Service %s selector does not match the Deployment's pods", svc.Name)
		}
		for _, err := range checkServicePorts(svc.Spec.Ports, c) {
			t.Errorf("Service %s: %v", svc.Name, err)
		}
	}
	// The port check must be able to fail.
	bad := []corev1.ServicePort{
		{Name: "grpc-authz", Port: 9001, TargetPort: intstr.FromString("grpc-als")},
		{Name: "authz", Port: 9001, TargetPort: intstr.FromInt32(9001)},
		{Name: "grpc-x", Port: 1, TargetPort: intstr.FromString("nope")},
	}
	if errs := checkServicePorts(bad, c); len(errs) != 3 {
		t.Errorf("checkServicePorts on bad ports: want 3 errors, got %v", errs)
	}
}

// checkWorkload holds what the Deployment and the CronJob share.
func checkWorkload(t *testing.T, m manifests, w workload, c corev1.Container) {
	t.Helper()
	psc := w.pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod needs runAsNonRoot and a numeric non-zero runAsUser (the image's USER is a name)", w.owner)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: want readOnlyRootFilesystem true and allowPrivilegeEscalation false", w.owner)
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() || req.Memory().Cmp(*lim.Memory()) > 0 {
		t.Errorf("%s: want cpu/memory requests and a memory limit above the request, got %+v", w.owner, c.Resources)
	}
	// --config points into the ConfigMap volume, at the key the ConfigMap has.
	cfgPath := argAfter(c.Args, "--config")
	cm := one[corev1.ConfigMap](t, m)
	var found bool
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != path.Dir(cfgPath) {
			continue
		}
		for _, v := range w.pod.Volumes {
			_, hasKey := cm.Data[path.Base(cfgPath)]
			found = found || (v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name && hasKey)
		}
	}
	if !found {
		t.Errorf("%s: --config %q is not the ConfigMap %s mounted with that key", w.owner, cfgPath, cm.Name)
	}
	secret := one[corev1.Secret](t, m)
	if len(c.EnvFrom) == 0 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != secret.Name {
		t.Errorf("%s: want envFrom the Secret %s", w.owner, secret.Name)
	}
}

func TestConfigMapIsTheConfigFile(t *testing.T) {
	m := loadManifests(t)
	embedded := one[corev1.ConfigMap](t, m).Data["config.yaml"]
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
	pod := one[appsv1.Deployment](t, m).Spec.Template.Spec
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
	keys := one[corev1.Secret](t, m).StringData
	for _, k := range []string{"SMARTLAYER_LLM_API_KEY", "SMARTLAYER_ACCESSLOG_CLICKHOUSE_PASSWORD"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("Secret example lacks %s", k)
		}
	}
}

func TestReporterCronJob(t *testing.T) {
	m := loadManifests(t)
	cj := one[batchv1.CronJob](t, m)
	if cj.Spec.Schedule != "0 6 * * *" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob schedule %q concurrencyPolicy %q, want \"0 6 * * *\" and Forbid", cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("CronJob restartPolicy %q, want OnFailure", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one reporter container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	authz := one[appsv1.Deployment](t, m).Spec.Template.Spec.Containers[0]
	if c.Image != authz.Image || c.Image == "" || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("reporter image %q, authz image %q: want the same pinned image", c.Image, authz.Image)
	}
	if len(c.Command) == 0 || path.Base(c.Command[0]) != "reporter" {
		t.Errorf("CronJob runs %q, want the reporter binary", c.Command)
	}
	checkWorkload(t, m, workload{"CronJob/" + cj.Name, pod}, c)
}

// TestNetworkPolicyAdmitsOnlyWhatIsNeeded: every authz port is covered by a
// rule with a source restriction, so no port is open to the whole cluster.
func TestNetworkPolicyAdmitsOnlyWhatIsNeeded(t *testing.T) {
	m := loadManifests(t)
	np := one[networkingv1.NetworkPolicy](t, m)
	podLabels := one[appsv1.Deployment](t, m).Spec.Template.Labels
	if !selects(np.Spec.PodSelector.MatchLabels, podLabels) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Fatalf("NetworkPolicy must select the authz pods for Ingress: %+v", np.Spec)
	}
	restricted := map[int32]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("an ingress rule without from admits everyone: ports %+v", rule.Ports)
			continue
		}
		for _, p := range rule.Ports {
			if p.Port != nil && p.Port.Type == intstr.Int {
				restricted[p.Port.IntVal] = true
			}
		}
	}
	for _, port := range []int32{9001, 9002, 9090} {
		if !restricted[port] {
			t.Errorf("port %d has no source-restricted rule", port)
		}
	}
}
