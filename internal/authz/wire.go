package authz

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The gRPC service as registered: the same ext_authz Check as
// authv3.Authorization_ServiceDesc, but its answer leaves as the bytes
// appendResponse writes straight from the Decision.
//
// Why: building a CheckResponse (14 dynamic-metadata entries in a
// structpb map, header options) and marshalling it through protobuf
// reflection was 13% of authz's CPU per Check under load; appendResponse
// writes the same message in one buffer (BenchmarkResponse: see
// bench/RESULTS.md). TestWireResponseMatches holds the bytes to
// toResponse's message, which stays the reference and Check's answer.
var checkServiceDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// wireResponse is a CheckResponse already encoded; the server codec sends
// it as it is.
type wireResponse struct{ b []byte }

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	cr := new(checkRequest) // the request and its messages in one allocation
	if err := dec(cr); err != nil {
		return nil, err
	}
	in := &cr.req
	s := srv.(*Server)
	if interceptor == nil {
		return s.checkWire(ctx, in, cr.names)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		in := req.(*authv3.CheckRequest)
		var names nameHints
		if in == &cr.req {
			names = cr.names
		}
		return s.checkWire(ctx, in, names)
	})
}

// checkWire is Check with its answer encoded.
func (s *Server) checkWire(ctx context.Context, req *authv3.CheckRequest, names nameHints) (*wireResponse, error) {
	d, err := s.decide(ctx, req, names)
	if err != nil {
		return nil, err
	}
	return &wireResponse{appendResponse(make([]byte, 0, 512), &d, s.denyDetail)}, nil
}

// appendResponse appends toResponse(d, detail) in protobuf wire format.
func appendResponse(b []byte, d *Decision, detail bool) []byte {
	const overwrite = int32(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
	if d.Allow {
		b = appendMessage(b, 1, func(b []byte) []byte { return b }) // status {code: OK}
		b = appendMessage(b, 3, func(b []byte) []byte {             // ok_response
			b = appendHeaderOption(b, 2, HeaderPlan, d.Plan, overwrite)
			b = appendHeaderOption(b, 2, HeaderScore, strconv.Itoa(d.Score), overwrite)
			for _, k := range d.Strip {
				b = appendTag(b, 5, protowire.BytesType)
				b = protowire.AppendString(b, k)
			}
			for _, h := range d.Headers {
				b = appendHeaderOption(b, 6, h.Key, h.Value, overwrite)
			}
			return b
		})
		return appendMetadata(b, d)
	}
	status := d.status()
	code := codes.PermissionDenied
	if status == http.StatusTooManyRequests {
		code = codes.ResourceExhausted
	} else if status >= 500 {
		code = codes.Unavailable
	}
	b = appendMessage(b, 1, func(b []byte) []byte {
		b = appendVarintField(b, 1, uint64(code))
		return appendStringField(b, 2, d.Reason)
	})
	b = appendMessage(b, 2, func(b []byte) []byte { // denied_response
		b = appendMessage(b, 1, func(b []byte) []byte { return appendVarintField(b, 1, uint64(status)) })
		b = appendHeaderOption(b, 2, "content-type", "application/json", overwrite)
		if detail {
			b = appendHeaderOption(b, 2, HeaderReason, d.Reason, overwrite)
		}
		for _, h := range d.Headers {
			b = appendHeaderOption(b, 2, h.Key, h.Value, overwrite)
		}
		return appendStringField(b, 3, denyBody(d, status, detail))
	})
	return appendMetadata(b, d)
}

// appendMetadata appends dynamic_metadata (field 4): metadata(d)'s
// entries.
func appendMetadata(b []byte, d *Decision) []byte {
	decision, module, reason := metadataDecision(d)
	return appendMessage(b, 4, func(b []byte) []byte {
		b = appendStringEntry(b, "decision", decision)
		b = appendStringEntry(b, "module", module)
		b = appendStringEntry(b, "reason", reason)
		b = appendNumberEntry(b, "score", float64(d.Score))
		b = appendNumberEntry(b, "status", float64(d.status()))
		b = appendMessage(b, 1, func(b []byte) []byte {
			b = appendStringField(b, 1, "shadow")
			return appendMessage(b, 2, func(b []byte) []byte {
				b = appendTag(b, 4, protowire.VarintType) // bool_value
				return protowire.AppendVarint(b, protowire.EncodeBool(d.Shadow))
			})
		})
		b = appendStringEntry(b, "user", strings.ToValidUTF8(d.User, "\uFFFD"))
		b = appendStringEntry(b, "rule", d.Rule)
		b = appendStringEntry(b, "field", strings.ToValidUTF8(d.Field, "\uFFFD"))
		b = appendStringEntry(b, "excerpt", strings.ToValidUTF8(d.Excerpt, "\uFFFD"))
		b = appendNumberEntry(b, "behavior_score", float64(d.BehaviorScore))
		b = appendNumberEntry(b, "payload_score", float64(d.PayloadScore))
		b = appendStringEntry(b, "plan", strings.ToValidUTF8(d.Plan, "\uFFFD"))
		return appendStringEntry(b, "request_id", strings.ToValidUTF8(d.RequestID, "\uFFFD"))
	})
}

// appendStringEntry appends one Struct.fields entry holding a
// string_value (Value field 3).
func appendStringEntry(b []byte, key, v string) []byte {
	return appendMessage(b, 1, func(b []byte) []byte {
		b = appendStringField(b, 1, key)
		return appendMessage(b, 2, func(b []byte) []byte {
			// Written even when empty: a oneof member is always present.
			b = appendTag(b, 3, protowire.BytesType)
			return protowire.AppendString(b, v)
		})
	})
}

// appendNumberEntry appends one Struct.fields entry holding a
// number_value (Value field 2).
func appendNumberEntry(b []byte, key string, v float64) []byte {
	return appendMessage(b, 1, func(b []byte) []byte {
		b = appendStringField(b, 1, key)
		return appendMessage(b, 2, func(b []byte) []byte {
			b = appendTag(b, 2, protowire.Fixed64Type)
			return protowire.AppendFixed64(b, math.Float64bits(v))
		})
	})
}

// appendHeaderOption appends a HeaderValueOption {header {key, value},
// append_action} as field num.
func appendHeaderOption(b []byte, num protowire.Number, k, v string, action int32) []byte {
	return appendMessage(b, num, func(b []byte) []byte {
		b = appendMessage(b, 1, func(b []byte) []byte {
			b = appendStringField(b, 1, k)
			return appendStringField(b, 2, headerValue(v))
		})
		return appendVarintField(b, 3, uint64(action))
	})
}

// appendStringField appends a proto3 string field (nothing when empty).
func appendStringField(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = appendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// appendVarintField appends a proto3 varint field (nothing when 0).
func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendMessage appends field num holding the message body writes: the
// body goes first, then its length is put in front of it (instead of
// sizing every message twice). One byte is kept for the length, which is
// all a body under 128 bytes needs — nearly every message of a response;
// a longer one is moved up by the extra bytes.
//
// Why: appendMessage, its copy and protowire.AppendVarint (every tag)
// were 7.9k of the 61k instructions of a GET Check (callgrind, exclusive
// counts, BenchmarkCheckPipeline/get with payload.mode off).
func appendMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	b = appendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	start := len(b)
	b = body(b)
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	for range size - 1 {
		b = append(b, 0)
	}
	copy(b[start-1+size:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

// appendTag appends a field's tag: one byte, for the field numbers below
// 16 that every message written here has.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	if num < 16 {
		return append(b, byte(num)<<3|byte(typ))
	}
	return protowire.AppendTag(b, num, typ)
}

// CheckWire answers one CheckRequest in protobuf wire format as the gRPC
// service does — the same decoder, pipeline and encoder, without the
// transport — for benchmarks and tools.
func (s *Server) CheckWire(ctx context.Context, req []byte) ([]byte, error) {
	var in checkRequest
	if err := (lenientCodec{encoding.GetCodecV2("proto")}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(req)}, &in); err != nil {
		return nil, err
	}
	w, err := s.checkWire(ctx, &in.req, in.names)
	if err != nil {
		return nil, err
	}
	return w.b, nil
}
