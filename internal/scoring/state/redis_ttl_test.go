package state

import (
	"context"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// TestRedisStateKeyTTL checks stateExpiry's claim on a real clock: after
// every write the state key lives at least the state TTL past the Check
// that last saw the client, though most writes keep the TTL they found.
// The Checks span several periods, so a script that never refreshed the
// TTL (or refreshed it only on a fresh state) fails, and so does one that
// left the key without a TTL.
func TestRedisStateKeyTTL(t *testing.T) {
	tests := map[string]struct {
		observe bool // an ObserveResponses after each Check
		first   bool // an ObserveResponses before the first Check
	}{
		"checks":                       {},
		"checks and responses":         {observe: true},
		"a response before the checks": {first: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, c, _ := newRedis(t)
			ctx := context.Background()
			w := windows()
			w.StateTTL = 3200 * time.Millisecond // a period of 200 ms
			_, period := stateExpiry(w.StateTTL)
			client := "192.0.2.7"
			key := r.checkKeys(client)[1]
			if tc.first {
				rs := []scoring.ObservedResponse{{ClientKey: client, At: time.Now()}}
				if err := r.ObserveResponses(ctx, rs, w); err != nil {
					t.Fatal(err)
				}
				if pttl, err := c.PTTL(ctx, key).Result(); err != nil || pttl < w.StateTTL {
					t.Fatalf("after a response: PTTL %v (%v), want at least the state TTL %v", pttl, err, w.StateTTL)
				}
			}
			start := time.Now()
			for i := 0; time.Since(start) < 4*time.Duration(period)*time.Millisecond; i++ {
				seen := time.Now()
				if _, err := r.Check(ctx, scoring.Observation{ClientKey: client, Now: seen, Endpoint: uint64(i % 3), Windows: w}); err != nil {
					t.Fatal(err)
				}
				if tc.observe {
					rs := []scoring.ObservedResponse{{ClientKey: client, At: time.Now(), IsError: i%2 == 0}}
					if err := r.ObserveResponses(ctx, rs, w); err != nil {
						t.Fatal(err)
					}
				}
				// The key expires at the read's time plus its PTTL, and
				// the read came after seen.
				pttl, err := c.PTTL(ctx, key).Result()
				if err != nil {
					t.Fatal(err)
				}
				if pttl < w.StateTTL {
					t.Fatalf("write %d, %v after the first: PTTL %v, want at least the state TTL %v", i, seen.Sub(start), pttl, w.StateTTL)
				}
				time.Sleep(25 * time.Millisecond)
			}
		})
	}
}
