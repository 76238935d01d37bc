package state

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// packedState is a check script reply's string for v (checkReplyFormat).
func packedState(v ...uint32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return string(b)
}

func TestParseCheck(t *testing.T) {
	tests := map[string]struct {
		res     []any
		err     error
		want    scoring.ClientState
		wantErr bool
	}{
		"state": {res: []any{packedState(70000, 12, 9, 3, 5, 4294967295, 2)},
			want: scoring.ClientState{Requests: 70000, RecentRequests: 12, Responses: 9, Errors: 3,
				DistinctEndpoints: 5, SequentialRun: 4294967295, IdleBurst: 2}},
		"ban": {res: []any{int64(1), "rate", int64(80), int64(1000), int64(61000), int64(2)},
			want: scoring.ClientState{Ban: &scoring.Ban{ClientKey: "c", Reason: "rate", Score: 80,
				Created: time.UnixMilli(1000), Expires: time.UnixMilli(61000), Offence: 2}}},
		"call error":         {err: errors.New("boom"), wantErr: true},
		"short state":        {res: []any{packedState(1, 2, 3)}, wantErr: true},
		"state not a string": {res: []any{int64(1)}, wantErr: true},
		"flag not a ban":     {res: []any{int64(0), "rate", int64(80), int64(1000), int64(61000), int64(2)}, wantErr: true},
		"short ban":          {res: []any{int64(1), "rate", int64(80)}, wantErr: true},
		"empty":              {res: []any{}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseCheck("c", tc.res, tc.err)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got.Ban != nil && tc.want.Ban != nil {
				if *got.Ban != *tc.want.Ban {
					t.Fatalf("ban %+v, want %+v", *got.Ban, *tc.want.Ban)
				}
				got.Ban, tc.want.Ban = nil, nil
			}
			if got != tc.want {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
		})
	}
}
