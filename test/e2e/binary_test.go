package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestBinaryDefaults starts authz as `make run` does (no Redis, no
// ClickHouse), checks health, an allowed and a denied Envoy-shaped request,
// the metrics, and a graceful exit on SIGTERM.
func TestBinaryDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	// The embedded defaults (memory store, no ClickHouse) plus a deny list.
	p := startAuthz(t, "behavior:\n  deny_cidrs: [192.0.2.0/24]\n")
	conn := p.authzConn
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
	// By default the client learns its status and request id, not the rule
	// (server.deny_detail: none); the reason is in the metadata.
	if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil || body["reason"] != "" || body["request_id"] != "e2e-1" {
		t.Fatalf("denied body %q: %v", dr.GetBody(), err)
	}
	if md := resp.GetDynamicMetadata().AsMap(); md["decision"] != "deny" || md["module"] != "lists" || md["reason"] != "lists.deny_cidr" {
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
