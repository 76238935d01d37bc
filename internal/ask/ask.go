// Package ask puts questions to a slow, fallible oracle (an LLM) off the
// request path. An Asker has a bounded queue holding at most one question per
// key, a fixed number of workers, and a bounded cache of answers, each used
// for a TTL and evicted least recently used first. The request path reads
// the cache and submits on a miss; nothing here blocks a submitter. Ask is
// the synchronous variant for callers that wait, within their own deadline;
// it shares the workers' concurrency bound.
//
// It knows nothing of what is asked: behaviour scoring keys its questions by
// client, payload validation by payload hash. An answer is cached only when
// the question's function returns no error, so a failure is asked again.
package ask

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Config bounds an Asker. Every field must be positive.
type Config struct {
	// QueueSize bounds the questions waiting for a worker; a full queue
	// drops new ones.
	QueueSize int
	// Workers is how many questions are asked at once, background and Ask
	// together.
	Workers int
	// CacheSize bounds the cached answers.
	CacheSize int
	// CacheTTL is how long an answer is used.
	CacheTTL time.Duration
	// Now is the cache's clock; nil means time.Now.
	Now func() time.Time
}

func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"QueueSize", c.QueueSize}, {"Workers", c.Workers}, {"CacheSize", c.CacheSize}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("ask: %s must be ≥ 1, got %d", f.name, f.v))
		}
	}
	if c.CacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("ask: CacheTTL must be > 0, got %s", c.CacheTTL))
	}
	return errors.Join(errs...)
}

// Func answers one question. It must honour ctx: Close cancels it. An error
// means "no answer": nothing is cached and the key may be asked again.
type Func[K comparable, Q, V any] func(ctx context.Context, key K, q Q) (V, error)

// Answered is told about each background answer after it is cached.
type Answered[K comparable, Q, V any] func(ctx context.Context, key K, q Q, v V)

// Outcome says what Submit did with a question.
type Outcome int

const (
	// Queued: a worker will ask.
	Queued Outcome = iota
	// Pending: a question under the same key is queued or being asked;
	// this one is not asked.
	Pending
	// Dropped: the queue is full; the question is not asked.
	Dropped
	// Closed: Close has been called; the question is not asked.
	Closed
)

func (o Outcome) String() string {
	switch o {
	case Queued:
		return "queued"
	case Pending:
		return "pending"
	case Dropped:
		return "dropped"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ErrClosed is Ask's error after Close.
var ErrClosed = errors.New("ask: closed")

// Stats counts what an Asker did since New.
type Stats struct {
	Queued, Pending, Dropped, Closed uint64 // Submit outcomes
	// Abandoned: queued questions never asked because Close canceled them.
	Abandoned uint64
	// Hits and Misses of Get; Evicted: answers dropped to make room.
	Hits, Misses, Evicted uint64
}

type job[K comparable, Q any] struct {
	key K
	q   Q
}

type entry[K comparable, V any] struct {
	key     K
	v       V
	expires time.Time
}

// Asker is safe for concurrent use. Build it with New, Start its workers,
// Close it when done.
type Asker[K comparable, Q, V any] struct {
	cfg      Config
	ask      Func[K, Q, V]
	answered Answered[K, Q, V]

	ctx    context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc
	jobs   chan job[K, Q]
	slots  chan struct{} // one per question being asked
	wg     sync.WaitGroup

	mu      sync.Mutex
	idle    sync.Cond // broadcast when busy drops to 0
	busy    int       // questions queued or being handled (answered included)
	pending map[K]struct{}
	started bool
	closed  bool
	cache   map[K]*list.Element
	lru     list.List // of *entry, most recently used first
	stats   Stats
}

// New builds an Asker; answered may be nil. No worker runs before Start.
func New[K comparable, Q, V any](cfg Config, ask Func[K, Q, V], answered Answered[K, Q, V]) (*Asker[K, Q, V], error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if ask == nil {
		return nil, errors.New("ask: nil Func")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Asker[K, Q, V]{
		cfg: cfg, ask: ask, answered: answered,
		jobs:    make(chan job[K, Q], cfg.QueueSize),
		slots:   make(chan struct{}, cfg.Workers),
		pending: make(map[K]struct{}),
		cache:   make(map[K]*list.Element),
	}
	a.idle.L = &a.mu
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a, nil
}

// Start runs the workers until Close. Calls after the first, or after
// Close, do nothing.
func (a *Asker[K, Q, V]) Start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.closed {
		return
	}
	a.started = true
	a.wg.Add(a.cfg.Workers)
	for range a.cfg.Workers {
		go a.work()
	}
}

// Submit queues q under key without blocking and says what it did.
func (a *Asker[K, Q, V]) Submit(key K, q Q) Outcome {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		a.stats.Closed++
		return Closed
	}
	if _, dup := a.pending[key]; dup {
		a.stats.Pending++
		return Pending
	}
	select {
	case a.jobs <- job[K, Q]{key: key, q: q}:
		a.pending[key] = struct{}{}
		a.busy++
		a.stats.Queued++
		return Queued
	default:
		a.stats.Dropped++
		return Dropped
	}
}

// Ask asks now, waiting for a free worker slot at most until ctx ends, and
// caches the answer. It neither reads the cache nor dedupes: call Get first.
func (a *Asker[K, Q, V]) Ask(ctx context.Context, key K, q Q) (V, error) {
	var zero V
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return zero, ErrClosed
	}
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return zero, fmt.Errorf("ask: waiting for a free slot: %w", ctx.Err())
	}
	defer func() { <-a.slots }()
	v, err := a.ask(ctx, key, q)
	if err != nil {
		return zero, err
	}
	a.mu.Lock()
	a.put(key, v)
	a.mu.Unlock()
	return v, nil
}

func (a *Asker[K, Q, V]) work() {
	defer a.wg.Done()
	for j := range a.jobs {
		select {
		case <-a.ctx.Done():
			a.abandon(j.key)
			continue
		case a.slots <- struct{}{}:
		}
		if a.ctx.Err() != nil { // both ready: prefer giving up
			<-a.slots
			a.abandon(j.key)
			continue
		}
		v, err := a.ask(a.ctx, j.key, j.q)
		<-a.slots
		a.mu.Lock()
		if err == nil {
			a.put(j.key, v)
		}
		delete(a.pending, j.key)
		a.mu.Unlock()
		if err == nil && a.answered != nil {
			a.answered(a.ctx, j.key, j.q, v)
		}
		a.done()
	}
}

func (a *Asker[K, Q, V]) abandon(key K) {
	a.mu.Lock()
	delete(a.pending, key)
	a.stats.Abandoned++
	a.mu.Unlock()
	a.done()
}

func (a *Asker[K, Q, V]) done() {
	a.mu.Lock()
	a.busy--
	if a.busy == 0 {
		a.idle.Broadcast()
	}
	a.mu.Unlock()
}

// Wait returns once no question is queued or being handled (its Answered
// call included). Questions submitted meanwhile are waited for too.
func (a *Asker[K, Q, V]) Wait() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.busy > 0 {
		a.idle.Wait()
	}
}

// Close stops intake, lets the workers ask what is queued until ctx ends,
// then cancels the questions being asked, abandons the rest and waits for
// the workers. It returns ctx.Err() when it had to cancel. An already-ended
// ctx cancels at once.
func (a *Asker[K, Q, V]) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.jobs)
	}
	a.mu.Unlock()
	var err error
	if ctx.Err() != nil {
		err = ctx.Err()
		a.cancel()
	}
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
		a.cancel()
		<-done
	}
	a.cancel()
	// Without workers (never started) the questions are still queued.
	for j := range a.jobs {
		a.abandon(j.key)
	}
	return err
}

// Get returns key's answer while its TTL lasts.
func (a *Asker[K, Q, V]) Get(key K) (V, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.cache[key]
	if ok {
		e := el.Value.(*entry[K, V])
		if a.cfg.Now().Before(e.expires) {
			a.lru.MoveToFront(el)
			a.stats.Hits++
			return e.v, true
		}
		a.lru.Remove(el)
		delete(a.cache, key)
	}
	a.stats.Misses++
	var zero V
	return zero, false
}

// Put caches v as key's answer for the TTL.
func (a *Asker[K, Q, V]) Put(key K, v V) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.put(key, v)
}

func (a *Asker[K, Q, V]) put(key K, v V) {
	exp := a.cfg.Now().Add(a.cfg.CacheTTL)
	if el, ok := a.cache[key]; ok {
		e := el.Value.(*entry[K, V])
		e.v, e.expires = v, exp
		a.lru.MoveToFront(el)
		return
	}
	a.cache[key] = a.lru.PushFront(&entry[K, V]{key: key, v: v, expires: exp})
	for a.lru.Len() > a.cfg.CacheSize {
		old := a.lru.Back()
		a.lru.Remove(old)
		delete(a.cache, old.Value.(*entry[K, V]).key)
		a.stats.Evicted++
	}
}

// Forget drops key's cached answer.
func (a *Asker[K, Q, V]) Forget(key K) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if el, ok := a.cache[key]; ok {
		a.lru.Remove(el)
		delete(a.cache, key)
	}
}

// Len is the number of cached answers (expired ones not yet dropped
// included).
func (a *Asker[K, Q, V]) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len()
}

// Depth is the number of questions waiting for a worker.
func (a *Asker[K, Q, V]) Depth() int { return len(a.jobs) }

// Stats returns the counters so far.
func (a *Asker[K, Q, V]) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}
