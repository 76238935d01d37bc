package store

import (
	"testing"
	"time"
)

// The estimator on injected round trips: no clock, no timing.
func TestAdaptiveTimeout(t *testing.T) {
	const ms = time.Millisecond
	repeat := func(d time.Duration, n int) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = d
		}
		return s
	}
	cat := func(ss ...[]time.Duration) []time.Duration {
		var out []time.Duration
		for _, s := range ss {
			out = append(out, s...)
		}
		return out
	}
	tests := []struct {
		name           string
		floor, ceiling time.Duration
		factor         float64
		samples        []time.Duration
		want           time.Duration
	}{
		{"starts at the floor", 5 * ms, 20 * ms, 3, nil, 5 * ms},
		{"a fast Redis keeps the floor", 5 * ms, 20 * ms, 3, repeat(100*time.Microsecond, 300), 5 * ms},
		{"a slow host gets factor × p99", 5 * ms, 20 * ms, 3, repeat(4*ms, 300), 12 * ms},
		{"clamped to the ceiling", 5 * ms, 20 * ms, 3, repeat(30*ms, 300), 20 * ms},
		{"p99, not the maximum: 2 outliers in 256", 5 * ms, 40 * ms, 3,
			cat(repeat(2*ms, 254), repeat(100*ms, 2)), 6 * ms},
		{"p99: 3 outliers in 256 count", 5 * ms, 40 * ms, 3,
			cat(repeat(2*ms, 253), repeat(10*ms, 3)), 30 * ms},
		{"the window forgets a slow past", 5 * ms, 20 * ms, 3,
			cat(repeat(30*ms, 256), repeat(1*ms, 256)), 5 * ms},
		{"a few samples already move it", 5 * ms, 20 * ms, 2, repeat(6*ms, 3), 12 * ms},
		{"fixed: ceiling not above the floor", 5 * ms, 0, 3, repeat(30*ms, 300), 5 * ms},
		{"a factor below 1 counts as 1", 5 * ms, 20 * ms, 0.5, repeat(8*ms, 300), 8 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAdaptiveTimeout(tt.floor, tt.ceiling, tt.factor)
			for _, d := range tt.samples {
				a.Observe(d)
			}
			if got := a.Current(); got != tt.want {
				t.Errorf("Current() = %s, want %s", got, tt.want)
			}
			if a.Ceiling() < a.Current() || a.Current() < tt.floor {
				t.Errorf("Current() %s outside [%s, %s]", a.Current(), tt.floor, a.Ceiling())
			}
		})
	}
}
