package authz

import (
	"bytes"
	"context"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// withInvalidUTF8 marshals req and swaps the placeholder for bytes that
// are not UTF-8, as a client's raw header or path may be.
func withInvalidUTF8(t *testing.T, req *authv3.CheckRequest, placeholder string, raw []byte) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != len(placeholder) || !bytes.Contains(b, []byte(placeholder)) {
		t.Fatal("placeholder and replacement must have the same length")
	}
	return bytes.ReplaceAll(b, []byte(placeholder), raw)
}

// Invalid UTF-8 anywhere a client writes is decoded (as U+FFFD) and
// decided, never a gRPC error that Envoy's failure_mode_allow would pass.
func TestCodecDecidesInvalidUTF8(t *testing.T) {
	tests := map[string]struct {
		req  *authv3.CheckRequest
		want string // in the decoded request
	}{
		"header value": {envoyCheck("203.0.113.5", "GET", "/", map[string]string{"referer": "AAAA<script>alert(1)</script>"}),
			"\uFFFD<script>"},
		"path": {envoyCheck("203.0.113.5", "GET", "/AAAA?q=1", nil), "/\uFFFD?q=1"},
	}
	codec := lenientCodec{encoding.GetCodecV2("proto")}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			raw := withInvalidUTF8(t, tc.req, "AAAA", []byte{0xff, 0xfe, 0xc0, 0x80})
			if err := proto.Unmarshal(raw, &authv3.CheckRequest{}); err == nil {
				t.Fatal("the plain proto codec accepted it: the test proves nothing")
			}
			var got authv3.CheckRequest
			if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &got); err != nil {
				t.Fatalf("codec: %v", err)
			}
			if !bytes.Contains([]byte(got.String()), []byte(tc.want)) && !containsValue(&got, tc.want) {
				t.Fatalf("decoded request lacks %q: %v", tc.want, &got)
			}
			s := NewServer(pipeline(), time.Second)
			if _, err := s.Check(context.Background(), &got); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
	// Garbage that is not a UTF-8 problem keeps its error.
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x50, 0x01})}, &authv3.CheckRequest{}); err == nil {
		t.Error("truncated message accepted")
	}
}

func containsValue(r *authv3.CheckRequest, want string) bool {
	h := r.GetAttributes().GetRequest().GetHttp()
	if bytes.Contains([]byte(h.GetPath()), []byte(want)) {
		return true
	}
	for _, v := range h.GetHeaders() {
		if bytes.Contains([]byte(v), []byte(want)) {
			return true
		}
	}
	return false
}
