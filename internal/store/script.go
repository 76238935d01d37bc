package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Scripter runs Lua scripts; *redis.Client, *redis.ClusterClient,
// *redis.Ring and a redis.Pipeliner satisfy it.
type Scripter interface {
	EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
	Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
}

// ScriptLoader loads a script into Redis's script cache.
type ScriptLoader interface {
	ScriptLoad(ctx context.Context, script string) *redis.StringCmd
}

// Script is a Lua script sent by its SHA1 (EVALSHA); a Redis that lost its
// script cache (restart, SCRIPT FLUSH) answers NOSCRIPT and gets the source
// once (EVAL, which caches it again). Every Redis-backed module runs its
// scripts through it, so they all recover the same way.
type Script struct {
	src, hash string
}

// NewScript returns the script of src.
func NewScript(src string) *Script {
	h := sha1.Sum([]byte(src))
	return &Script{src: src, hash: hex.EncodeToString(h[:])}
}

// Hash is the script's SHA1, as EVALSHA wants it.
func (s *Script) Hash() string { return s.hash }

// Source is the script's Lua source.
func (s *Script) Source() string { return s.src }

// Run sends EVALSHA and, on NOSCRIPT only, EVAL: a script whose reply was
// lost is never sent again (it could count twice).
func (s *Script) Run(ctx context.Context, c Scripter, keys []string, args ...any) *redis.Cmd {
	cmd := c.EvalSha(ctx, s.hash, keys, args...)
	if IsNoScript(cmd.Err()) {
		cmd = c.Eval(ctx, s.src, keys, args...)
	}
	return cmd
}

// EvalSha queues EVALSHA on a pipeline; see RunPipelined.
func (s *Script) EvalSha(ctx context.Context, p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
	return p.EvalSha(ctx, s.hash, keys, args...)
}

// Load puts the script in Redis's script cache.
func (s *Script) Load(ctx context.Context, c ScriptLoader) error {
	return c.ScriptLoad(ctx, s.src).Err()
}

// PipelineClient runs pipelines and loads scripts.
type PipelineClient interface {
	ScriptLoader
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// RunPipelined sends the pipeline fn builds (EVALSHA calls of scripts) in
// one round trip. When Redis answers NOSCRIPT, it loads scripts and sends
// the pipeline once more: the first attempt ran none of the missing
// script's calls.
func RunPipelined(ctx context.Context, c PipelineClient, fn func(redis.Pipeliner) error, scripts ...*Script) error {
	_, err := c.Pipelined(ctx, fn)
	if IsNoScript(err) {
		for _, s := range scripts {
			if err = s.Load(ctx, c); err != nil {
				return err
			}
		}
		_, err = c.Pipelined(ctx, fn)
	}
	return err
}

// IsNoScript reports whether err is Redis's NOSCRIPT answer.
func IsNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}
