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
