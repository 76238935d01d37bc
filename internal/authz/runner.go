package authz

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// runner runs pipeline calls on goroutines that live on between Checks.
//
// Why not `go f()` per Check: a new goroutine starts on a small stack, and
// the payload stage (libinjection's tokenizer, the detectors) is deep
// enough that every Check grew it — runtime.newstack/copystack were 12% of
// authz's CPU under load (profile of `checkload -c 32` against the memory
// store, 2026-12-01). A goroutine that stays keeps its grown stack.
//
// A call never waits for a worker: when none is idle it gets a goroutine of
// its own, which then stays as a worker while fewer than max are kept. So
// a slow stage can hold at most the goroutines that are running it, as
// before, and a burst is never queued behind one.
type runner struct {
	jobs    chan *call
	workers atomic.Int32
	max     int32
	calls   sync.Pool // *call
}

func newRunner(max int) *runner {
	// Unbuffered: a send succeeds only when a worker is waiting for it.
	r := &runner{jobs: make(chan *call), max: int32(max)}
	r.calls.New = func() any { return &call{done: make(chan struct{}, 1), pool: &r.calls} }
	return r
}

// call is one pipeline run handed to a worker and its answer. A call is
// shared by the Check that waits for it and the goroutine that runs it;
// the one of the two that finishes last puts it back in the pool (a Check
// answered on budget leaves the run to finish on its own). The run's
// arguments live in the call, so handing one over allocates nothing.
type call struct {
	p   *Pipeline
	r   *scoring.Request
	ctx *budgetCtx
	pr  progress

	done chan struct{}
	d    Decision
	err  error
	refs atomic.Int32
	pool *sync.Pool // its runner's, where it goes back
	// timer is the waiting Check's budget timer, kept with the call
	// (stopped whenever the call is in the pool).
	timer *time.Timer
}

// call returns a pooled call that will run p on r under ctx.
func (r *runner) call(p *Pipeline, req *scoring.Request, ctx *budgetCtx) *call {
	c := r.calls.Get().(*call)
	c.p, c.r, c.ctx = p, req, ctx
	c.refs.Store(2)
	return c
}

// release drops one side's hold on c.
func (c *call) release() {
	if c.refs.Add(-1) == 0 {
		select {
		case <-c.done: // the answer nobody waited for (budget)
		default:
		}
		c.p, c.r, c.ctx, c.d, c.err = nil, nil, nil, Decision{}, nil
		c.pr.next.Store(nil)
		c.pr.denied.Store(nil)
		c.pool.Put(c)
	}
}

// startTimer starts the call's budget timer.
func (c *call) startTimer(d time.Duration) <-chan time.Time {
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	return c.timer.C
}

// run is the pipeline run; a stage bug must not take the process down
// with it.
func (c *call) run() (d Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			d, err = c.p.failDecision(c.r, ReasonInternalFailure), &StageError{Module: "pipeline", Err: panicError{v}}
		}
	}()
	return c.p.run(c.ctx, c.r, &c.pr)
}

// start runs c on an idle worker or a new goroutine.
func (r *runner) start(c *call) {
	select {
	case r.jobs <- c:
	default:
		go r.work(c)
	}
}

func (r *runner) work(c *call) {
	for {
		c.d, c.err = c.run()
		c.done <- struct{}{}
		c.release()
		if r.workers.Add(1) > r.max {
			r.workers.Add(-1)
			return
		}
		c = <-r.jobs
		r.workers.Add(-1)
	}
}
