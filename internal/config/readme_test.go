package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

// TestREADMEReference keeps the README's configuration reference true: it
// must name every key, and its values must be the built-in defaults.
func TestREADMEReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- config-reference:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- config-reference:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md lacks the config-reference markers")
	}
	block = strings.TrimSpace(block)
	block = strings.TrimSuffix(strings.TrimPrefix(block, "```yaml"), "```")

	documented := koanf.New(".")
	if err := documented.Load(rawbytes.Provider([]byte(block)), yaml.Parser()); err != nil {
		t.Fatalf("README reference is not YAML: %v", err)
	}
	builtin := defaultsKoanf(t)
	for _, k := range builtin.Keys() {
		if !documented.Exists(k) {
			t.Errorf("README does not document %s", k)
		}
	}
	for _, k := range documented.Keys() {
		if !slices.Contains(builtin.Keys(), k) {
			t.Errorf("README documents %s, which does not exist", k)
		}
	}

	file := filepath.Join(t.TempDir(), "readme.yaml")
	if err := os.WriteFile(file, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	fromREADME, err := Load(Source{File: file, Environ: environ()})
	if err != nil {
		t.Fatalf("README reference does not load: %v", err)
	}
	defaults, err := Load(Source{Environ: environ()})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromREADME, defaults) {
		t.Errorf("README values differ from the defaults:\n readme:   %+v\n defaults: %+v", fromREADME, defaults)
	}
}
