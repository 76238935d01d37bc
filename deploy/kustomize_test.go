package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/smartlayer/smartlayer/deploy/kube"
)

// rootKustomization is deploy/kubernetes/kustomization.yaml.
func rootKustomization(t *testing.T, m manifests) *kube.Kustomization {
	t.Helper()
	for _, o := range m.objs {
		if k, ok := o.Obj.(*kube.Kustomization); ok && o.Kind == "Kustomization" && filepath.Dir(o.File) == filepath.Clean(k8sDir) {
			return k
		}
	}
	t.Fatal("no deploy/kubernetes/kustomization.yaml")
	return nil
}

// imageName is an image reference without its tag or digest.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// TestImageIsSetInKustomization: one images: entry names the image of the
// authz Deployment and of the reporter CronJob, so `kustomize edit set image`
// (or editing newName/newTag) moves both; it is pinned, and the manifests say
// the same image for a plain kubectl apply -f.
func TestImageIsSetInKustomization(t *testing.T) {
	m := loadManifests(t)
	k := rootKustomization(t, m)
	if len(k.Images) != 1 {
		t.Fatalf("want one images: entry in kustomization.yaml, got %+v", k.Images)
	}
	img := k.Images[0]
	if img.NewName == "" || (img.NewTag == "" && img.Digest == "") || img.NewTag == "latest" {
		t.Errorf("images: %+v: want newName and a pinned newTag (or digest)", img)
	}
	want := img.NewName + ":" + img.NewTag
	if img.Digest != "" {
		want = img.NewName + "@" + img.Digest
	}
	cs := k8sContainers(t)
	if len(cs) < 2 {
		t.Fatalf("want the authz and reporter containers, got %d", len(cs))
	}
	for _, c := range cs {
		if imageName(c.Image) != img.Name {
			t.Errorf("%s: image %q is not the kustomization's images[0].name %q: kustomize would leave it", c.owner, c.Image, img.Name)
		}
		if c.Image != want {
			t.Errorf("%s: image %q, kustomization sets %q: keep them equal", c.owner, c.Image, want)
		}
	}
}

// TestServiceMonitorScrapesAdmin: the ServiceMonitor (optional component
// deploy/kubernetes/monitoring) selects the authz Service and scrapes /metrics
// on the port that reaches server.admin_addr.
func TestServiceMonitorScrapesAdmin(t *testing.T) {
	m := loadManifests(t)
	cfg := loadConfig(t)
	_, admin := hostPort(t, cfg.Server.AdminAddr)
	sm := one[monitoringv1.ServiceMonitor](t, m)
	if ns := sm.Spec.NamespaceSelector; ns.Any || (len(ns.MatchNames) > 0 && (len(ns.MatchNames) != 1 || ns.MatchNames[0] != "smartlayer")) {
		t.Errorf("ServiceMonitor namespaceSelector %+v: want its own namespace", ns)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("want one endpoint, got %d", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Path != "/metrics" || ep.Port == "" || ep.TargetPort != nil {
		t.Errorf("endpoint %+v: want a named Service port and path /metrics", ep)
	}
	if ep.Scheme != nil && ep.Scheme.String() != "http" {
		t.Errorf("endpoint scheme %v: the admin port speaks plain HTTP", ep.Scheme.String())
	}
	authz := k8sContainers(t)[0]
	if !strings.HasPrefix(authz.owner, "Deployment/") {
		t.Fatalf("first container is %s", authz.owner)
	}
	scraped := 0
	for _, svc := range all[corev1.Service](m) {
		if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Selector.MatchExpressions) > 0 {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Name != ep.Port {
				continue
			}
			scraped++
			if got, err := resolvePort(authz.Container, sp.TargetPort); err != nil || int(got) != admin {
				t.Errorf("Service %s port %s reaches container port %d (%v), want the admin port %d", svc.Name, sp.Name, got, err, admin)
			}
		}
	}
	if scraped != 1 {
		t.Errorf("ServiceMonitor endpoint matches %d Service ports, want exactly one", scraped)
	}
}

// TestKustomizeBuild runs kubectl's kustomize, when kubectl is installed, on
// deploy/kubernetes as shipped and through an overlay that enables the
// monitoring component and sets another image: every built document decodes
// strictly, the images are the ones set, the ServiceMonitor only comes with
// the component, and everything lands in namespace smartlayer.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	abs, err := filepath.Abs(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	overlay := t.TempDir()
	// kustomize takes bases by relative path only.
	rel, err := filepath.Rel(overlay, abs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [`+rel+`]
components: [`+rel+`/monitoring]
images:
- {name: ghcr.io/smartlayer/smartlayer, newName: registry.example.com/team/smartlayer, newTag: v9.9.9}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := loadManifests(t)
	img := rootKustomization(t, m).Images[0]
	for _, tc := range []struct {
		dir, image     string
		serviceMonitor bool
	}{
		{abs, img.NewName + ":" + img.NewTag, false},
		{overlay, "registry.example.com/team/smartlayer:v9.9.9", true},
	} {
		var stderr strings.Builder
		cmd := exec.Command(kubectl, "kustomize", tc.dir)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", tc.dir, err, stderr.String())
		}
		nodes, err := kube.SplitDocs(out)
		if err != nil {
			t.Fatal(err)
		}
		var sm bool
		images := 0
		for _, n := range nodes {
			doc, _ := kube.Encode(n)
			o, err := kube.Decode(doc)
			if err != nil {
				t.Errorf("%s: built %v", tc.dir, err)
				continue
			}
			if o.Kind != "Namespace" && o.Namespace != "smartlayer" {
				t.Errorf("%s: %s/%s in namespace %q", tc.dir, o.Kind, o.Name, o.Namespace)
			}
			sm = sm || o.Kind == "ServiceMonitor"
			pod := podSpecOf(o.Obj)
			if pod == nil {
				continue
			}
			for _, c := range pod.Containers {
				images++
				if c.Image != tc.image {
					t.Errorf("%s: %s/%s runs %s, want %s", tc.dir, o.Kind, o.Name, c.Image, tc.image)
				}
			}
		}
		if sm != tc.serviceMonitor {
			t.Errorf("%s: ServiceMonitor built %v, want %v", tc.dir, sm, tc.serviceMonitor)
		}
		if images < 2 {
			t.Errorf("%s: %d containers built", tc.dir, images)
		}
	}
}
