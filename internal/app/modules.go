package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/quota"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
	"github.com/smartlayer/smartlayer/internal/server"
	"github.com/smartlayer/smartlayer/internal/setting"
	"github.com/smartlayer/smartlayer/internal/store"
)

// app holds what Run builds once. Stateful modules survive config
// reloads, so counters, windows and bans are kept when limits change;
// pipelines are rebuilt from them on every reload.
type app struct {
	logger *slog.Logger
	reg    *prometheus.Registry
	redis  redis.UniversalClient // nil with the memory store
	// scripts sends the request path's scripts: a Batcher with
	// store.redis.batch, else the client; nil with the memory store.
	scripts store.Scripter
	// storeTimeout bounds a stage's store calls (store.redis.timeout, or
	// timeout_max when the timeout adapts); 0 with the memory store.
	storeTimeout time.Duration

	behavior *scoring.Behavior
	// redisState is the Redis behaviour store (nil with memory): closed
	// last, so observations queued behind asynchronous Checks are sent.
	redisState *state.Redis
	quota      *quota.Limiter
	payload    *payload.Validator
	ch         driver.Conn // nil without accesslog.clickhouse.addr
	// banTimeout bounds a payload sender's ban (store.redis.timeout; 0
	// with the memory store).
	banTimeout time.Duration
}

// build creates the stateful modules from the first configuration.
func (a *app) build(cfg config.Config, verdicts scoring.Verdicts, payloadVerdicts payload.Verdicts) error {
	var st scoring.State
	if a.redis != nil {
		if err := a.buildScripts(cfg.Store.Redis); err != nil {
			return err
		}
		ro := state.DefaultRedisOptions()
		rc := cfg.Store.Redis
		ro.Scripts, ro.LocalCacheTTL, ro.LocalCacheSize = a.scripts, rc.LocalCacheTTL, rc.LocalCacheSize
		if rc.Async {
			ro.AsyncMaxAge, ro.AsyncMaxClients = rc.AsyncMaxAge, rc.AsyncMaxClients
		}
		ro.Registerer = a.reg
		if _, batched := a.scripts.(*store.Batcher); batched {
			ro.CallTimeout = a.storeTimeout
		}
		r, err := state.NewRedis(a.redis, ro)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		st, a.redisState = r, r
	} else {
		mo := state.DefaultMemoryOptions()
		mo.MaxClients, mo.MaxBans, mo.Registerer, mo.Logger = cfg.Store.Memory.MaxTrackedClients, cfg.Store.Memory.MaxBans, a.reg, a.logger
		m, err := state.NewMemory(mo)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		st = m
	}
	var err error
	a.behavior, err = scoring.NewBehavior(cfg.Behavior, st, verdicts, a.logger, a.reg)
	if err != nil {
		return err
	}

	table, err := cfg.Quota.Compile()
	if err != nil {
		return err
	}
	qc := cfg.Quota
	qc.Registerer, qc.Logger = a.reg, a.logger
	qc.LocalCacheTTL, qc.LocalCacheSize = cfg.Store.Redis.LocalCacheTTL, cfg.Store.Redis.LocalCacheSize
	if a.redis != nil {
		a.quota, err = quota.NewRedis(a.scripts, table, qc)
	} else {
		a.quota, err = quota.NewMemory(table, qc)
	}
	if err != nil {
		return fmt.Errorf("quota: %w", err)
	}

	if a.redis != nil {
		a.banTimeout = a.storeTimeout
	}
	opts := []payload.Option{payload.WithRegisterer(a.reg), payload.WithLogger(a.logger),
		payload.WithMaliciousHook(a.banPayloadSender)}
	if payloadVerdicts != nil {
		opts = append(opts, payload.WithVerdicts(payloadVerdicts))
	}
	a.payload, err = payload.New(cfg.Payload, opts...)
	return err
}

// buildScripts sets a.scripts and a.storeTimeout for the Redis store: the
// request path's calls go through a Batcher (automatic pipelining, the
// adaptive timeout inside it) with store.redis.batch, else straight to the
// client under the fixed store.redis.timeout.
func (a *app) buildScripts(c store.RedisConfig) error {
	a.scripts, a.storeTimeout = a.redis, c.Timeout
	if !c.Batch {
		return nil
	}
	t := store.NewAdaptiveTimeout(c.Timeout, c.TimeoutMax, c.TimeoutFactor)
	b, err := store.NewBatcher(a.redis, t, c.BatchMaxInFlight, a.reg)
	if err != nil {
		return err
	}
	// The stage's own bound is the ceiling; the Batcher cuts each call at
	// the timeout in force.
	a.scripts, a.storeTimeout = b, t.Ceiling()
	return nil
}

// banPayloadSender is the one place a payload the LLM judged malicious
// bans its sender, whichever way the verdict became known (cache hit or
// sync verdict during the Check, async verdict on a worker).
func (a *app) banPayloadSender(ctx context.Context, m payload.Malicious) {
	if m.Client == "" {
		return
	}
	if a.banTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.banTimeout)
		defer cancel()
	}
	if _, err := a.behavior.Ban(ctx, m.Client, m.Reason, m.Score, time.Now()); err != nil {
		// Best effort: the next repeat of the payload tries again.
		a.logger.Warn("ban after malicious payload failed", "client", m.Client, "source", m.Source, "err", err)
	}
}

// pipeline builds the Check pipeline for cfg and applies cfg to the
// stateful modules, so call it only with a configuration that will be used.
func (a *app) pipeline(cfg config.Config) (*authz.Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &authz.Pipeline{FailOpen: cfg.Server.FailMode == server.FailAllow, Identity: cfg.Identity}
	var err error
	if p.Allow, err = scoring.Prefixes(cfg.Behavior.AllowCIDRs); err != nil {
		return nil, fmt.Errorf("behavior.allow_cidrs: %w", err)
	}
	if p.Deny, err = scoring.Prefixes(cfg.Behavior.DenyCIDRs); err != nil {
		return nil, fmt.Errorf("behavior.deny_cidrs: %w", err)
	}

	storeTimeout := a.storeTimeout
	behaviorTimeout := storeTimeout
	if _, batched := a.scripts.(*store.Batcher); batched {
		// The Batcher cuts each Check's script at the adaptive timeout, and
		// the Redis store bounds its other calls (CallTimeout): no
		// deadline per Check here.
		behaviorTimeout = 0
	}
	if err := a.behavior.SetConfig(cfg.Behavior); err != nil {
		return nil, err
	}
	// payload.* except payload.llm.* (queue, workers, cache) reloads,
	// exclusions included.
	if err := a.payload.SetConfig(cfg.Payload); err != nil {
		return nil, err
	}
	p.Stages = append(p.Stages,
		authz.NamedStage{Module: authz.ModuleBehavior, Mode: mode(cfg.Behavior.Mode), SkipAllowListed: true,
			Stage: authz.BehaviorStage(a.behavior, behaviorTimeout)},
		authz.NamedStage{Module: authz.ModulePayload, Mode: mode(cfg.Payload.Mode),
			SkipAllowListed: cfg.Behavior.AllowCIDRsSkipPayload, Stage: authz.PayloadStage(a.payload),
			OnBudget: authz.PayloadOnBudget(cfg.Payload.TooComplex)})

	table, err := cfg.Quota.Compile()
	if err != nil {
		return nil, err
	}
	a.quota.SetTable(table)
	if len(table.Plans()) > 0 {
		// No plans, no quota stage: no store round trip for nothing.
		p.Stages = append(p.Stages, authz.NamedStage{Module: authz.ModuleQuota, Mode: mode(cfg.Quota.Mode), Counts: true,
			Stage: authz.QuotaStage(a.quota, storeTimeout, cfg.Behavior.IPv6Prefix)})
	}
	return p, nil
}

func mode(m setting.Mode) authz.Mode {
	switch m {
	case setting.Shadow:
		return authz.Shadow
	case setting.Off:
		return authz.Off
	default:
		return authz.Enforce
	}
}
