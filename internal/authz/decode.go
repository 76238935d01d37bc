package authz

import (
	"errors"
	"strings"
	"unicode/utf8"
	"unsafe"

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
// browser GET this one took 32–34k instructions and 36 allocations where
// protobuf takes 64–82k and 82 (BenchmarkDecodeCheckRequest under
// valgrind --tool=callgrind, which counts instructions whatever the load
// on the machine; wall-clock figures on the shared 2-core box were too
// noisy to quote); with the messages in one block and the strings in one
// arena, 6 (see decoder). FuzzDecodeCheckRequest
// holds it to the protobuf path: for any input it decodes, toRequest sees
// the same request.
//
// It answers errFallback for anything it does not handle exactly as
// protobuf does (a message field sent twice, which protobuf merges;
// malformed wire data): the caller then decodes with protobuf, whose
// answer (or error) stands.
func decodeCheckRequest(b []byte, req *authv3.CheckRequest) error {
	var d decoder
	return d.decode(b, req, new(checkBlock))
}

// checkRequest is what the ext_authz handler decodes into: the request and
// the messages a CheckRequest from Envoy fills, in one allocation instead
// of one per message.
type checkRequest struct {
	req authv3.CheckRequest
	blk checkBlock
	// names: what the hand decoder found out about req's header names.
	names nameHints
}

// nameHints is what the hand decoder learnt about a request's header
// names as it copied them, so that toRequest and ownHeadersSent need not
// walk the headers map to find out (the two walks were 3.7k instructions
// of a GET Check: callgrind, exclusive counts of maps.(*Iter).Next,
// BenchmarkCheckPipeline/get). The zero value knows nothing.
type nameHints struct {
	// lower: every name is lowercase, as Envoy sends them.
	lower bool
	// noOwn: no name starts with x-smartlayer- (ownHeaderPrefix).
	noOwn bool
}

// checkBlock holds the messages of a CheckRequest's common path; the
// decoder points req's fields at them.
type checkBlock struct {
	attrs   authv3.AttributeContext
	source  authv3.AttributeContext_Peer
	addr    corev3.Address
	sockWrp corev3.Address_SocketAddress
	sock    corev3.SocketAddress
	request authv3.AttributeContext_Request
	http    authv3.AttributeContext_HttpRequest
}

// decoder copies the strings it decodes out of the gRPC buffer (reused
// after decoding) into an arena: a few chunks shared by all the request's
// strings instead of an allocation each.
//
// Why: the header names and values, path, id and address were 20 of the
// 68 allocations of a GET Check (BenchmarkCheckPipeline/get), and the
// decode's messages 8 more; with the block and the arena the decoder takes
// 6 (BenchmarkDecodeCheckRequest/hand: 36 → 6 allocs; callgrind 30.3k →
// 28.2k instructions per decode, the rest of the gain is the garbage
// collector's: BenchmarkCheckPipeline/get 68 → 35 allocs).
//
// The strings share their chunk, so one kept past the Check keeps the
// chunk (a request's headers, about a kilobyte) alive: what outlives the
// Check is cloned where it is kept (Server.check clones the request id it
// records; the stores keep hashes and their own copies of keys).
type decoder struct {
	// upperNames: a header name in the headers map has an uppercase
	// letter; ownNames: one starts with ownHeaderPrefix.
	upperNames, ownNames bool
	arena                []byte
	// first sizes the first chunk: the message's size (its strings fit
	// in it) up to arenaChunk.
	first int
}

// arenaChunk is the most the arena allocates at once; a longer string
// (a body sent as a string field) gets its own allocation.
const arenaChunk = 2048

func (d *decoder) decode(b []byte, req *authv3.CheckRequest, blk *checkBlock) error {
	d.first = min(len(b), arenaChunk)
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		return once(&req.Attributes, &blk.attrs, v, func(b []byte, a *authv3.AttributeContext) error {
			return d.attributes(b, a, blk)
		})
	})
}

// str copies v into the arena as valid UTF-8.
func (d *decoder) str(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if !utf8.Valid(v) {
		return strings.ToValidUTF8(string(v), "\uFFFD")
	}
	if cap(d.arena)-len(d.arena) < len(v) {
		if len(v) > arenaChunk/2 {
			return string(v)
		}
		d.arena = make([]byte, 0, max(d.first, len(v)))
		d.first = arenaChunk
	}
	start := len(d.arena)
	d.arena = append(d.arena, v...)
	// The bytes from start on are never written again: appends go past
	// them, and a full chunk is replaced, not grown.
	return unsafe.String(&d.arena[start], len(v))
}

// errFallback: decode this message with protobuf instead.
var errFallback = errors.New("decode with protobuf")

// once decodes v with dec into *m, which it points at fresh (zero, from
// the block) or a new T when fresh is nil. Protobuf merges a message field
// sent twice; that case goes to protobuf.
func once[T any](m **T, fresh *T, v []byte, dec func([]byte, *T) error) error {
	if *m != nil {
		return errFallback
	}
	if fresh == nil {
		fresh = new(T)
	}
	*m = fresh
	return dec(v, fresh)
}

func (d *decoder) attributes(b []byte, a *authv3.AttributeContext, blk *checkBlock) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1: // source
			return once(&a.Source, &blk.source, v, func(b []byte, p *authv3.AttributeContext_Peer) error {
				return d.peer(b, p, blk)
			})
		case 4: // request
			return once(&a.Request, &blk.request, v, func(b []byte, r *authv3.AttributeContext_Request) error {
				return fields(b, func(num protowire.Number, v []byte) error {
					if num != 2 {
						return nil
					}
					return once(&r.Http, &blk.http, v, d.http)
				})
			})
		case 11: // metadata_context: only with jwt_authn, and a Struct
			return once(&a.MetadataContext, nil, v, func(b []byte, m *corev3.Metadata) error {
				if proto.Unmarshal(b, m) != nil {
					return errFallback
				}
				return nil
			})
		}
		return nil
	})
}

// peer reads source.address.socket_address.address.
func (d *decoder) peer(b []byte, p *authv3.AttributeContext_Peer, blk *checkBlock) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		return once(&p.Address, &blk.addr, v, func(b []byte, a *corev3.Address) error {
			var sa *corev3.SocketAddress
			err := fields(b, func(num protowire.Number, v []byte) error {
				switch num {
				case 1:
					return once(&sa, &blk.sock, v, func(b []byte, sa *corev3.SocketAddress) error {
						return fields(b, func(num protowire.Number, v []byte) error {
							if num == 2 {
								sa.Address = d.str(v)
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
				blk.sockWrp.SocketAddress = sa
				a.Address = &blk.sockWrp
			}
			return err
		})
	})
}

func (d *decoder) http(b []byte, h *authv3.AttributeContext_HttpRequest) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			h.Id = d.str(v)
		case 2:
			h.Method = d.str(v)
		case 3:
			if h.Headers == nil {
				h.Headers = make(map[string]string, 16)
			}
			k, val, err := d.mapEntry(v)
			d.upperNames = d.upperNames || hasUpperASCII(k)
			d.ownNames = d.ownNames || strings.HasPrefix(k, ownHeaderPrefix)
			h.Headers[k] = val
			return err
		case 4:
			h.Path = d.str(v)
		case 5:
			h.Host = d.str(v)
		case 7:
			h.Query = d.str(v)
		case 11:
			h.Body = d.str(v)
		case 12:
			h.RawBody = append([]byte{}, v...)
		case 13:
			// Nothing known of these names (nameHints): toRequest
			// and ownHeadersSent look.
			d.upperNames, d.ownNames = true, true
			return once(&h.HeaderMap, nil, v, d.headerMap)
		}
		return nil
	})
}

func (d *decoder) headerMap(b []byte, m *corev3.HeaderMap) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		hv := &corev3.HeaderValue{}
		m.Headers = append(m.Headers, hv)
		return fields(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				hv.Key = d.str(v)
			case 2:
				hv.Value = d.str(v)
			case 3:
				hv.RawValue = append([]byte{}, v...)
			}
			return nil
		})
	})
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// mapEntry reads a map<string, string> entry.
func (d *decoder) mapEntry(b []byte) (k, v string, err error) {
	err = fields(b, func(num protowire.Number, b []byte) error {
		switch num {
		case 1:
			k = d.str(b)
		case 2:
			v = d.str(b)
		}
		return nil
	})
	return k, v, err
}

// fields calls f with each length-delimited field of the message b and
// skips the others: protobuf too keeps a field whose wire type is not its
// own as an unknown field, so a varint where a string belongs is ignored
// by both. Malformed data goes to protobuf, for its error.
//
// One-byte tags and lengths (nearly all of a CheckRequest's) are read
// inline; protowire reads the rest. Why: ConsumeTag, ConsumeBytes and
// ConsumeVarint were 3.4k of the 61k instructions of a GET Check
// (callgrind, exclusive counts, BenchmarkCheckPipeline/get with
// payload.mode off).
func fields(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		var num protowire.Number
		var typ protowire.Type
		if c := b[0]; c >= 1<<3 && c < 0x80 { // field numbers 1–15, valid
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
			b = b[1:]
		} else {
			var n int
			num, typ, n = protowire.ConsumeTag(b)
			if n < 0 {
				return errFallback
			}
			b = b[n:]
		}
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return errFallback
			}
			b = b[m:]
			continue
		}
		var v []byte
		if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
			n := int(b[0])
			v, b = b[1:1+n], b[1+n:]
		} else {
			var m int
			v, m = protowire.ConsumeBytes(b)
			if m < 0 {
				return errFallback
			}
			b = b[m:]
		}
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}
