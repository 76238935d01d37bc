package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type slowObserver struct {
	mu      sync.Mutex
	got     []observation
	release chan struct{}
}

func (s *slowObserver) ObserveResponse(_ context.Context, client string, status int, denied bool, at time.Time) error {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, observation{client, status, denied, at})
	return nil
}

func TestFeedbackNeverBlocks(t *testing.T) {
	obs := &slowObserver{release: make(chan struct{})}
	f := newFeedback(obs, time.Second, 4, 1, slog.New(slog.DiscardHandler), nil)
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			f.ObserveResponse(context.Background(), "192.0.2.1", 500+i%2, i%3 == 0, time.Now())
		}
		f.ObserveResponse(context.Background(), "", 500, false, time.Now()) // no client: ignored
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ObserveResponse blocked on a stalled store")
	}
	close(obs.release)
	f.Close()
	dropped := testutil.ToFloat64(f.dropped)
	if got := len(obs.got); got+int(dropped) != 100 || got < 4 || got > 5 {
		t.Fatalf("observed %d + dropped %v, want 4-5 observed and the rest dropped", got, dropped)
	}
	if o := obs.got[0]; o.client != "192.0.2.1" || o.status != 500 || !o.denied {
		t.Fatalf("first observation %+v", o)
	}
	// After Close a straggling stream is ignored, not a panic.
	f.ObserveResponse(context.Background(), "192.0.2.1", 500, false, time.Now())
	f.Close()
}
