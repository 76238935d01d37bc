package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfigSubcommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(good, []byte("server: {decision_budget: 20ms}\n"), 0o600)
	_ = os.WriteFile(bad, []byte("store: {backend: redis, redis: {timeout: -5ms}}\n"), 0o600)
	moduleBad := filepath.Join(dir, "module.yaml")
	_ = os.WriteFile(moduleBad, []byte("behavior: {grey_threshold: 9, block_threshold: 8}\n"), 0o600)
	quotaBad := filepath.Join(dir, "quota.yaml")
	_ = os.WriteFile(quotaBad, []byte("quota: {plans: {free: {/x: {per_minute: -1}}}}\n"), 0o600)
	tests := map[string]struct {
		args []string
		code int
		out  string
	}{
		"valid":         {[]string{"check-config", "--config", good}, 0, "configuration OK"},
		"invalid value": {[]string{"check-config", "--config", bad}, 1, "store.redis.timeout"},
		"missing file":  {[]string{"check-config", "--config", filepath.Join(dir, "nope.yaml")}, 1, "nope.yaml"},
		"bad flag":      {[]string{"check-config", "--store", "etcd"}, 1, "store.backend"},
		"module rule":   {[]string{"check-config", "--config", moduleBad}, 1, "behavior."},
		"bad quota":     {[]string{"check-config", "--config", quotaBad}, 1, "per_minute"},
		"unknown cmd":   {[]string{"frobnicate"}, 2, "unknown command"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
				t.Fatalf("code %d, output %q %q; want %d containing %q", code, stdout.String(), stderr.String(), tc.code, tc.out)
			}
		})
	}
}

func TestServeFailsOnBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--authz-addr", l.Addr().String(), "--admin-addr", ""}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "server.authz_addr") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}
