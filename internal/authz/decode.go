package authz

import (
	"errors"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// decodeCheckRequest fills req with the fields of the CheckRequest in b
// that toRequest reads — the peer address, the HTTP request and the
// metadata context — and skips the rest (destination, TLS session, route
// metadata, context extensions). Strings that are not UTF-8 become
// U+FFFD, as lenientCodec does.
//
// Why by hand: protobuf's reflection-driven decoder was 16% of authz's CPU
// per Check under load (profile of checkload -c 32 against the memory
// store, 2026-12-01), more than the whole behaviour stage. For checkload's
// browser GET this one takes 32–34k instructions and 36 allocations where
// protobuf takes 64–82k and 82 (BenchmarkDecodeCheckRequest under
// valgrind --tool=callgrind, which counts instructions whatever the load
// on the machine; wall-clock figures on the shared 2-core box were too
// noisy to quote). FuzzDecodeCheckRequest holds it to the protobuf path:
// for any input it decodes, toRequest sees the same request.
//
// It answers errFallback for anything it does not handle exactly as
// protobuf does (a message field sent twice, which protobuf merges;
// malformed wire data): the caller then decodes with protobuf, whose
// answer (or error) stands.
func decodeCheckRequest(b []byte, req *authv3.CheckRequest) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		return once(&req.Attributes, v, decodeAttributes)
	})
}

// errFallback: decode this message with protobuf instead.
var errFallback = errors.New("decode with protobuf")

// once decodes v with dec into a new *m. Protobuf merges a message field
// sent twice; that case goes to protobuf.
func once[T any](m **T, v []byte, dec func([]byte, *T) error) error {
	if *m != nil {
		return errFallback
	}
	*m = new(T)
	return dec(v, *m)
}

func decodeAttributes(b []byte, a *authv3.AttributeContext) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1: // source
			return once(&a.Source, v, decodePeer)
		case 4: // request
			return once(&a.Request, v, func(b []byte, r *authv3.AttributeContext_Request) error {
				return fields(b, func(num protowire.Number, v []byte) error {
					if num != 2 {
						return nil
					}
					return once(&r.Http, v, decodeHTTP)
				})
			})
		case 11: // metadata_context: only with jwt_authn, and a Struct
			return once(&a.MetadataContext, v, func(b []byte, m *corev3.Metadata) error {
				if proto.Unmarshal(b, m) != nil {
					return errFallback
				}
				return nil
			})
		}
		return nil
	})
}

// decodePeer reads source.address.socket_address.address.
func decodePeer(b []byte, p *authv3.AttributeContext_Peer) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		return once(&p.Address, v, func(b []byte, a *corev3.Address) error {
			var sa *corev3.SocketAddress
			err := fields(b, func(num protowire.Number, v []byte) error {
				switch num {
				case 1:
					return once(&sa, v, func(b []byte, sa *corev3.SocketAddress) error {
						return fields(b, func(num protowire.Number, v []byte) error {
							if num == 2 {
								sa.Address = wireString(v)
							}
							return nil
						})
					})
				case 2, 3:
					// pipe or envoy_internal_address: the oneof's
					// last member wins in protobuf.
					return errFallback
				}
				return nil
			})
			if sa != nil {
				a.Address = &corev3.Address_SocketAddress{SocketAddress: sa}
			}
			return err
		})
	})
}

func decodeHTTP(b []byte, h *authv3.AttributeContext_HttpRequest) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			h.Id = wireString(v)
		case 2:
			h.Method = wireString(v)
		case 3:
			if h.Headers == nil {
				h.Headers = make(map[string]string, 16)
			}
			k, val, err := mapEntry(v)
			h.Headers[k] = val
			return err
		case 4:
			h.Path = wireString(v)
		case 5:
			h.Host = wireString(v)
		case 7:
			h.Query = wireString(v)
		case 11:
			h.Body = wireString(v)
		case 12:
			h.RawBody = append([]byte{}, v...)
		case 13:
			return once(&h.HeaderMap, v, decodeHeaderMap)
		}
		return nil
	})
}

func decodeHeaderMap(b []byte, m *corev3.HeaderMap) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		hv := &corev3.HeaderValue{}
		m.Headers = append(m.Headers, hv)
		return fields(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				hv.Key = wireString(v)
			case 2:
				hv.Value = wireString(v)
			case 3:
				hv.RawValue = append([]byte{}, v...)
			}
			return nil
		})
	})
}

// mapEntry reads a map<string, string> entry.
func mapEntry(b []byte) (k, v string, err error) {
	err = fields(b, func(num protowire.Number, b []byte) error {
		switch num {
		case 1:
			k = wireString(b)
		case 2:
			v = wireString(b)
		}
		return nil
	})
	return k, v, err
}

// fields calls f with each length-delimited field of the message b and
// skips the others: protobuf too keeps a field whose wire type is not its
// own as an unknown field, so a varint where a string belongs is ignored
// by both. Malformed data goes to protobuf, for its error.
func fields(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errFallback
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return errFallback
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return errFallback
		}
		b = b[m:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// wireString copies v out of the gRPC buffer (reused after decoding) as
// valid UTF-8.
func wireString(v []byte) string {
	if utf8.Valid(v) {
		return string(v)
	}
	return strings.ToValidUTF8(string(v), "\uFFFD")
}
