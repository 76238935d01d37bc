// Package logging builds the process's slog logger from the log.* keys.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// Config configures the slog handler (log.*).
type Config struct {
	Level  string `koanf:"level"`  // debug, info, warn, error
	Format string `koanf:"format"` // text, json
}

// DefaultConfig logs at info level as text.
func DefaultConfig() Config { return Config{Level: "info", Format: "text"} }

// Validate names a bad level or format by its key.
func (c Config) Validate() error {
	p := setting.Section("log")
	p.OneOf("level", c.Level, "debug", "info", "warn", "error")
	p.OneOf("format", c.Format, "text", "json")
	return p.Err()
}

// New returns a logger writing to w as c says.
func New(c Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated: never fails
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationsAsText prints durations as "50ms", not as nanoseconds (JSON).
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// Redis adapts a logger to go-redis's internal logger, so the Redis
// client's own lines (reconnects, pool errors) come out in the same format
// as everything else. Install it with redis.SetLogger.
type Redis struct{ L *slog.Logger }

// Printf logs one go-redis line as a warning.
func (r Redis) Printf(ctx context.Context, format string, v ...any) {
	r.L.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

// Sampler lets one log line per key through per interval and counts the
// ones it held back, so an outage logs "N more like this" instead of one
// line per request.
type Sampler struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

// NewSampler passes one line per key per interval.
func NewSampler(interval time.Duration) *Sampler {
	return &Sampler{interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// Allow reports whether a line for key may be logged now, and how many
// were held back since the last one that was.
func (s *Sampler) Allow(key string, now time.Time) (ok bool, suppressed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, seen := s.last[key]; seen && now.Sub(t) < s.interval {
		s.held[key]++
		return false, 0
	}
	s.last[key] = now
	suppressed = s.held[key]
	delete(s.held, key)
	if len(s.last) > 1024 { // keys are causes, not clients; keep it bounded anyway
		clear(s.last)
	}
	return true, suppressed
}
