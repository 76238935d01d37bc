package scoring

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Verdicts judges a grey-zone client. internal/llm satisfies it through an
// adapter in cmd/authz.
type Verdicts interface {
	ClientVerdict(ctx context.Context, s ClientSummary) (ClientVerdict, error)
}

// ClientSummary is what the LLM is told about a grey-zone client: the
// numbers behind its score, never raw payloads.
type ClientSummary struct {
	ClientKey string
	UserAgent string
	Method    string
	// Path is the cleaned path of the request that reached the grey zone.
	Path              string
	Score             int
	Signals           []string
	Requests          int64
	RecentRequests    int
	RateWindow        time.Duration
	Responses         int
	Errors            int
	ErrorWindow       time.Duration
	DistinctEndpoints int
	SequentialRun     int
	IdleBurst         int
}

// VerdictAction is the LLM's decision.
type VerdictAction string

const (
	VerdictAllow VerdictAction = "ALLOW"
	VerdictBlock VerdictAction = "BLOCK"
)

// ClientVerdict is the LLM's answer.
type ClientVerdict struct {
	Action     VerdictAction
	Confidence float64
	Reason     string
}

// errInvalidVerdict marks an answer that is neither ALLOW nor BLOCK with a
// confidence in [0,1].
var errInvalidVerdict = errors.New("invalid verdict")

func (v ClientVerdict) validate() error {
	if v.Action != VerdictAllow && v.Action != VerdictBlock {
		return fmt.Errorf("%w: action %q", errInvalidVerdict, v.Action)
	}
	if math.IsNaN(v.Confidence) || v.Confidence < 0 || v.Confidence > 1 {
		return fmt.Errorf("%w: confidence %v", errInvalidVerdict, v.Confidence)
	}
	return nil
}

type question struct {
	key     string
	summary ClientSummary
	score   int
}

type cachedVerdict struct {
	v       ClientVerdict
	expires time.Time
}

// asker keeps the grey-zone questions: at most one pending per client, a
// bounded queue, and a bounded verdict cache.
type asker struct {
	mu      sync.Mutex
	pending map[string]struct{}
	cache   map[string]cachedVerdict
	queue   chan question
	stop    chan struct{}
	wg      sync.WaitGroup
	// inflight counts questions queued or being asked (for Drain).
	inflight sync.WaitGroup
	closed   bool
}

func newAsker(queueSize int) *asker {
	return &asker{
		pending: make(map[string]struct{}),
		cache:   make(map[string]cachedVerdict),
		queue:   make(chan question, queueSize),
		stop:    make(chan struct{}),
	}
}

// cached returns the client's unexpired verdict.
func (a *asker) cached(key string, now time.Time) (ClientVerdict, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.cache[key]
	if !ok {
		return ClientVerdict{}, false
	}
	if !now.Before(c.expires) {
		delete(a.cache, key)
		return ClientVerdict{}, false
	}
	return c.v, true
}

// enqueue queues q unless the client already has a pending question. It
// returns false when the queue is full (the question is dropped).
func (a *asker) enqueue(q question) (queued, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false, false
	}
	if _, ok := a.pending[q.key]; ok {
		return false, false
	}
	a.inflight.Add(1)
	select {
	case a.queue <- q:
		a.pending[q.key] = struct{}{}
		return true, false
	default:
		a.inflight.Done()
		return false, true
	}
}

func (a *asker) done(key string, v *ClientVerdict, now time.Time, ttl time.Duration, size int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pending, key)
	if v == nil {
		return
	}
	if len(a.cache) >= size {
		for k, c := range a.cache {
			if !now.Before(c.expires) {
				delete(a.cache, k)
			}
		}
		// Still full: drop an arbitrary entry; the cost is one more question.
		for k := range a.cache {
			if len(a.cache) < size {
				break
			}
			delete(a.cache, k)
		}
	}
	a.cache[key] = cachedVerdict{v: *v, expires: now.Add(ttl)}
}

// forget drops the client's cached verdict (after an operator's unban).
func (a *asker) forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.cache, key)
}
