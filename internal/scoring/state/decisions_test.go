package state

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// Both decision stores answer the same: the client a request was decided
// for, "" for unknown or expired ids.
func TestDecisionStoresAgree(t *testing.T) {
	stores := map[string]func(t *testing.T) scoring.DecisionStore{
		"memory": func(*testing.T) scoring.DecisionStore { return NewMemoryDecisions(100) },
		"redis": func(t *testing.T) scoring.DecisionStore {
			_, c, prefix := newRedis(t)
			d, err := NewRedisDecisions(c, RedisOptions{Prefix: prefix}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			ctx := context.Background()
			if err := st.Remember(ctx, []scoring.Decided{{RequestID: "a", Client: "192.0.2.1"},
				{RequestID: "b", Client: "2001:db8::1"}}, time.Minute); err != nil {
				t.Fatal(err)
			}
			got, err := st.Clients(ctx, []string{"a", "zzz", "b"})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{st.Key("192.0.2.1"), "", st.Key("2001:db8::1")}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("Clients[%d] = %q, want %q", i, got[i], want[i])
				}
			}
			if st.Key("192.0.2.1") == st.Key("192.0.2.2") {
				t.Error("Key does not tell clients apart")
			}
		})
	}
}

// The memory store forgets the generation before last: it holds at most
// maxRecords decisions.
func TestMemoryDecisionsBounded(t *testing.T) {
	m := NewMemoryDecisions(4)
	ctx := context.Background()
	for _, id := range []string{"1", "2", "3", "4", "5", "6"} {
		if err := m.Remember(ctx, []scoring.Decided{{RequestID: id, Client: "c"}}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := m.Clients(ctx, []string{"1", "2", "5", "6"})
	if got[0] != "" || got[1] != "" || got[2] == "" || got[3] == "" {
		t.Errorf("after 6 records with room for 4: %q", got)
	}
	if n := len(m.cur) + len(m.prev); n > 4 {
		t.Errorf("%d decisions kept, bound 4", n)
	}
}

// The Redis store keeps decisions in hashes per generation of the window
// (by the writer's clock): an id is found by a reader in its generation
// and the next, not two generations later; by a reader whose clock is
// behind the writer's across a generation boundary, when the skew is below
// a quarter of the window; a batch is spread over several keys, each kept
// 2–3 windows.
func TestRedisDecisionsGenerations(t *testing.T) {
	const window = time.Minute
	// written is 2 s into a generation.
	written := time.UnixMilli(29_000_000 * window.Milliseconds()).Add(2 * time.Second)
	tests := map[string]struct {
		readAt time.Duration // after written, by the reader's clock
		found  bool
	}{
		"same instant":                           {0, true},
		"end of its generation":                  {window - 2*time.Second - time.Millisecond, true},
		"next generation":                        {window, true},
		"end of the next generation":             {2*window - 2*time.Second - time.Millisecond, true},
		"two generations later":                  {2*window - 2*time.Second, false},
		"reader's clock 5s behind":               {-5 * time.Second, true},
		"reader's clock 18s behind (> window/4)": {-18 * time.Second, false},
		"reader's clock a generation behind":     {-window, false},
	}
	_, c, prefix := newRedis(t)
	w, err := NewRedisDecisions(c, RedisOptions{Prefix: prefix}, window)
	if err != nil {
		t.Fatal(err)
	}
	w.now = func() time.Time { return written }
	ctx := context.Background()
	var ds []scoring.Decided
	for i := range 64 {
		ds = append(ds, scoring.Decided{RequestID: fmt.Sprintf("id-%d", i), Client: fmt.Sprintf("192.0.2.%d", i)})
	}
	if err := w.Remember(ctx, ds, window); err != nil {
		t.Fatal(err)
	}
	if err := w.Remember(ctx, ds[:1], 2*window); err == nil {
		t.Error("Remember with a ttl other than the window: no error")
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := NewRedisDecisions(c, RedisOptions{Prefix: prefix}, window)
			if err != nil {
				t.Fatal(err)
			}
			r.now = func() time.Time { return written.Add(tc.readAt) }
			ids := []string{"unknown"}
			for _, d := range ds {
				ids = append(ids, d.RequestID)
			}
			got, err := r.Clients(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != "" {
				t.Errorf("unknown id: %q", got[0])
			}
			for i, d := range ds {
				want := ""
				if tc.found {
					want = d.Client
				}
				if got[i+1] != want {
					t.Fatalf("%s read %v after: %q, want %q", d.RequestID, tc.readAt, got[i+1], want)
				}
			}
		})
	}

	keys, err := c.Keys(ctx, prefix+"rid:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < decisionShards/2 {
		t.Errorf("64 decisions in %d keys %q, want them spread over at least %d", len(keys), keys, decisionShards/2)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		// Written 2 s into its generation: kept to the end of the second
		// after, 3 windows less 2 s (and the time this test took).
		if ttl < 3*window-3*time.Second || ttl > 3*window-2*time.Second {
			t.Errorf("%s expires in %v, want 3 windows less 2s", k, ttl)
		}
	}

	// An id decided again in the next two generations (a reused or forged
	// id; the last by a writer whose clock is ahead), read in the last
	// quarter of the first of them: the newest decision is the one that
	// counts.
	for i, cl := range []string{"203.0.113.1", "203.0.113.2"} {
		w.now = func() time.Time { return written.Add(time.Duration(i+1) * window) }
		if err := w.Remember(ctx, []scoring.Decided{{RequestID: ds[0].RequestID, Client: cl}}, window); err != nil {
			t.Fatal(err)
		}
	}
	w.now = func() time.Time { return written.Add(window + 45*time.Second) }
	if got, err := w.Clients(ctx, []string{ds[0].RequestID}); err != nil || got[0] != "203.0.113.2" {
		t.Errorf("id decided in three generations: %q %v, want the newest client", got, err)
	}
}
