package deploy

import (
	"net"
	"os"
	"strconv"
	"testing"

	"sigs.k8s.io/yaml"
)

// repo is the repository root seen from this package's directory.
const repo = ".."

// decodeFile reads path and decodes it into into with unmarshal (YAML,
// JSON or XML), failing the test on either error.
func decodeFile(t *testing.T, path string, into any, unmarshal func([]byte, any) error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// mustReadYAML decodes the YAML file at path strictly: a field into lacks
// is an error.
func mustReadYAML(t *testing.T, path string, into any) {
	t.Helper()
	decodeFile(t, path, into, func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) })
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
			Addrs []string `json:"addrs"`
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

// loadConfig reads the part of the shipped configuration smartlayerConfig
// holds (the rest of the file is ignored).
func loadConfig(t *testing.T) smartlayerConfig {
	t.Helper()
	var c smartlayerConfig
	decodeFile(t, configPath, &c, func(b []byte, v any) error { return yaml.Unmarshal(b, v) })
	return c
}
