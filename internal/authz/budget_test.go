package authz

import (
	"context"
	"errors"
	"testing"
	"time"
)

// budgetCtx behaves as the context.WithTimeout it replaces: done with
// DeadlineExceeded when the budget ends it, Canceled when the Check is
// answered, the parent's error when the parent ends; the earlier
// deadline; and contexts derived from it end with it.
func TestBudgetCtx(t *testing.T) {
	tests := map[string]struct {
		end     func(c *budgetCtx, cancelParent context.CancelFunc)
		wantErr error
	}{
		"budget ran out":  {func(c *budgetCtx, _ context.CancelFunc) { c.end(true) }, context.DeadlineExceeded},
		"check answered":  {func(c *budgetCtx, _ context.CancelFunc) { c.end(false) }, context.Canceled},
		"parent canceled": {func(c *budgetCtx, cancel context.CancelFunc) { cancel(); c.endParent() }, context.Canceled},
		"first end wins": {func(c *budgetCtx, _ context.CancelFunc) {
			c.end(true)
			c.end(false)
		}, context.DeadlineExceeded},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			parent, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			c := newBudgetCtx(parent, 50*time.Millisecond)
			if d, ok := c.Deadline(); !ok || time.Until(d) > 50*time.Millisecond {
				t.Fatalf("deadline %v %v: want the budget's", d, ok)
			}
			if c.Err() != nil {
				t.Fatalf("Err before the end: %v", c.Err())
			}
			// A stage's own timeout, derived from it, and one stopped
			// before the end.
			child, cancelChild := context.WithTimeout(c, time.Hour)
			defer cancelChild()
			stopped, cancelStopped := context.WithCancel(c)
			cancelStopped()
			c.mu.Lock()
			registered := len(c.afters)
			c.mu.Unlock()
			if registered != 1 {
				// Through AfterFunc, not a goroutine per derived context.
				t.Fatalf("%d derived contexts registered, want 1 (the stopped one unregistered)", registered)
			}
			tc.end(c, cancel)
			select {
			case <-c.Done():
			default:
				t.Fatal("not done after its end")
			}
			if !errors.Is(c.Err(), tc.wantErr) {
				t.Fatalf("Err = %v, want %v", c.Err(), tc.wantErr)
			}
			select {
			case <-child.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("a context derived from it did not end with it")
			}
			if !errors.Is(stopped.Err(), context.Canceled) {
				t.Fatalf("stopped child: %v", stopped.Err())
			}
			// Derived after the end: done at once.
			late, cancelLate := context.WithCancel(c)
			defer cancelLate()
			select {
			case <-late.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("a context derived after the end is not done")
			}
		})
	}
	// The Check's own deadline, when earlier, is the one.
	parent, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	want, _ := parent.Deadline()
	if got, _ := newBudgetCtx(parent, time.Hour).Deadline(); !got.Equal(want) {
		t.Fatalf("deadline %v, want the parent's %v", got, want)
	}
}
