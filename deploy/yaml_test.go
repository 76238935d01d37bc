package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	goyaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// repo is the repository root seen from this package's directory.
const repo = ".."

// doc is one YAML document of a (possibly multi-document) file.
type doc struct {
	file string
	raw  map[string]any
}

func (d doc) kind() string       { return str(d.raw, "kind") }
func (d doc) apiVersion() string { return str(d.raw, "apiVersion") }
func (d doc) name() string       { return str(d.raw, "metadata", "name") }
func (d doc) namespace() string  { return str(d.raw, "metadata", "namespace") }

// readDocs parses every document of a YAML stream; an empty document is skipped.
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

// get walks nested maps and lists (an int key indexes a list); missing → nil.
func get(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, keys ...any) string {
	s, _ := get(v, keys...).(string)
	return s
}

// decode re-reads part of a document into a typed struct.
func decode(t *testing.T, v any, into any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

func mustReadYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// hostPort splits "host:port".
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h, n
}

// smartlayerConfig is the part of deploy/config/smartlayer.yaml the artefacts depend on.
type smartlayerConfig struct {
	Server struct {
		AuthzAddr string `json:"authz_addr"`
		ALSAddr   string `json:"als_addr"`
		AdminAddr string `json:"admin_addr"`
	} `json:"server"`
	Store struct {
		Backend string `json:"backend"`
		Redis   struct {
			Addr string `json:"addr"`
		} `json:"redis"`
	} `json:"store"`
	AccessLog struct {
		ClickHouse struct {
			Addr     []string `json:"addr"`
			Database string   `json:"database"`
			Username string   `json:"username"`
		} `json:"clickhouse"`
		SpoolDir string `json:"spool_dir"`
	} `json:"accesslog"`
}

const configPath = repo + "/deploy/config/smartlayer.yaml"

func loadConfig(t *testing.T) smartlayerConfig {
	t.Helper()
	data, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var c smartlayerConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("smartlayer.yaml: %v", err)
	}
	return c
}
