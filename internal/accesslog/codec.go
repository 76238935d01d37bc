package accesslog

import (
	"fmt"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	// The proto codec the ALS codec falls back to.
	_ "google.golang.org/grpc/encoding/proto"
)

const protoCodecName = "proto"

// alsCodec is the ALS server's codec: an access log message decodes
// straight into a frame (wire.go); every other message, and every reply,
// goes through gRPC's proto codec.
type alsCodec struct{ encoding.CodecV2 }

func (c alsCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	if len(data) == 1 {
		f.err = f.decode(data[0].ReadOnlyData())
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		f.err = f.decode(buf.ReadOnlyData())
		buf.Free()
	}
	if f.err != nil {
		// gRPC ends the stream with Internal and this text at once.
		f.err = fmt.Errorf("accesslog: malformed StreamAccessLogsMessage: %w", f.err)
	}
	return f.err
}

// alsServiceDesc is envoy.service.accesslog.v3.AccessLogService with a
// handler that receives frames instead of generated messages.
var alsServiceDesc = grpc.ServiceDesc{
	ServiceName: alsv3.AccessLogService_ServiceDesc.ServiceName,
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    alsv3.AccessLogService_ServiceDesc.Streams[0].StreamName,
		Handler:       func(srv any, st grpc.ServerStream) error { return srv.(*Service).streamAccessLogs(st) },
		ClientStreams: true,
	}},
	Metadata: alsv3.AccessLogService_ServiceDesc.Metadata,
}
