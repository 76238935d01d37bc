package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Scripter runs Lua scripts; redis.UniversalClient (*redis.Client, the
// Sentinel failover client, *redis.ClusterClient) and a redis.Pipeliner
// satisfy it.
type Scripter interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// ScriptLoader loads a script into Redis's script cache.
type ScriptLoader interface {
	ScriptLoad(ctx context.Context, script string) *redis.StringCmd
}

// Script is a Lua script sent by its SHA1 (EVALSHA); a Redis that lost its
// script cache (restart, failover, SCRIPT FLUSH, a Cluster node that never
// saw it) answers NOSCRIPT and gets the source once (EVAL, which caches it
// again). Every Redis-backed module runs its scripts through it, so they all
// recover the same way.
//
// A script call is never sent twice after it may have run: the client is
// built with MaxRetries -1, and each call is marked NoRetry so a Cluster
// client, which retries a command on a connection error whatever
// MaxRetries says, does not either (a re-run script counts twice).
type Script struct {
	src, hash string
	// hashArg is hash boxed once: boxing it on every call allocated.
	hashArg any
}

// NewScript returns the script of src.
func NewScript(src string) *Script {
	h := sha1.Sum([]byte(src))
	hash := hex.EncodeToString(h[:])
	return &Script{src: src, hash: hash, hashArg: hash}
}

// Hash is the script's SHA1, as EVALSHA wants it.
func (s *Script) Hash() string { return s.hash }

// Source is the script's Lua source.
func (s *Script) Source() string { return s.src }

// noRetry is a script call that no client layer sends again.
type noRetry struct{ *redis.Cmd }

// NoRetry implements redis.Cmder.
func (noRetry) NoRetry() bool { return true }

// cmd builds EVALSHA (body is the hash) or EVAL (body is the source). Keys
// route it to its slot on a Cluster.
func cmd(ctx context.Context, name string, body any, keys []string, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, body, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	c := redis.NewCmd(ctx, a...)
	if len(keys) > 0 {
		c.SetFirstKeyPos(3)
	}
	return c
}

// Run sends EVALSHA and, on NOSCRIPT only, EVAL: a script whose reply was
// lost is never sent again (it could count twice).
func (s *Script) Run(ctx context.Context, c Scripter, keys []string, args ...any) *redis.Cmd {
	if b, ok := c.(*Batcher); ok {
		r := b.do(ctx, cmd(ctx, "evalsha", s.hashArg, keys, args))
		if IsNoScript(r.Err()) {
			r = b.do(ctx, cmd(ctx, "eval", s.src, keys, args))
		}
		return r
	}
	r := cmd(ctx, "evalsha", s.hashArg, keys, args)
	_ = c.Process(ctx, noRetry{r})
	if IsNoScript(r.Err()) {
		r = cmd(ctx, "eval", s.src, keys, args)
		_ = c.Process(ctx, noRetry{r})
	}
	return r
}

// EvalSha queues EVALSHA on a pipeline; see RunPipelined.
func (s *Script) EvalSha(ctx context.Context, p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
	r := cmd(ctx, "evalsha", s.hashArg, keys, args)
	_ = p.Process(ctx, noRetry{r})
	return r
}

// PipelineClient runs pipelines.
type PipelineClient interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// RunPipelined sends the pipeline fn builds (EVALSHA calls of scripts,
// queued with Script.EvalSha) in one round trip. The calls Redis answered
// NOSCRIPT — none ran — are sent once more as EVAL, in a second pipeline,
// and their results land in the commands fn queued; the others are not
// sent again (on a Cluster some nodes may have the script and others not).
func RunPipelined(ctx context.Context, c PipelineClient, fn func(redis.Pipeliner) error, scripts ...*Script) error {
	cmds, err := c.Pipelined(ctx, fn)
	if !IsNoScript(err) && !anyNoScript(cmds) {
		return err
	}
	var again, orig []*redis.Cmd
	var errs []error
	for _, c := range cmds {
		nr, ok := c.(noRetry)
		if !ok || !IsNoScript(nr.Err()) {
			if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
				errs = append(errs, e)
			}
			continue
		}
		a := nr.Args()
		var s *Script
		for _, sc := range scripts {
			if len(a) > 1 && a[1] == sc.hash {
				s = sc
			}
		}
		if s == nil {
			errs = append(errs, nr.Err())
			continue
		}
		r := redis.NewCmd(ctx, append([]any{"eval", s.src}, a[2:]...)...)
		if len(a) > 3 {
			r.SetFirstKeyPos(3)
		}
		again, orig = append(again, r), append(orig, nr.Cmd)
	}
	if len(again) > 0 {
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, r := range again {
				_ = p.Process(ctx, noRetry{r})
			}
			return nil
		})
		for i, r := range again {
			orig[i].SetVal(r.Val())
			orig[i].SetErr(r.Err())
			if e := r.Err(); e != nil && !errors.Is(e, redis.Nil) {
				errs = append(errs, e)
			}
		}
	}
	return errors.Join(errs...)
}

func anyNoScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if IsNoScript(c.Err()) {
			return true
		}
	}
	return false
}

// IsNoScript reports whether err is Redis's NOSCRIPT answer.
func IsNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}
