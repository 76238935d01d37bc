package authz

import (
	"errors"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	// The proto codec this one wraps.
	_ "google.golang.org/grpc/encoding/proto"
)

// ServerCodec returns the ext_authz server's codec option. Protobuf
// refuses a string field holding invalid UTF-8, and gRPC then answers an
// error before Check runs — which Envoy's failure_mode_allow turns into
// "allowed, unchecked". A client controls those bytes (a header, the path,
// a body sent as string), so that would be an attacker-chosen fail-open.
// This codec replaces invalid sequences with U+FFFD and decodes again, so
// every such request is decided like any other.
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(lenientCodec{encoding.GetCodecV2("proto")})
}

type lenientCodec struct{ encoding.CodecV2 }

// Marshal sends a wireResponse as it is, anything else through protobuf.
func (c lenientCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireResponse); ok {
		return mem.BufferSlice{mem.SliceBuffer(w.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var blk *checkBlock
	var cr *checkRequest
	switch x := v.(type) {
	case *checkRequest: // checkHandler's
		v, blk, cr = &x.req, &x.blk, x
	case *authv3.CheckRequest:
		blk = new(checkBlock)
	}
	if req, ok := v.(*authv3.CheckRequest); ok {
		var b []byte
		if len(data) == 1 {
			b = data[0].ReadOnlyData() // decodeCheckRequest copies what it keeps
		} else {
			buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
			defer buf.Free()
			b = buf.ReadOnlyData()
		}
		var d decoder
		if d.decode(b, req, blk) == nil {
			if cr != nil {
				cr.names = nameHints{lower: !d.upperNames, noOwn: !d.upperNames && !d.ownNames}
			}
			return nil
		}
		proto.Reset(req)
	}
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	fixed, changed, serr := sanitizeUTF8(buf.ReadOnlyData(), m.ProtoReflect().Descriptor(), 0)
	if serr != nil || !changed {
		return err // not a UTF-8 problem: the original error stands
	}
	proto.Reset(m)
	return proto.Unmarshal(fixed, m)
}

// maxNesting bounds the recursion over nested messages (protobuf's own
// limit is 10000; CheckRequests are a few levels deep).
const maxNesting = 100

var errTooDeep = errors.New("message nested too deeply")

// sanitizeUTF8 rewrites the string fields of the wire-format message b (of
// type md), nested messages and map entries included, replacing invalid
// UTF-8 with U+FFFD. Bytes fields and unknown fields are copied as they
// are.
func sanitizeUTF8(b []byte, md protoreflect.MessageDescriptor, depth int) (out []byte, changed bool, err error) {
	if depth > maxNesting {
		return nil, false, errTooDeep
	}
	out = make([]byte, 0, len(b))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		tag := b[:n]
		rest := b[n:]
		fd := md.Fields().ByNumber(num)
		if typ == protowire.BytesType && fd != nil {
			v, m := protowire.ConsumeBytes(rest)
			if m < 0 {
				return nil, false, protowire.ParseError(m)
			}
			switch {
			case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
				v, changed = []byte(strings.ToValidUTF8(string(v), "\uFFFD")), true
			case fd.Kind() == protoreflect.MessageKind:
				nv, c, err := sanitizeUTF8(v, fd.Message(), depth+1)
				if err != nil {
					return nil, false, err
				}
				v, changed = nv, changed || c
			}
			out = append(out, tag...)
			out = protowire.AppendBytes(out, v)
			b = rest[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, rest)
		if m < 0 {
			return nil, false, protowire.ParseError(m)
		}
		out = append(out, b[:n+m]...)
		b = rest[m:]
	}
	return out, changed, nil
}
