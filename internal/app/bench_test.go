package app

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/testenv"
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
			reqs[i], err = proto.Marshal(testenv.BrowserCheck(i, len(reqs), body, "bench"))
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
