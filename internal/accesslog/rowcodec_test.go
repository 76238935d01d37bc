package accesslog

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// varint decodes what binary.AppendVarint wrote, negative values included,
// and a cut-off value is a short row.
func TestRowDecoderVarint(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 1_764_000_000, -1_764_000_000, math.MaxInt64, math.MinInt64} {
		b := binary.AppendVarint(nil, v)
		d := newRowDecoder(b, spoolVersion)
		if got := d.varint(); got != v || d.err != nil || len(d.b) != 0 {
			t.Errorf("varint(%d) = %d, err %v, %d bytes left", v, got, d.err, len(d.b))
		}
		d = newRowDecoder(b[:len(b)-1], spoolVersion)
		if got := d.varint(); got != 0 || !errors.Is(d.err, errShortRow) {
			t.Errorf("varint(%d) cut short = %d, err %v; want 0, errShortRow", v, got, d.err)
		}
	}
}
