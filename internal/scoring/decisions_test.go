package scoring_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
)

type recordingObserver struct {
	mu  sync.Mutex
	got []scoring.UpstreamResponse
}

func (o *recordingObserver) ObserveResponses(_ context.Context, rs []scoring.UpstreamResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, rs...)
	return nil
}

// Only responses to requests this deployment decided, for the client it
// decided them for, reach scoring; forged entries are counted by reason.
func TestFeedbackCountsOnlyDecidedRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := scoring.NewDecisions(state.NewMemoryDecisions(1000), time.Minute, 100, slog.New(slog.DiscardHandler), reg)
	obs := &recordingObserver{}
	f := scoring.NewFeedback(obs, time.Second, 10, 1, slog.New(slog.DiscardHandler), nil)
	f.Bind(d, 30*time.Second)

	d.Record("req-1", "192.0.2.1")
	d.Record("req-2", "2001:db8::7")
	d.Record("req-3", "192.0.2.3")
	d.Close() // writes what is queued

	now := time.Now()
	f.Offer([]scoring.UpstreamResponse{
		{RequestID: "req-1", ClientIP: "192.0.2.1", Status: 500, At: now},                                   // decided: counts
		{RequestID: "req-2", ClientIP: "2001:db8::7", Status: 500, At: now.Add(100 * 365 * 24 * time.Hour)}, // counts, clamped
		{RequestID: "req-3", ClientIP: "::ffff:192.0.2.3", Status: 404, At: now},                            // mapped form of the decided IP
		{RequestID: "forged", ClientIP: "192.0.2.99", Status: 500, At: now},                                 // never decided
		{RequestID: "req-1", ClientIP: "192.0.2.99", Status: 500, At: now},                                  // someone else's id
		{ClientIP: "192.0.2.99", Status: 500, At: now},                                                      // no id
		{RequestID: "x", ClientIP: "192.0.2.1", Status: 403, OwnDenial: true, At: now},                      // our own denial: ignored, not counted
	})
	f.Close()

	if len(obs.got) != 3 {
		t.Fatalf("scored %d responses, want 3: %+v", len(obs.got), obs.got)
	}
	for _, r := range obs.got {
		if r.ClientIP == "192.0.2.99" {
			t.Errorf("forged response scored: %+v", r)
		}
		if r.At.After(now.Add(31 * time.Second)) {
			t.Errorf("time %v not clamped to now + skew", r.At)
		}
	}
	for reason, want := range map[string]float64{"unknown_id": 1, "other_client": 1, "no_id": 1} {
		if got := testutil.ToFloat64(mustVec(t, reg, reason)); got != want {
			t.Errorf("unmatched{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

func mustVec(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smartlayer_feedback_unmatched_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
}

// An access-log entry can overtake its own decision on its way to the
// store: it still counts.
func TestFeedbackEntryBeforeItsDecisionIsWritten(t *testing.T) {
	d := scoring.NewDecisions(state.NewMemoryDecisions(1000), time.Minute, 100, nil, nil)
	defer d.Close()
	obs := &recordingObserver{}
	f := scoring.NewFeedback(obs, time.Second, 100, 1, slog.New(slog.DiscardHandler), nil)
	f.Bind(d, 30*time.Second)
	for i := range 50 {
		id := fmt.Sprintf("fresh-%d", i)
		d.Record(id, "192.0.2.1")
		f.Offer([]scoring.UpstreamResponse{{RequestID: id, ClientIP: "192.0.2.1", Status: 500, At: time.Now()}})
	}
	f.Close()
	if len(obs.got) != 50 {
		t.Fatalf("%d of 50 responses counted", len(obs.got))
	}
}
