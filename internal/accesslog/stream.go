package accesslog

// The ALS stream handler: one goroutine per Envoy stream decodes messages
// into rows, feeds response codes back to scoring and hands rows to the
// batcher. It never waits for ClickHouse.

import (
	"context"
	"errors"
	"io"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/peer"
)

// Response is the outcome of one HTTP request Envoy logged.
type Response struct {
	// ClientIP is the downstream address Envoy saw.
	ClientIP string
	// Status is the response code Envoy sent.
	Status int
	// Denied says smartlayer itself denied the request (ext_authz metadata
	// or UAEX), so scoring can leave its own 403s and 429s out of a
	// client's error rate.
	Denied bool
	At     time.Time
	// RequestID is the entry's x-request-id: scoring counts the response
	// only when authz decided a request with that id for that client.
	RequestID string
}

// Feedback receives the outcome of every HTTP request Envoy logged, whether
// or not the row is stored (scoring feeds its error-rate windows from it):
// one call per ALS message, leaving out entries without a client IP or a
// response code. It is called on the stream's goroutine, so it must not
// block, and it must not keep rs.
type Feedback interface {
	ObserveResponses(ctx context.Context, rs []Response)
}

// NewServer returns a gRPC server with opts that serves the
// AccessLogService. Its codec decodes access log messages straight into rows
// (wire.go); other messages go to gRPC's proto codec, so more services can
// be registered on it.
func (s *Service) NewServer(opts ...grpc.ServerOption) *grpc.Server {
	g := grpc.NewServer(append(opts, grpc.ForceServerCodecV2(alsCodec{encoding.GetCodecV2(protoCodecName)}))...)
	g.RegisterService(&alsServiceDesc, s)
	return g
}

// streamAccessLogs serves one Envoy stream. The identifier (node) arrives
// only on a stream's first message and holds for the whole stream.
func (s *Service) streamAccessLogs(stream grpc.ServerStream) error {
	s.m.activeStreams.Inc()
	defer s.m.activeStreams.Dec()
	ctx := stream.Context()
	f := &frame{mp: &s.mp}
	var obs []Response
	for {
		f.received, f.err = s.now(), nil
		err := stream.RecvMsg(f)
		if errors.Is(err, io.EOF) {
			return stream.SendMsg(&alsv3.StreamAccessLogsResponse{})
		}
		if f.err != nil {
			// gRPC has ended the stream (Internal, naming the decode
			// error). The message's entries are lost; the ones before
			// it are in, and Envoy reconnects.
			s.m.malformed.Inc()
			var from string
			if p, ok := peer.FromContext(ctx); ok {
				from = p.Addr.String()
			}
			s.warn(&s.lastMalformedWarn, "malformed access log message: stream ended", "peer", from, "err", f.err)
			return err
		}
		if err != nil {
			return err
		}
		s.tcpEntries.Add(float64(f.tcp))
		s.invalidEntries.Add(float64(f.invalid))
		s.intermediateEntries.Add(float64(f.intermediate))
		s.httpEntries.Add(float64(len(f.rows)))
		if s.fb != nil {
			obs = obs[:0]
			for i := range f.rows {
				r := &f.rows[i]
				if f.peers[i] == "" || r.Status == 0 {
					continue
				}
				obs = append(obs, Response{ClientIP: f.peers[i], Status: int(r.Status), Denied: r.Blocked,
					At: time.Unix(r.Unix, int64(r.Millis)*int64(time.Millisecond)), RequestID: r.RequestID})
			}
			if len(obs) > 0 {
				s.fb.ObserveResponses(ctx, obs)
			}
		}
		s.add(f.rows)
	}
}
