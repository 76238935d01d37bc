package accesslog

import (
	"testing"
	"time"
	"unicode/utf8"
)

// maxFuzzInput caps inputs: big inputs only slow the fuzzer down.
const maxFuzzInput = 1 << 16

func checkRow(t *testing.T, r Row) {
	t.Helper()
	if r.Unix <= 0 || r.Unix >= maxUnix || r.Millis > 999 {
		t.Fatalf("timestamp %d.%03d out of range", r.Unix, r.Millis)
	}
	for name, f := range map[string]struct {
		s   string
		max int
	}{
		"path": {r.Path, maxPathBytes}, "query": {r.Query, maxQueryBytes}, "user_agent": {r.UserAgent, maxLongField},
		"referer": {r.Referer, maxLongField}, "authority": {r.Authority, maxShortField}, "user_id": {r.UserID, maxShortField},
		"request_id": {r.RequestID, maxShortField}, "block_reason": {r.BlockReason, maxShortField},
	} {
		if len(f.s) > f.max {
			t.Fatalf("%s has %d bytes, cap %d", name, len(f.s), f.max)
		}
	}
	if r.BlockReason == reasonExtAuthzDenied && !r.Blocked {
		t.Fatal("fallback reason without blocked")
	}
	if r.ClientIP != "" && !utf8.ValidString(r.ClientIP) {
		t.Fatalf("client ip %q", r.ClientIP)
	}
	_ = time.Unix(r.Unix, 0)
}

// FuzzDecodeBatch feeds arbitrary bytes to the spool reader: it must reject
// or accept without panicking, and what it accepts must re-encode to the
// same rows.
func FuzzDecodeBatch(f *testing.F) {
	vb := batchOf([]Row{
		{Unix: 1_764_000_000, Millis: 5, Path: "/a", RequestID: "r1", Status: 200, Blocked: true, BlockReason: "x"},
		{Unix: 1_764_000_001, ClientIP: "2001:db8::1", BytesIn: 1 << 40, Score: 9},
	})
	vb.id, vb.maybeCommitted = [16]byte{1, 2, 3}, true
	valid := encodeBatch(vb)
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(encodeBatch(&batch{}))
	flipped := append([]byte(nil), valid...)
	flipped[40] ^= 0xff
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		b, err := decodeBatch(data)
		if err != nil {
			return
		}
		again, err := decodeBatch(encodeBatch(b))
		if err != nil {
			t.Fatalf("re-encoded batch rejected: %v", err)
		}
		rows, againRows := batchRows(t, b), batchRows(t, again)
		if len(againRows) != len(rows) || again.id != b.id || again.maybeCommitted != b.maybeCommitted {
			t.Fatal("re-encoded batch differs")
		}
		for i := range rows {
			if againRows[i] != rows[i] {
				t.Fatalf("row %d differs", i)
			}
		}
	})
}
