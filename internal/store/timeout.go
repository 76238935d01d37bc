package store

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// adaptiveSamples is how many recent round trips the timeout follows; at
// the benchmark's ~500 pipelines/s it is the last half second.
const adaptiveSamples = 256

// adaptiveEvery: the quantile is recomputed after this many samples (a
// sort of adaptiveSamples durations, ~3 µs), not on every one.
const adaptiveEvery = 16

// AdaptiveTimeout is the request-path timeout that follows what Redis
// currently answers in: factor × the p99 of the last adaptiveSamples round
// trips, clamped to [floor, ceiling]. Only round trips Redis answered are
// observed: a Redis that stops answering teaches it nothing, so callers keep
// failing at the timeout learnt while it answered (fast, for a healthy
// Redis) instead of waiting for the ceiling. With ceiling ≤ floor it is the
// fixed floor.
type AdaptiveTimeout struct {
	floor, ceiling time.Duration
	factor         float64

	mu      sync.Mutex
	ring    [adaptiveSamples]time.Duration
	n       int // samples observed in all
	scratch [adaptiveSamples]time.Duration

	cur atomic.Int64
}

// NewAdaptiveTimeout starts at floor.
func NewAdaptiveTimeout(floor, ceiling time.Duration, factor float64) *AdaptiveTimeout {
	a := &AdaptiveTimeout{floor: floor, ceiling: max(ceiling, floor), factor: max(factor, 1)}
	a.cur.Store(int64(floor))
	return a
}

// Current is the timeout for a call starting now.
func (a *AdaptiveTimeout) Current() time.Duration { return time.Duration(a.cur.Load()) }

// Ceiling is the longest timeout it gives.
func (a *AdaptiveTimeout) Ceiling() time.Duration { return a.ceiling }

// Adaptive reports whether the timeout can move at all.
func (a *AdaptiveTimeout) Adaptive() bool { return a.ceiling > a.floor }

// Observe records the time a caller waited for an answer Redis gave.
func (a *AdaptiveTimeout) Observe(d time.Duration) {
	if !a.Adaptive() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ring[a.n%adaptiveSamples] = d
	a.n++
	if a.n > adaptiveEvery && a.n%adaptiveEvery != 0 {
		return
	}
	k := min(a.n, adaptiveSamples)
	s := a.scratch[:k]
	copy(s, a.ring[:k])
	slices.Sort(s)
	p99 := s[int(math.Ceil(0.99*float64(k)))-1]
	t := time.Duration(float64(p99) * a.factor)
	a.cur.Store(int64(min(max(t, a.floor), a.ceiling)))
}
