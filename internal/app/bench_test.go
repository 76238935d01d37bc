package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
)

// BenchmarkCheckPipeline is one Check through the pipeline serve builds
// with the default configuration (memory store): the wire decoder,
// lists, behaviour, payload, quota, the wire encoder — everything but
// the gRPC transport, which the no-op server pays too. Requests come from
// 1,000 client addresses, as in make bench's checkload rows; the figure
// to read next to them is allocs/op.
func BenchmarkCheckPipeline(b *testing.B) {
	cfg, err := config.Load(config.Source{})
	if err != nil {
		b.Fatal(err)
	}
	a := &app{logger: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	if err := a.build(cfg, nil, nil); err != nil {
		b.Fatal(err)
	}
	defer a.behavior.Close()
	p, err := a.pipeline(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := authz.NewServer(p, cfg.Server.DecisionBudget)
	for _, body := range []bool{false, true} {
		name := "get"
		if body {
			name = "json_8k"
		}
		reqs := make([][]byte, 1000)
		for i := range reqs {
			reqs[i], err = proto.Marshal(benchCheck(i, body))
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.CheckWire(ctx, reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// benchCheck is checkload's request: a browser GET, or an 8 KiB JSON order.
func benchCheck(i int, body bool) *authv3.CheckRequest {
	ip := fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)
	id := fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano())
	h := map[string]string{":authority": "api.example.com", ":method": "GET", ":path": "/products/shoes?page=2&sort=price",
		":scheme": "http", "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"accept": "text/html,application/json", "accept-language": "en-US,en;q=0.9", "cookie": "session=3f2a9c0d1b; theme=dark",
		"x-forwarded-for": ip, "x-forwarded-proto": "http", "x-request-id": id}
	hr := &authv3.AttributeContext_HttpRequest{Id: id, Method: "GET", Path: h[":path"], Host: "api.example.com",
		Scheme: "http", Protocol: "HTTP/1.1", Headers: h}
	if body {
		var sb strings.Builder
		sb.WriteString(`{"customer":"c-1042","items":[`)
		for j := range 60 {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"sku":"SKU-%05d","name":"Trail running shoe, size %d","note":"Ships in 2-3 days; gift wrap","qty":%d}`,
				j, 36+j%12, j%4+1)
		}
		sb.WriteString(`],"comment":"`)
		for sb.Len() < 8190 {
			sb.WriteString("Please leave the parcel at the back door. ")
		}
		raw := sb.String()[:8190] + `"}`
		hr.Method, hr.Path, hr.RawBody, hr.Size = "POST", "/api/orders", []byte(raw), int64(len(raw))
		h[":method"], h[":path"], h["content-type"] = "POST", "/api/orders", "application/json"
		h["content-length"] = fmt.Sprint(len(raw))
	}
	addr := &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Address: addr},
		Request: &authv3.AttributeContext_Request{Http: hr}}}
}
