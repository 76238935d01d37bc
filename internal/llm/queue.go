package llm

import (
	"context"
	"sync"
)

type job struct {
	key string
	run func(ctx context.Context)
}

// queue runs questions in the background on a fixed set of workers. It
// never blocks the submitter: a full queue, or a key that already has a
// question pending (queued or running), drops and counts.
type queue struct {
	m *metrics

	ctx    context.Context // ends when Close's deadline passes
	cancel context.CancelFunc
	jobs   chan job
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]struct{}
	closed  bool
}

func newQueue(size, workers int, m *metrics) *queue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &queue{m: m, ctx: ctx, cancel: cancel, jobs: make(chan job, size), pending: make(map[string]struct{})}
	q.wg.Add(workers)
	for range workers {
		go q.work()
	}
	return q
}

// submit enqueues run under key. It returns false, and run will never be
// called, when the queue is closed or full or key is already pending.
func (q *queue) submit(key string, run func(ctx context.Context)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.m.drops.WithLabelValues(string(DropClosed)).Inc()
		return false
	}
	if _, dup := q.pending[key]; dup {
		q.m.drops.WithLabelValues(string(DropDuplicate)).Inc()
		return false
	}
	select {
	case q.jobs <- job{key: key, run: run}:
		q.pending[key] = struct{}{}
		q.m.depth.Set(float64(len(q.jobs)))
		return true
	default:
		q.m.drops.WithLabelValues(string(DropFull)).Inc()
		return false
	}
}

func (q *queue) work() {
	defer q.wg.Done()
	for j := range q.jobs {
		q.m.depth.Set(float64(len(q.jobs)))
		j.run(q.ctx)
		q.mu.Lock()
		delete(q.pending, j.key)
		q.mu.Unlock()
	}
}

// close stops intake and waits for the workers to finish what is queued.
// When ctx ends first it cancels the questions (they finish at once with
// ErrCanceled, callbacks still run) and waits for the workers to exit.
func (q *queue) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.jobs)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		q.cancel()
		<-done
	}
	q.cancel()
	return err
}
