package deploy

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"unicode"

	goyaml "go.yaml.in/yaml/v3"

	"github.com/smartlayer/smartlayer/deploy/kube"
)

// manifestDirs holds every file applied to a cluster. deploy/prometheus may not
// exist yet; when it does, its files are decoded like the rest.
var manifestDirs = []string{k8sDir, repo + "/deploy/prometheus", repo + "/envoy/istio"}

func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range manifestDirs {
		f, err := kube.YAMLFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	return files
}

// TestManifestsDecodeStrictly: every document of every shipped manifest decodes
// into its real API type with no unknown, misspelt or duplicated field.
func TestManifestsDecodeStrictly(t *testing.T) {
	kinds := map[string]int{}
	for _, f := range manifestFiles(t) {
		objs, err := kube.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(objs) == 0 {
			t.Errorf("%s: no documents", f)
		}
		for _, o := range objs {
			kinds[o.Kind]++
		}
	}
	t.Logf("decoded: %v", kinds)
}

// freeForm says whether the mapping at path (keys from the document root) is a
// map whose keys are data, not field names: renaming one is no mistake.
func freeForm(kind string, path []string) bool {
	switch path[len(path)-1] {
	case "labels", "annotations", "matchLabels", "data", "stringData", "binaryData", "requests", "limits", "nodeSelector":
		return true
	}
	return kind == "Service" && strings.Join(path, ".") == "spec.selector"
}

// misspell calls f once for every field name in the document, with the name
// changed by change (the node is restored afterwards).
func misspell(doc *goyaml.Node, kind string, change func(string) string, f func(field string)) {
	var walk func(n *goyaml.Node, path []string)
	walk = func(n *goyaml.Node, path []string) {
		switch n.Kind {
		case goyaml.DocumentNode, goyaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case goyaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if len(path) == 0 || !freeForm(kind, path) {
					if orig := k.Value; change(orig) != orig {
						k.Value = change(orig)
						f(strings.Join(append(slices.Clone(path), orig), "."))
						k.Value = orig
					}
				}
				walk(v, append(path, k.Value))
			}
		}
	}
	walk(doc, nil)
}

// TestMisspeltFieldsFail proves the decoding strict: in a copy of each manifest,
// every field name in turn is misspelt (a letter doubled, or the first letter's
// case flipped), and each such copy must fail to decode.
func TestMisspeltFieldsFail(t *testing.T) {
	changes := map[string]func(string) string{
		"doubled": func(s string) string { return s + s[len(s)-1:] },
		"case": func(s string) string {
			r := []rune(s)
			switch {
			case unicode.IsLower(r[0]):
				r[0] = unicode.ToUpper(r[0])
			case unicode.IsUpper(r[0]):
				r[0] = unicode.ToLower(r[0])
			}
			return string(r)
		},
	}
	tried := 0
	for _, f := range manifestFiles(t) {
		objs, err := kube.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, o := range objs {
			nodes, err := kube.SplitDocs(o.YAML)
			if err != nil || len(nodes) != 1 {
				t.Fatalf("%s: %v", o, err)
			}
			for name, change := range changes {
				misspell(nodes[0], o.Kind, change, func(field string) {
					tried++
					b, err := kube.Encode(nodes[0])
					if err != nil {
						t.Fatal(err)
					}
					if _, err := kube.Decode(b); err == nil {
						t.Errorf("%s: %s misspelt (%s) still decodes", o, field, name)
					}
				})
			}
		}
	}
	if tried < 100 {
		t.Errorf("only %d misspellings tried", tried)
	}
	t.Logf("%d misspelt copies, all rejected", tried)
}

// TestProductDoesNotImportManifestTypes: the Kubernetes, Istio and
// prometheus-operator API modules are test-only dependencies, and so is chDB
// (internal/testenv/chdbhttp, ClickHouse 26.x for the tests).
func TestProductDoesNotImportManifestTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command(goBin, "list", "-deps", "./cmd/...")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/", "istio.io/", "github.com/prometheus-operator/", "sigs.k8s.io/json", "github.com/smartlayer/smartlayer/deploy",
			"github.com/chdb-io/", "github.com/ebitengine/purego", "github.com/smartlayer/smartlayer/internal/testenv"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("a product binary imports %s", pkg)
			}
		}
	}
}
