// Package logging builds the process's slog logger from the log.* keys.
package logging

import (
	"io"
	"log/slog"

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
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
