package deploy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

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

// The pod's grace period covers the whole shutdown: preStop, the drain
// delay and the shutdown timeout (else the kubelet kills authz before the
// access log is flushed or spooled); GOMEMLIMIT sits at ~80 % of the
// memory limit.
func TestPodLifecycleFitsTheConfig(t *testing.T) {
	c, err := config.Load(config.Source{File: "config/smartlayer.yaml", Environ: func() []string { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	pod := one[appsv1.Deployment](t, loadManifests(t)).Spec.Template.Spec
	ctr := pod.Containers[0]
	var preStop int64
	if ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && ctr.Lifecycle.PreStop.Sleep != nil {
		preStop = ctr.Lifecycle.PreStop.Sleep.Seconds
	}
	if preStop == 0 {
		t.Error("no preStop sleep: Envoy keeps sending while the pod leaves the endpoints")
	}
	need := time.Duration(preStop)*time.Second + c.Server.DrainDelay + c.Server.ShutdownTimeout
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace <= need {
		t.Errorf("terminationGracePeriodSeconds %v must exceed preStop + drain_delay + shutdown_timeout = %v", grace, need)
	}
	limit := ctr.Resources.Limits.Memory()
	for _, e := range ctr.Env {
		if e.Name == "GOMEMLIMIT" {
			if got := parseMi(t, e.Value); got < int(limit.Value()>>20)*70/100 || got > int(limit.Value()>>20)*90/100 {
				t.Errorf("GOMEMLIMIT %s is not ~80%% of the %s limit", e.Value, limit)
			}
			return
		}
	}
	t.Error("no GOMEMLIMIT")
}

// parseMi reads "1536Mi", "1Gi" or Go's "1228MiB" as MiB.
func parseMi(t *testing.T, s string) int {
	t.Helper()
	s = strings.TrimSuffix(s, "B")
	mult := 1
	switch {
	case strings.HasSuffix(s, "Gi"):
		mult, s = 1024, strings.TrimSuffix(s, "Gi")
	case strings.HasSuffix(s, "Mi"):
		s = strings.TrimSuffix(s, "Mi")
	default:
		t.Fatalf("memory %q: want Mi or Gi", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("memory %q: %v", s, err)
	}
	return n * mult
}
