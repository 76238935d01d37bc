package state

import (
	"context"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// TestClientTableModel runs random inserts, lookups, touches and removes on
// one shard and on a plain map with a recency list, and compares them after
// every step: lookups, size, eviction order, and that the index never
// loses a key (linear probing with backward-shift deletion, wrapping around
// the end of the slots).
func TestClientTableModel(t *testing.T) {
	tests := map[string]struct {
		max, keys int
		// keyOf spreads keys: all on a few home slots, or anywhere.
		keyOf func(i int) uint64
	}{
		"spread":     {max: 50, keys: 200, keyOf: func(i int) uint64 { return uint64(i) * 0x9E3779B97F4A7C15 }},
		"clustered":  {max: 40, keys: 120, keyOf: func(i int) uint64 { return uint64(i%3)<<32 | uint64(i) }},
		"wraparound": {max: 10, keys: 30, keyOf: func(i int) uint64 { return uint64(0xFFFFFFFF-i%2)<<32 | uint64(i) }},
		"one":        {max: 1, keys: 5, keyOf: func(i int) uint64 { return uint64(i) << 32 }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tab := newClientTable(tc.max, 1)
			s := tab.shard(0)
			var order []uint64 // model: most recently seen first
			rng := mrand.New(mrand.NewPCG(3, 4))
			evicted := 0
			for step := range 5000 {
				k := tc.keyOf(rng.IntN(tc.keys))
				at := slices.Index(order, k)
				switch op := rng.IntN(10); {
				case op < 6: // what track does: touch or insert
					if r := s.get(k); r != 0 {
						if at < 0 {
							t.Fatalf("step %d: key %x found, model lacks it", step, k)
						}
						s.touch(r)
						order = append([]uint64{k}, slices.Delete(order, at, at+1)...)
						continue
					}
					if at >= 0 {
						t.Fatalf("step %d: key %x lost", step, k)
					}
					r := s.insert(k)
					s.rec(r).c.total = uint16(step)
					if len(order) == tc.max {
						order, evicted = order[:len(order)-1], evicted+1
					}
					order = append([]uint64{k}, order...)
				case op < 8:
					if r := s.get(k); r != 0 {
						s.remove(r)
						order = slices.Delete(order, at, at+1)
					} else if at >= 0 {
						t.Fatalf("step %d: key %x lost", step, k)
					}
				default:
					if (s.get(k) != 0) != (at >= 0) {
						t.Fatalf("step %d: get(%x) disagrees with the model", step, k)
					}
				}
				if s.n != len(order) {
					t.Fatalf("step %d: %d tracked, model %d", step, s.n, len(order))
				}
			}
			// The recency list, walked from the sentinel, is the model's order.
			var got []uint64
			for r := s.rec(0).next; r != 0; r = s.rec(r).next {
				got = append(got, s.rec(r).key)
			}
			if !slices.Equal(got, order) {
				t.Fatalf("recency order\n got %x\nwant %x", got, order)
			}
			for _, k := range order {
				if s.get(k) == 0 {
					t.Fatalf("key %x lost", k)
				}
			}
			if tab.evictions() != uint64(evicted) || evicted == 0 && tc.keys > tc.max {
				t.Fatalf("evictions %d, model %d", tab.evictions(), evicted)
			}
		})
	}
}

// TestMemoryEndpointsBeyondRecord: endpoints and templates beyond the
// record's inline ones count, are replaced least recently seen first across
// inline and extra ones, and are forgotten with the client's state.
func TestMemoryEndpointsBeyondRecord(t *testing.T) {
	tests := map[string]struct {
		maxEndpoints, visits int
		wantDistinct         []int // after each visit
	}{
		"fewer than inline":  {maxEndpoints: 2, visits: 4, wantDistinct: []int{1, 2, 2, 2}},
		"inline exactly":     {maxEndpoints: inlineEndpoints, visits: 6, wantDistinct: []int{1, 2, 3, 4, 4, 4}},
		"beyond inline":      {maxEndpoints: 7, visits: 9, wantDistinct: []int{1, 2, 3, 4, 5, 6, 7, 7, 7}},
		"far beyond inline":  {maxEndpoints: 32, visits: 40, wantDistinct: nil},
		"one endpoint total": {maxEndpoints: 1, visits: 3, wantDistinct: []int{1, 1, 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := newMemory(t, MemoryOptions{Shards: 1})
			ctx := context.Background()
			w := windows()
			w.MaxEndpoints, w.MaxTemplates = tc.maxEndpoints, 3
			w.Distinct = time.Hour
			at := t0
			for i := range tc.visits {
				st, err := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: uint64(100 + i)})
				if err != nil {
					t.Fatal(err)
				}
				want := min(i+1, tc.maxEndpoints)
				if tc.wantDistinct != nil {
					want = tc.wantDistinct[i]
				}
				if st.DistinctEndpoints != want {
					t.Fatalf("visit %d: %d distinct endpoints, want %d", i, st.DistinctEndpoints, want)
				}
				at = at.Add(time.Second)
			}
			// The least recently seen endpoint was replaced: visiting the
			// first one again is new, the last one is a return.
			if tc.visits > tc.maxEndpoints {
				st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: uint64(100 + tc.visits - 1)})
				if st.DistinctEndpoints != tc.maxEndpoints {
					t.Fatalf("return to the last endpoint: %d distinct", st.DistinctEndpoints)
				}
			}
			// Sequential ids on more templates than the record holds inline.
			for i := range 4 {
				for tpl := range 3 {
					st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: 1,
						HasID: true, Template: uint64(tpl), ID: int64(i)})
					if st.SequentialRun != i+1 {
						t.Fatalf("template %d id %d: run %d, want %d", tpl, i, st.SequentialRun, i+1)
					}
					at = at.Add(time.Millisecond)
				}
			}
			// A fourth template replaces the least recently seen (0); 1 and 2 keep their runs.
			if st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: 1, HasID: true, Template: 9, ID: 7}); st.SequentialRun != 1 {
				t.Fatalf("new template: run %d", st.SequentialRun)
			}
			if st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: 1, HasID: true, Template: 2, ID: 4}); st.SequentialRun != 5 {
				t.Fatalf("kept template: run %d, want 5", st.SequentialRun)
			}
			if st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: 1, HasID: true, Template: 0, ID: 4}); st.SequentialRun != 1 {
				t.Fatalf("replaced template: run %d, want 1", st.SequentialRun)
			}
			// After the state TTL everything starts again.
			at = at.Add(w.StateTTL)
			st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: 100})
			if st.DistinctEndpoints != 1 || st.Requests != 1 {
				t.Fatalf("after the state TTL: %+v", st)
			}
			if st, _ := m.Check(ctx, scoring.Observation{ClientKey: "c", Now: at, Windows: w, Endpoint: 1, HasID: true, Template: 2, ID: 5}); st.SequentialRun != 1 {
				t.Fatalf("template after the state TTL: run %d", st.SequentialRun)
			}
			// Unban forgets the client, extra endpoints included.
			if _, err := m.Unban(ctx, "c", at); err != nil {
				t.Fatal(err)
			}
			if s := m.clients.shard(0); s.n != 0 || len(s.extra) != 0 {
				t.Fatalf("after unban: %d clients, %d extra", s.n, len(s.extra))
			}
		})
	}
}
