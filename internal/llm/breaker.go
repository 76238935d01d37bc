package llm

import (
	"sync"
	"time"
)

// CircuitState is the breaker's state; the gauge exports its number.
type CircuitState int

const (
	CircuitClosed   CircuitState = 0
	CircuitHalfOpen CircuitState = 1
	CircuitOpen     CircuitState = 2
)

func (s CircuitState) String() string {
	switch s {
	case CircuitClosed:
		return "closed"
	case CircuitHalfOpen:
		return "half_open"
	case CircuitOpen:
		return "open"
	}
	return "unknown"
}

// result is what a call tells the breaker.
type result int

const (
	// resultSuccess: the provider answered (even if the answer was invalid).
	resultSuccess result = iota
	// resultFailure: the provider is unhealthy (timeout, 5xx, 429, no connection).
	resultFailure
	// resultNeutral: says nothing about the provider (the caller gave up).
	resultNeutral
)

// breaker opens after `threshold` consecutive failures, rejects calls for
// `cooldown`, then lets exactly one probe through (half-open): its success
// closes the circuit, its failure re-opens it for another cooldown.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	onChange  func(from, to CircuitState)

	mu       sync.Mutex
	state    CircuitState
	failures int
	openedAt time.Time
	probing  bool
}

func newBreaker(threshold int, cooldown time.Duration, now func() time.Time, onChange func(from, to CircuitState)) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: now, onChange: onChange}
}

// allow reports whether a call may proceed and whether it is the probe.
func (b *breaker) allow() (probe, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case CircuitClosed:
		return false, true
	case CircuitOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false, false
		}
		b.set(CircuitHalfOpen)
		b.probing = true
		return true, true
	default: // half-open
		if b.probing {
			return false, false
		}
		b.probing = true
		return true, true
	}
}

// record reports a finished call. probe must be what allow returned.
func (b *breaker) record(probe bool, r result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch r {
	case resultSuccess:
		b.failures = 0
		// Only the probe closes the circuit: a slow call that started before
		// it opened says little about the provider now.
		if probe && b.state == CircuitHalfOpen {
			b.set(CircuitClosed)
		}
	case resultFailure:
		b.failures++
		switch {
		case probe && b.state == CircuitHalfOpen:
			b.open()
		case b.state == CircuitClosed && b.failures >= b.threshold:
			b.open()
		}
	}
}

func (b *breaker) open() {
	b.openedAt = b.now()
	b.set(CircuitOpen)
}

func (b *breaker) set(s CircuitState) {
	if b.state == s {
		return
	}
	from := b.state
	b.state = s
	if b.onChange != nil {
		b.onChange(from, s)
	}
}

// State returns the current state (open stays open until a call asks after
// the cooldown).
func (b *breaker) State() CircuitState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
