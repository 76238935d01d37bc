package deploy

import (
	"testing"

	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/store"
)

// TestShippedConfigLoads loads the shipped configuration with the same
// loader authz uses, so a key the binary does not know fails here, not in
// a pod's crash loop.
func TestShippedConfigLoads(t *testing.T) {
	c, err := config.Load(config.Source{File: "config/smartlayer.yaml", Environ: func() []string { return nil }})
	if err != nil {
		t.Fatalf("deploy/config/smartlayer.yaml: %v", err)
	}
	if c.Store.Backend != store.BackendRedis || len(c.AccessLog.ClickHouse.Addr) == 0 {
		t.Fatalf("the deployed config should use Redis and ClickHouse: %+v %+v", c.Store, c.AccessLog.ClickHouse)
	}
	if len(c.Notices) > 0 {
		t.Errorf("the shipped config uses deprecated keys: %q", c.Notices)
	}
}
