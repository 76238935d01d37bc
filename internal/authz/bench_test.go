package authz

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// noopServer answers OK without looking: the baseline every figure is read
// against.
type noopServer struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

func benchPipeline() *Pipeline {
	p := pipeline(NamedStage{Module: ModuleQuota, Stage: StageFunc(func(context.Context, *scoring.Request) (Verdict, error) {
		return Verdict{Headers: []Header{{"RateLimit-Remaining", "9"}}}, nil
	})})
	p.Deny = append(p.Deny, netip.MustParsePrefix("198.51.100.0/24"))
	return p
}

func BenchmarkCheckInProcess(b *testing.B) {
	s := NewServer(benchPipeline(), 50*time.Millisecond)
	req := envoyCheck("203.0.113.1", "GET", "/api/products/42?expand=reviews", map[string]string{
		"x-forwarded-for": "198.18.0.1, 203.0.113.1", "cookie": "session=abc", "accept": "application/json"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckLoopback compares smartlayer's Check with a no-op Check
// server over real loopback gRPC, in the same run.
func BenchmarkCheckLoopback(b *testing.B) {
	servers := map[string]authv3.AuthorizationServer{
		"noop":       noopServer{},
		"smartlayer": NewServer(benchPipeline(), 50*time.Millisecond),
	}
	req := envoyCheck("203.0.113.1", "GET", "/api/products/42?expand=reviews", map[string]string{"cookie": "session=abc"})
	for _, name := range []string{"noop", "smartlayer"} {
		b.Run(name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var g *grpc.Server
			if s, ok := servers[name].(*Server); ok {
				g = grpc.NewServer(ServerCodec()) // as app serves it
				s.Register(g)
			} else {
				g = grpc.NewServer()
				authv3.RegisterAuthorizationServer(g, servers[name])
			}
			go g.Serve(lis)
			defer g.Stop()
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			c := authv3.NewAuthorizationClient(conn)
			b.ReportAllocs()
			b.SetParallelism(8) // 8 × GOMAXPROCS callers, like Envoy workers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Check(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
