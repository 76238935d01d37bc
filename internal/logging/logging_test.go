package logging

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestJSONLogsDurationsAsText(t *testing.T) {
	var b bytes.Buffer
	l := New(Config{Level: "info", Format: "json"}, &b)
	l.Info("x", "budget", 50*time.Millisecond)
	Redis{L: l}.Printf(context.Background(), "redis: %s", "reconnecting")
	out := b.String()
	if !strings.Contains(out, `"budget":"50ms"`) {
		t.Errorf("duration not as text: %s", out)
	}
	if !strings.Contains(out, `"msg":"redis: reconnecting"`) || !strings.Contains(out, `"component":"redis"`) {
		t.Errorf("go-redis line not in JSON: %s", out)
	}
}

func TestSampler(t *testing.T) {
	s := NewSampler(10 * time.Second)
	t0 := time.Unix(1000, 0)
	tests := []struct {
		key        string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"redis", 0, true, 0},
		{"redis", time.Second, false, 0},
		{"redis", 2 * time.Second, false, 0},
		{"budget", 3 * time.Second, true, 0}, // another cause is not held back
		{"redis", 11 * time.Second, true, 2},
	}
	for i, tc := range tests {
		ok, n := s.Allow(tc.key, t0.Add(tc.at))
		if ok != tc.ok || n != tc.suppressed {
			t.Errorf("step %d (%s at %v): ok=%v suppressed=%d, want %v %d", i, tc.key, tc.at, ok, n, tc.ok, tc.suppressed)
		}
	}
}
