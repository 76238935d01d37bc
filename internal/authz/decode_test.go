package authz

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// decodeSeeds are CheckRequests in the shapes Envoy sends and the shapes
// the hand decoder must hand to protobuf.
func decodeSeeds(t testing.TB) [][]byte {
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	get := envoyCheck("203.0.113.7", "GET", "/a/b?c=1&d=<x>", map[string]string{"x-forwarded-for": "198.51.100.1, 203.0.113.7",
		"cookie": "s=1", "X-Upper": "v"})
	post := envoyCheck("2001:db8::1", "POST", "/orders", map[string]string{"content-type": "application/json"})
	post.Attributes.Request.Http.RawBody = []byte(`{"a":"' or 1=1 --"}`)
	post.Attributes.Request.Http.Size = 19
	post.Attributes.Request.Http.Query = "q=1"
	jwt := envoyCheck("203.0.113.8", "GET", "/me", nil)
	claims, _ := structpb.NewStruct(map[string]any{"jwt_payload": map[string]any{"sub": "u-1", "plan": "pro"}})
	jwt.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.filters.http.jwt_authn": claims}}
	raw := envoyCheck("203.0.113.9", "GET", "/raw", nil)
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":path", RawValue: []byte("/raw?x=\xff")}, {Key: "Cookie", Value: "a=1"}, {Key: "cookie", Value: "b=2"}}}
	pipe := envoyCheck("203.0.113.10", "GET", "/", nil)
	pipeBytes := marshal(pipe)
	// The same source address again as a pipe: protobuf's oneof takes the
	// last member.
	peer := protowire.AppendTag(nil, 1, protowire.BytesType)
	peer = protowire.AppendBytes(peer, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0x0a, 0x01, 'p'})))
	pipeBytes = append(pipeBytes, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), peer)...)
	twice := append(marshal(get), marshal(post)...) // attributes twice: protobuf merges
	invalid := bytes.ReplaceAll(marshal(envoyCheck("203.0.113.11", "GET", "/AAAA", map[string]string{"referer": "AAAA"})),
		[]byte("AAAA"), []byte{0xff, 0xfe, 0xc0, 0x80})
	return [][]byte{marshal(get), marshal(post), marshal(jwt), marshal(raw), pipeBytes, twice, invalid, {}, {0x0a}, {0x0a, 0x02, 0x22, 0x00}}
}

// slowDecode is the protobuf path of lenientCodec.
func slowDecode(b []byte) (*authv3.CheckRequest, error) {
	var req authv3.CheckRequest
	codec := lenientCodec{encoding.GetCodecV2("proto")}
	return &req, codec.CodecV2.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &req)
}

func lenientSlow(b []byte) (*authv3.CheckRequest, error) {
	// lenientCodec without the hand decoder: protobuf, then the UTF-8 repair.
	req, err := slowDecode(b)
	if err == nil {
		return req, nil
	}
	fixed, changed, serr := sanitizeUTF8(b, req.ProtoReflect().Descriptor(), 0)
	if serr != nil || !changed {
		return nil, err
	}
	req = &authv3.CheckRequest{}
	return req, proto.Unmarshal(fixed, req)
}

// checkDecodeAgrees: whatever the hand decoder accepts, toRequest reads as
// it reads protobuf's decoding of the same bytes.
func checkDecodeAgrees(t *testing.T, b []byte) {
	t.Helper()
	var fast authv3.CheckRequest
	if err := decodeCheckRequest(b, &fast); err != nil {
		return // protobuf decides
	}
	slow, err := lenientSlow(b)
	if err != nil {
		// Malformed only inside a part authz never reads (protobuf
		// checks all of it): a decision beats an error Envoy's
		// failure_mode_allow would pass.
		return
	}
	id := testIdentity()
	now := time.Unix(1700000000, 0)
	rf, okf := toRequest(&fast, id, now)
	rs, oks := toRequest(slow, id, now)
	if okf != oks || !sameRequest(rf, rs) {
		t.Fatalf("hand decoder and protobuf disagree on %x:\nhand     %+v (%v)\nprotobuf %+v (%v)", b, rf, okf, rs, oks)
	}
}

func sameRequest(a, b *scoring.Request) bool {
	if len(a.Body) == 0 && len(b.Body) == 0 {
		a.Body, b.Body = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestDecodeCheckRequest(t *testing.T) {
	seeds := decodeSeeds(t)
	for i, b := range seeds {
		checkDecodeAgrees(t, b)
		var fast authv3.CheckRequest
		err := decodeCheckRequest(b, &fast)
		switch i {
		case 0, 1, 2, 3, 6: // Envoy's shapes: decoded by hand
			if err != nil {
				t.Fatalf("seed %d: hand decoder gave up: %v", i, err)
			}
		case 4, 5: // oneof and merged messages: protobuf's
			if err == nil {
				t.Fatalf("seed %d: hand decoder took a message protobuf merges", i)
			}
		}
	}
	// Through the codec, as gRPC calls it: the same request either way.
	codec := lenientCodec{encoding.GetCodecV2("proto")}
	for _, b := range seeds[:7] {
		var got authv3.CheckRequest
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:len(b):len(b)])}, &got); err != nil {
			t.Fatalf("codec: %v", err)
		}
		want, err := lenientSlow(b)
		if err != nil {
			t.Fatal(err)
		}
		r1, _ := toRequest(&got, testIdentity(), time.Time{})
		r2, _ := toRequest(want, testIdentity(), time.Time{})
		if !sameRequest(r1, r2) {
			t.Fatalf("codec and protobuf disagree:\n%+v\n%+v", r1, r2)
		}
	}
}

// The codec tells toRequest whether the header names are lowercase and
// whether one is ours; a request with an uppercase name still reaches the
// pipeline lowercased, and a client's x-smartlayer- header is still
// stripped.
func TestDecodeNamesLower(t *testing.T) {
	codec := lenientCodec{encoding.GetCodecV2("proto")}
	tests := map[string]struct {
		headers map[string]string
		raw     bool // sent as header_map (encode_raw_headers)
		names   nameHints
	}{
		"envoy's lowercase names": {headers: map[string]string{"accept": "*/*", "x-forwarded-for": "198.51.100.1"},
			names: nameHints{lower: true, noOwn: true}},
		"one uppercase name": {headers: map[string]string{"accept": "*/*", "X-Upper": "v"}},
		"a client's own x-smartlayer- header": {headers: map[string]string{"accept": "*/*", "x-smartlayer-user": "admin"},
			names: nameHints{lower: true}},
		"header_map with our header": {headers: map[string]string{"accept": "*/*", "x-smartlayer-user": "admin"}, raw: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := envoyCheck("203.0.113.7", "GET", "/", tc.headers)
			if h := req.Attributes.Request.Http; tc.raw {
				h.HeaderMap = &corev3.HeaderMap{}
				for k, v := range h.Headers {
					h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
				}
				h.Headers = nil
			}
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			var cr checkRequest
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &cr); err != nil {
				t.Fatal(err)
			}
			if cr.names != tc.names {
				t.Fatalf("names = %+v, want %+v", cr.names, tc.names)
			}
			r, _ := toRequestNames(&cr.req, testIdentity(), time.Time{}, cr.names)
			for k, v := range tc.headers {
				if got := r.Headers[strings.ToLower(k)]; got != v {
					t.Fatalf("header %s = %q, want %q (%v)", k, got, v, r.Headers)
				}
			}
			s := NewServer(pipeline(), time.Second)
			d, err := s.decide(context.Background(), &cr.req, cr.names)
			if err != nil {
				t.Fatal(err)
			}
			if _, own := tc.headers["x-smartlayer-user"]; own != slices.Contains(d.Strip, "x-smartlayer-user") {
				t.Fatalf("strip %v for headers %v", d.Strip, tc.headers)
			}
		})
	}
}

func FuzzDecodeCheckRequest(f *testing.F) {
	for _, b := range decodeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeAgrees(t, b)
	})
}

func BenchmarkDecodeCheckRequest(b *testing.B) {
	req, err := proto.Marshal(envoyCheck("203.0.113.1", "GET", "/products/shoes?page=2&sort=price", map[string]string{
		"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"accept":     "text/html,application/json", "accept-language": "en-US,en;q=0.9",
		"cookie": "session=3f2a9c0d1b; theme=dark", "x-forwarded-for": "198.18.0.1", "x-forwarded-proto": "http"}))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := slowDecode(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r authv3.CheckRequest
			if err := decodeCheckRequest(req, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
