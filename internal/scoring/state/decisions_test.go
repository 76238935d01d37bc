package state

import (
	"context"
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
			d, err := NewRedisDecisions(c, RedisOptions{Prefix: prefix})
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
