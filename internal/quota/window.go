package quota

import "time"

// Window is one kind of limit a route can carry.
type Window uint8

// The windows, in the order they are checked and reported.
const (
	PerMinute Window = iota
	PerHour
	PerDay
	Lifetime
	numWindows
)

const numTimed = int(Lifetime) // windows with a length

var windowNames = [numWindows]string{"per_minute", "per_hour", "per_day", "lifetime"}

// windowKey is the window's part of a Redis key: short, since every counter
// key carries it.
var windowKey = [numWindows]string{"m", "h", "d", "life"}

// windowMillis is each timed window's length in milliseconds.
var windowMillis = [numTimed]int64{60_000, 3_600_000, 86_400_000}

// String returns the configuration name (per_minute, per_hour, per_day, lifetime).
func (w Window) String() string {
	if w < numWindows {
		return windowNames[w]
	}
	return "unknown"
}

// Duration returns the window length; 0 for Lifetime.
func (w Window) Duration() time.Duration {
	if w < Window(numTimed) {
		return time.Duration(windowMillis[w]) * time.Millisecond
	}
	return 0
}

// Caps keep every product in the sliding arithmetic below 2^53, where Lua's
// doubles still hold integers exactly: prev·(W−e) + (curr+1)·W ≤ 2·5e7·8.64e7
// = 8.64e15 < 2^53 ≈ 9.007e15.
const (
	maxWindowLimit   = 50_000_000
	maxLifetimeLimit = 1_000_000_000_000_000
)

// slide is one timed window's counters as seen at one instant. All values are
// milliseconds or counts; the arithmetic is integral so Go and the Lua script
// agree to the request.
type slide struct {
	w    int64 // window length
	e    int64 // elapsed time in the current bucket, 0 ≤ e < w
	prev int64 // count in the previous bucket
	curr int64 // count in the current bucket
}

// newSlide places nowMs in its window: the current bucket number and the
// elapsed milliseconds inside it.
func bucketOf(nowMs, w int64) (bucket, elapsed int64) {
	b := nowMs / w
	e := nowMs - b*w
	if e < 0 { // before 1970: keep 0 ≤ e < w
		b--
		e += w
	}
	return b, e
}

// weighted returns the estimated count over the last window, scaled by w.
func (s slide) weighted() int64 { return s.prev*(s.w-s.e) + s.curr*s.w }

// admits reports whether one more request fits in limit. The Lua script has
// the same comparison; keep them together.
func (s slide) admits(limit int64) bool { return s.weighted()+s.w <= limit*s.w }

// remaining returns how many more requests fit now.
func (s slide) remaining(limit int64) int64 {
	r := (limit*s.w - s.weighted()) / s.w
	if r < 0 {
		return 0
	}
	return r
}

// reset returns the time in ms until the window has forgotten every counted
// request (remaining back to the limit): the current bucket still weighs in
// through the whole next bucket.
func (s slide) reset() int64 {
	switch {
	case s.curr > 0:
		return 2*s.w - s.e
	case s.prev > 0:
		return s.w - s.e
	}
	return 0
}

// retryAfter returns the time in ms until one more request would be admitted,
// assuming no other request is counted meanwhile; ok is false when none ever
// will (limit 0).
func (s slide) retryAfter(limit int64) (ms int64, ok bool) {
	if limit <= 0 {
		return 0, false
	}
	if s.admits(limit) {
		return 0, true
	}
	if s.curr+1 <= limit {
		// Still in this bucket: wait for the previous bucket's weight to fall:
		// prev·(w−e') ≤ (limit−curr−1)·w. Here prev > 0, or we would admit.
		e2 := s.w - (limit-s.curr-1)*s.w/s.prev
		return e2 - s.e, true
	}
	// The current bucket alone is full: in the next bucket it is the previous
	// one, and we need curr·(w−e'') + w ≤ limit·w.
	e2 := s.w - (limit-1)*s.w/s.curr
	return s.w - s.e + e2, true
}
