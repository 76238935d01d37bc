package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/smartlayer/smartlayer/internal/scoring/payload"
)

// payload.exclusions and behavior.allow_cidrs_skip_payload load from YAML.
func TestLoadPayloadExclusions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "payload:\n  partial_body: deny\n  exclusions:\n    - {route: /cms/pages/*, fields: [\"body:$.html\"], rules: [xss]}\n    - route: /search\n      fields: [\"query:q\"]\nbehavior:\n  allow_cidrs_skip_payload: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Source{File: file, Environ: environ()})
	if err != nil {
		t.Fatal(err)
	}
	want := []payload.Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.html"}, Rules: []string{"xss"}},
		{Route: "/search", Fields: []string{"query:q"}}}
	if !reflect.DeepEqual(c.Payload.Exclusions, want) || c.Payload.PartialBody != payload.PartialDeny || !c.Behavior.AllowCIDRsSkipPayload {
		t.Errorf("%+v %q %v", c.Payload.Exclusions, c.Payload.PartialBody, c.Behavior.AllowCIDRsSkipPayload)
	}
}
