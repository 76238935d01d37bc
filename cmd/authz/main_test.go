package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// buildBinary compiles cmd/authz once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "authz")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type process struct {
	cmd          *exec.Cmd
	out          *bytes.Buffer
	authz, admin string
}

// startAuthz starts the binary with config and waits for /healthz.
func startAuthz(t *testing.T, bin, config string, env ...string) *process {
	t.Helper()
	p := &process{
		authz: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		out:   &bytes.Buffer{},
	}
	cfgFile := filepath.Join(t.TempDir(), "smartlayer.yaml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--config", cfgFile, "--authz-addr", p.authz, "--admin-addr", p.admin,
		"--als-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("authz output:\n%s", p.out)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("authz not healthy: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func envoyRequest(peer, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": "GET", ":path": path,
		"user-agent": "Mozilla/5.0 (X11; Linux x86_64)", "x-request-id": "e2e-1", "accept": "text/html"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: peer, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50123}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.10", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1234", Method: "GET", Path: path, Host: "api.example.com", Scheme: "http", Protocol: "HTTP/1.1", Headers: h,
		}},
	}}
}

func TestBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	p := startAuthz(t, bin, "behavior:\n  deny_cidrs: [192.0.2.0/24]\n")

	conn, err := grpc.NewClient(p.authz, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health: %v %v", hc, err)
	}

	client := authv3.NewAuthorizationClient(conn)
	resp, err := client.Check(ctx, envoyRequest("203.0.113.10", "/products?page=2", nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("want OK, got %v", resp)
	}

	resp, err = client.Check(ctx, envoyRequest("10.0.0.1", "/products", map[string]string{"x-forwarded-for": "192.0.2.77"}))
	if err != nil {
		t.Fatal(err)
	}
	dr := resp.GetDeniedResponse()
	if dr == nil || dr.GetStatus().GetCode() != 403 {
		t.Fatalf("want 403, got %v", resp)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil || body["reason"] != "lists.deny_cidr" || body["request_id"] != "e2e-1" {
		t.Fatalf("denied body %q: %v", dr.GetBody(), err)
	}
	if md := resp.GetDynamicMetadata().AsMap(); md["decision"] != "deny" || md["module"] != "lists" {
		t.Fatalf("dynamic metadata %v", md)
	}

	// The decision shows in /metrics.
	mresp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(metrics.String(), `smartlayer_checks_total{decision="deny",module="lists",reason="lists.deny_cidr"} 1`) {
		t.Fatalf("metrics lack the denial:\n%s", metrics.String())
	}

	// SIGTERM: graceful exit with status 0.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

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
