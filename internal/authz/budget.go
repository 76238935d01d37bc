package authz

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// budgetCtx is the context a pipeline run gets: the Check's context,
// with the decision budget's deadline, done when decideWithin ends it —
// the budget ran out, the Check's own context ended, or the Check was
// answered (the stragglers of a run the budget cut short see it done).
//
// Why not context.WithTimeout: per Check it allocated a timer context, a
// runtime timer and a Done channel, registered a child in the gRPC
// stream's context (a map and its lock) and started and stopped the timer;
// decideWithin was 6.7% of authz's CPU under checkload -c 32 (memory
// store, 2026-12-01), mostly that. Here the one timer is decideWithin's
// own, kept with the runner's pooled call, and budgetCtx is one object
// and its channel.
//
// Contexts derived from it (a stage's own timeout) are canceled through
// AfterFunc, as the context package does for any parent that has one.
type budgetCtx struct {
	context.Context // the Check's
	deadline        time.Time
	done            chan struct{}
	// state is 0 while the run may go on, then one of the end* values.
	state atomic.Uint32

	mu     sync.Mutex
	afters []afterFunc
	nextID uint64
}

const (
	endCanceled = iota + 1
	endDeadline
)

type afterFunc struct {
	id uint64
	f  func()
}

func newBudgetCtx(parent context.Context, budget time.Duration) *budgetCtx {
	return &budgetCtx{Context: parent, deadline: time.Now().Add(budget), done: make(chan struct{})}
}

// Deadline is the budget's, or the Check's own when that comes first.
func (c *budgetCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *budgetCtx) Done() <-chan struct{} { return c.done }

func (c *budgetCtx) Err() error {
	switch c.state.Load() {
	case endCanceled:
		return context.Canceled
	case endDeadline:
		return context.DeadlineExceeded
	}
	return nil
}

// end makes c done, with DeadlineExceeded when deadline, else Canceled;
// only the first call counts.
func (c *budgetCtx) end(deadline bool) {
	c.mu.Lock()
	if c.state.Load() != 0 {
		c.mu.Unlock()
		return
	}
	if deadline {
		c.state.Store(endDeadline)
	} else {
		c.state.Store(endCanceled)
	}
	close(c.done)
	fs := c.afters
	c.afters = nil
	c.mu.Unlock()
	for _, a := range fs {
		go a.f()
	}
}

// endParent ends c as the Check's own context ended.
func (c *budgetCtx) endParent() {
	c.end(errors.Is(c.Context.Err(), context.DeadlineExceeded))
}

// AfterFunc runs f in its own goroutine once c is done, as
// context.AfterFunc does; stop unregisters it, reporting whether that
// kept f from running.
func (c *budgetCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.state.Load() != 0 {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	c.nextID++
	id := c.nextID
	c.afters = append(c.afters, afterFunc{id: id, f: f})
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.IndexFunc(c.afters, func(a afterFunc) bool { return a.id == id })
		if i < 0 {
			return false
		}
		c.afters = slices.Delete(c.afters, i, i+1)
		return true
	}
}
