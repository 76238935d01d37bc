package scoring

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
	got     []UpstreamResponse
	release chan struct{}
}

func (s *slowObserver) ObserveResponses(_ context.Context, rs []UpstreamResponse) error {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, rs...)
	return nil
}

func TestFeedbackNeverBlocks(t *testing.T) {
	obs := &slowObserver{release: make(chan struct{})}
	f := NewFeedback(obs, time.Second, 4, 1, slog.New(slog.DiscardHandler), nil)
	done := make(chan struct{})
	rs := make([]UpstreamResponse, 10)
	go func() {
		for i := range 100 { // batches of 10, like one ALS message each
			rs[i%10] = UpstreamResponse{ClientIP: "192.0.2.1", Status: 500 + i%2, OwnDenial: i%3 == 0, At: time.Now()}
			if i%10 == 9 {
				f.Offer(rs)
				rs = make([]UpstreamResponse, 10)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ObserveResponses blocked on a stalled store")
	}
	close(obs.release)
	f.Close()
	dropped := testutil.ToFloat64(f.dropped)
	// The worker holds one batch and the queue four; the other five drop.
	if got := len(obs.got); got+int(dropped) != 100 || got < 40 || got > 50 {
		t.Fatalf("observed %d + dropped %v, want 40-50 observed and the rest dropped", got, dropped)
	}
	if o := obs.got[0]; o.ClientIP != "192.0.2.1" || o.Status != 500 || !o.OwnDenial {
		t.Fatalf("first observation %+v", o)
	}
	// After Close a straggling stream is ignored, not a panic.
	f.Offer(rs)
	f.Close()
}
