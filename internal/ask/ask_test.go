package ask

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// Every worker, and every goroutine Close starts, must be gone after Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// oracle answers "answer:" + q, or err; with hold set it signals started
// and waits for release or ctx.
type oracle struct {
	calls   atomic.Int32
	err     error
	hold    bool
	started chan string
	release chan struct{}
}

func newOracle() *oracle {
	return &oracle{started: make(chan string, 64), release: make(chan struct{})}
}

func (o *oracle) ask(ctx context.Context, key string, q string) (string, error) {
	o.calls.Add(1)
	o.started <- key
	if o.hold {
		select {
		case <-o.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if o.err != nil {
		return "", o.err
	}
	return "answer:" + q, nil
}

func cfg(mut ...func(*Config)) Config {
	c := Config{QueueSize: 4, Workers: 1, CacheSize: 8, CacheTTL: time.Minute}
	for _, m := range mut {
		m(&c)
	}
	return c
}

func newAsker(t *testing.T, c Config, o *oracle, answered Answered[string, string, string]) *Asker[string, string, string] {
	t.Helper()
	a, err := New(c, o.ask, answered)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = a.Close(ctx)
	})
	return a
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mut  func(*Config)
		want string // "" when valid
	}{
		"defaults":       {mut: func(*Config) {}},
		"no queue":       {mut: func(c *Config) { c.QueueSize = 0 }, want: "QueueSize"},
		"no workers":     {mut: func(c *Config) { c.Workers = 0 }, want: "Workers"},
		"no cache":       {mut: func(c *Config) { c.CacheSize = 0 }, want: "CacheSize"},
		"no ttl":         {mut: func(c *Config) { c.CacheTTL = 0 }, want: "CacheTTL"},
		"negative queue": {mut: func(c *Config) { c.QueueSize = -1 }, want: "QueueSize"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(cfg(tc.mut), newOracle().ask, nil)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New[string, string, string](cfg(), nil, nil); err == nil {
		t.Error("nil Func accepted")
	}
}

func TestSubmit(t *testing.T) {
	type step struct {
		key  string
		want Outcome
	}
	tests := map[string]struct {
		queue int
		steps []step
		stats Stats
	}{
		"one per key": {queue: 4,
			steps: []step{{"a", Queued}, {"a", Pending}, {"b", Queued}, {"a", Pending}, {"b", Pending}},
			stats: Stats{Queued: 2, Pending: 3}},
		"full queue drops and counts": {queue: 2,
			steps: []step{{"a", Queued}, {"b", Queued}, {"c", Dropped}, {"d", Dropped}, {"a", Pending}},
			stats: Stats{Queued: 2, Dropped: 2, Pending: 1}},
		"a dropped key is not pending": {queue: 1,
			steps: []step{{"a", Queued}, {"b", Dropped}, {"b", Dropped}},
			stats: Stats{Queued: 1, Dropped: 2}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOracle()
			// Not started: nothing leaves the queue.
			a := newAsker(t, cfg(func(c *Config) { c.QueueSize = tc.queue }), o, nil)
			for i, s := range tc.steps {
				if got := a.Submit(s.key, s.key); got != s.want {
					t.Fatalf("step %d: Submit(%s) = %v, want %v", i, s.key, got, s.want)
				}
			}
			if got := a.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
			if o.calls.Load() != 0 {
				t.Errorf("asked %d times without workers", o.calls.Load())
			}
		})
	}
}

func TestAnswersAreCachedFailuresAreNot(t *testing.T) {
	tests := map[string]struct {
		err        error
		wantCached bool
	}{
		"answer": {wantCached: true},
		"error":  {err: errors.New("503")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOracle()
			o.err = tc.err
			var told []string
			var mu sync.Mutex
			var a *Asker[string, string, string]
			a = newAsker(t, cfg(), o, func(_ context.Context, key, q, v string) {
				// Called after the answer is cached.
				if got, ok := a.Get(key); !ok || got != v {
					t.Errorf("Answered before caching: %q %v", got, ok)
				}
				mu.Lock()
				told = append(told, key+"="+v)
				mu.Unlock()
			})
			a.Start()
			if got := a.Submit("k", "q"); got != Queued {
				t.Fatalf("Submit = %v", got)
			}
			a.Wait()
			v, ok := a.Get("k")
			if ok != tc.wantCached || tc.wantCached && v != "answer:q" {
				t.Fatalf("Get = %q %v, want cached %v", v, ok, tc.wantCached)
			}
			mu.Lock()
			if tc.wantCached != (len(told) == 1) {
				t.Errorf("Answered calls %v", told)
			}
			mu.Unlock()
			// The key is free again either way.
			if got := a.Submit("k", "q"); got != Queued {
				t.Errorf("Submit after the answer = %v", got)
			}
			a.Wait()
		})
	}
}

func TestCache(t *testing.T) {
	clk := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := map[string]struct {
		size  int
		run   func(a *Asker[string, string, string])
		hits  []string
		miss  []string
		evict uint64
	}{
		"ttl": {size: 8, run: func(a *Asker[string, string, string]) {
			a.Put("old", "v")
			clk.Add(30 * time.Second)
			a.Put("new", "v")
			clk.Add(30 * time.Second) // old is exactly TTL old: expired
		}, hits: []string{"new"}, miss: []string{"old"}},
		"ttl renewed by a new answer": {size: 8, run: func(a *Asker[string, string, string]) {
			a.Put("k", "v1")
			clk.Add(50 * time.Second)
			a.Put("k", "v2")
			clk.Add(50 * time.Second)
		}, hits: []string{"k"}},
		"lru bound": {size: 2, run: func(a *Asker[string, string, string]) {
			a.Put("a", "v")
			a.Put("b", "v")
			a.Get("a") // a is now more recent than b
			a.Put("c", "v")
		}, hits: []string{"a", "c"}, miss: []string{"b"}, evict: 1},
		"forget": {size: 8, run: func(a *Asker[string, string, string]) {
			a.Put("a", "v")
			a.Put("b", "v")
			a.Forget("a")
			a.Forget("nothing")
		}, hits: []string{"b"}, miss: []string{"a"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := newAsker(t, cfg(func(c *Config) { c.CacheSize, c.Now = tc.size, clk.Now }), newOracle(), nil)
			tc.run(a)
			for _, k := range tc.hits {
				if _, ok := a.Get(k); !ok {
					t.Errorf("%s not cached", k)
				}
			}
			for _, k := range tc.miss {
				if _, ok := a.Get(k); ok {
					t.Errorf("%s still cached", k)
				}
			}
			if a.Len() > tc.size {
				t.Errorf("%d cached, bound %d", a.Len(), tc.size)
			}
			if got := a.Stats().Evicted; got != tc.evict {
				t.Errorf("evicted %d, want %d", got, tc.evict)
			}
		})
	}
}

func TestAsk(t *testing.T) {
	t.Run("caches", func(t *testing.T) {
		o := newOracle()
		a := newAsker(t, cfg(), o, nil)
		v, err := a.Ask(context.Background(), "k", "q")
		if err != nil || v != "answer:q" {
			t.Fatalf("Ask = %q, %v", v, err)
		}
		if got, ok := a.Get("k"); !ok || got != v {
			t.Fatalf("not cached: %q %v", got, ok)
		}
	})
	t.Run("error not cached", func(t *testing.T) {
		o := newOracle()
		o.err = errors.New("bad answer")
		a := newAsker(t, cfg(), o, nil)
		if _, err := a.Ask(context.Background(), "k", "q"); !errors.Is(err, o.err) {
			t.Fatalf("Ask err %v", err)
		}
		if _, ok := a.Get("k"); ok {
			t.Fatal("failure cached")
		}
	})
	t.Run("shares the workers' slots", func(t *testing.T) {
		o := newOracle()
		o.hold = true
		a := newAsker(t, cfg(), o, nil) // one worker
		a.Start()
		a.Submit("bg", "q")
		<-o.started // the worker holds the only slot
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := a.Ask(ctx, "k", "q"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ask with no free slot: %v", err)
		}
		if got := o.calls.Load(); got != 1 {
			t.Fatalf("asked %d times, want 1", got)
		}
		close(o.release)
		a.Wait()
	})
	t.Run("after close", func(t *testing.T) {
		a := newAsker(t, cfg(), newOracle(), nil)
		_ = a.Close(context.Background())
		if _, err := a.Ask(context.Background(), "k", "q"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Ask after Close: %v", err)
		}
	})
}

func TestClose(t *testing.T) {
	tests := map[string]struct {
		start      bool
		hold       bool
		grace      time.Duration // 0: an ended context
		release    bool          // answer the held question during the grace period
		wantErr    bool
		wantAsked  int32
		wantCached []string
		abandoned  uint64
	}{
		"drains the queue": {start: true, grace: 5 * time.Second,
			wantAsked: 3, wantCached: []string{"a", "b", "c"}},
		"drains what answers in time": {start: true, hold: true, grace: 5 * time.Second, release: true,
			wantAsked: 3, wantCached: []string{"a", "b", "c"}},
		"cancels after the grace period": {start: true, hold: true, grace: 30 * time.Millisecond,
			wantErr: true, wantAsked: 1, abandoned: 2},
		"ended context cancels at once": {start: true, hold: true,
			wantErr: true, wantAsked: 1, abandoned: 2},
		"never started": {grace: time.Second, abandoned: 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOracle()
			o.hold = tc.hold
			a := newAsker(t, cfg(), o, nil)
			if tc.start {
				a.Start()
			}
			for _, k := range []string{"a", "b", "c"} {
				if got := a.Submit(k, k); got != Queued {
					t.Fatalf("Submit(%s) = %v", k, got)
				}
			}
			if tc.start {
				<-o.started
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.grace)
			defer cancel()
			if tc.release {
				go func() { time.Sleep(10 * time.Millisecond); close(o.release) }()
			}
			err := a.Close(ctx)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Close = %v, want error %v", err, tc.wantErr)
			}
			if got := o.calls.Load(); got != tc.wantAsked {
				t.Errorf("asked %d, want %d", got, tc.wantAsked)
			}
			for _, k := range tc.wantCached {
				if _, ok := a.Get(k); !ok {
					t.Errorf("%s not cached", k)
				}
			}
			if got := a.Stats().Abandoned; got != tc.abandoned {
				t.Errorf("abandoned %d, want %d", got, tc.abandoned)
			}
			a.Wait() // nothing left busy
			if got := a.Submit("late", "q"); got != Closed {
				t.Errorf("Submit after Close = %v", got)
			}
			if err := a.Close(ctx); err != nil && !tc.wantErr {
				t.Errorf("second Close = %v", err)
			}
			a.Start() // after Close: no workers
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	o := newOracle()
	o.started = make(chan string, 10000)
	a := newAsker(t, cfg(func(c *Config) { c.Workers, c.QueueSize, c.CacheSize = 4, 16, 32 }), o, nil)
	a.Start()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := string(rune('a' + (g*7+i)%40))
				if _, ok := a.Get(k); !ok {
					a.Submit(k, k)
				}
				if i%50 == 0 {
					_, _ = a.Ask(context.Background(), k, k)
				}
			}
		})
	}
	wg.Wait()
	a.Wait()
	if a.Len() > 32 {
		t.Fatalf("%d cached, bound 32", a.Len())
	}
	if a.Depth() != 0 {
		t.Fatalf("depth %d after Wait", a.Depth())
	}
}
