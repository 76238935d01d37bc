package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/smartlayer/smartlayer/internal/setting"
)

type okAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (okAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{}, nil
}

// panickyALS panics on its second message, as a decoding bug would.
type panickyALS struct{}

func (panickyALS) StreamAccessLogs(s alsv3.AccessLogService_StreamAccessLogsServer) error {
	for n := 0; ; n++ {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return s.SendAndClose(&alsv3.StreamAccessLogsResponse{})
			}
			return err
		}
		if n == 1 {
			panic("decoder bug")
		}
	}
}

func serve(t *testing.T, token setting.Secret, panics prometheus.Counter) *grpc.ClientConn {
	t.Helper()
	opts := Recovery(slog.New(slog.DiscardHandler), panics)
	g := grpc.NewServer(WithTokenAuth(opts, token)...)
	authv3.RegisterAuthorizationServer(g, okAuthz{})
	alsv3.RegisterAccessLogServiceServer(g, panickyALS{})
	healthpb.RegisterHealthServer(g, health.NewServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestTokenAuth(t *testing.T) {
	cc := serve(t, "s3cret", nil)
	tests := map[string]struct {
		md   []string
		want codes.Code
	}{
		"no token":                {nil, codes.Unauthenticated},
		"wrong token":             {[]string{"authorization", "Bearer guess"}, codes.Unauthenticated},
		"no bearer word":          {[]string{"authorization", "s3cret"}, codes.Unauthenticated},
		"token as Envoy sends it": {[]string{"authorization", "Bearer s3cret"}, codes.OK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tc.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			_, err := authv3.NewAuthorizationClient(cc).Check(ctx, &authv3.CheckRequest{})
			if got := status.Code(err); got != tc.want {
				t.Errorf("Check: %v, want %v", err, tc.want)
			}
			st, err := alsv3.NewAccessLogServiceClient(cc).StreamAccessLogs(ctx)
			if err == nil {
				_ = st.Send(&alsv3.StreamAccessLogsMessage{})
				_, err = st.CloseAndRecv()
			}
			if got := status.Code(err); got != tc.want {
				t.Errorf("access-log stream: %v, want %v", err, tc.want)
			}
		})
	}
	// Health stays open: Envoy's health checks need no token.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check without a token: %v", err)
	}
}

func TestNoTokenNoCheck(t *testing.T) {
	cc := serve(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := authv3.NewAuthorizationClient(cc).Check(ctx, &authv3.CheckRequest{}); err != nil {
		t.Fatalf("without server tokens a Check needs none: %v", err)
	}
}

// A panic on an access-log stream ends that stream with Internal and is
// counted; the server goes on answering Checks.
func TestStreamPanicIsContained(t *testing.T) {
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "p"})
	cc := serve(t, "", panics)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := alsv3.NewAccessLogServiceClient(cc).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.Send(&alsv3.StreamAccessLogsMessage{}); err != nil {
			break
		}
	}
	if _, err := st.CloseAndRecv(); status.Code(err) != codes.Internal {
		t.Fatalf("stream ended with %v, want Internal", err)
	}
	if got := testutil.ToFloat64(panics); got != 1 {
		t.Errorf("panics counted %v, want 1", got)
	}
	if _, err := authv3.NewAuthorizationClient(cc).Check(ctx, &authv3.CheckRequest{}); err != nil {
		t.Fatalf("Check after a stream panic: %v", err)
	}
}
