package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/cmd/internal/llmconfig"
	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/quota"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
	"github.com/smartlayer/smartlayer/internal/store"
)

// app holds what serve builds once. Stateful modules survive config
// reloads, so counters, windows and bans are kept when limits change;
// pipelines are rebuilt from them on every reload.
type app struct {
	logger *slog.Logger
	reg    *prometheus.Registry
	redis  *redis.Client // nil with the memory store

	behavior *scoring.Behavior
	quota    *quota.Limiter
	payload  *payload.Validator
	ch       driver.Conn // nil without accesslog.clickhouse.addr
}

// validateModules runs every module's own validation on cfg, so
// check-config and a hot reload reject what serve would reject.
func validateModules(cfg config.Config) error {
	var errs []error
	if err := behaviorConfig(cfg.Behavior).Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := quota.Compile(cfg.Quota.Plans); err != nil {
		errs = append(errs, err)
	}
	if pc, err := payloadConfig(cfg.Payload); err != nil {
		errs = append(errs, err)
	} else if _, err := payload.New(pc); err != nil {
		errs = append(errs, err)
	}
	if _, err := accessLogConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	if cfg.LLM.BaseURL != "" {
		if err := llmconfig.FromConfig(cfg.LLM).Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newRedis returns the shared Redis client. Its settings keep a slow or
// dead Redis inside the decision budget: deadlines come from each call's
// context, a failed dial is not retried five times, and a script whose reply
// was lost is not re-run (it would count a request twice).
func newRedis(c config.Redis) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: c.Addr, Username: c.Username, Password: string(c.Password), DB: c.DB,
		PoolSize:              c.PoolSize,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
}

// build creates the stateful modules from the first configuration.
func (a *app) build(cfg config.Config, verdicts scoring.Verdicts, payloadVerdicts payload.Verdicts) error {
	if err := validateModules(cfg); err != nil {
		return err
	}
	var state scoring.State
	if a.redis != nil {
		st, err := store.NewRedis(a.redis, store.DefaultRedisOptions())
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		state = st
	} else {
		mo := store.DefaultMemoryOptions()
		mo.MaxClients, mo.MaxBans, mo.Registerer = cfg.Store.Memory.MaxTrackedClients, cfg.Store.Memory.MaxBans, a.reg
		st, err := store.NewMemory(mo)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		state = st
	}
	var err error
	a.behavior, err = scoring.NewBehavior(behaviorConfig(cfg.Behavior), state, verdicts, a.logger, a.reg)
	if err != nil {
		return err
	}

	table, err := quota.Compile(cfg.Quota.Plans)
	if err != nil {
		return err
	}
	qc := quota.DefaultConfig()
	qc.Registerer, qc.Logger = a.reg, a.logger
	if a.redis != nil {
		a.quota, err = quota.NewRedis(a.redis, table, qc)
	} else {
		a.quota, err = quota.NewMemory(table, qc)
	}
	if err != nil {
		return fmt.Errorf("quota: %w", err)
	}

	pc, err := payloadConfig(cfg.Payload)
	if err != nil {
		return err
	}
	opts := []payload.Option{payload.WithRegisterer(a.reg), payload.WithLogger(a.logger),
		payload.WithVerdictHook(a.banPayloadSender)}
	if payloadVerdicts != nil {
		opts = append(opts, payload.WithVerdicts(payloadVerdicts))
	}
	a.payload, err = payload.New(pc, opts...)
	return err
}

// banPayloadSender bans the client whose payload the LLM judged malicious
// after the request was allowed (async mode).
func (a *app) banPayloadSender(ctx context.Context, ev payload.VerdictEvent) {
	if !ev.Block || ev.Client == "" {
		return
	}
	if _, err := a.behavior.Ban(ctx, ev.Client, "payload.llm", ev.Sample.Score, time.Now()); err != nil {
		a.logger.Warn("ban after LLM payload verdict failed", "client", ev.Client, "err", err)
	}
}

func (a *app) ban(ctx context.Context, clientKey, reason string, score int, now time.Time) error {
	_, err := a.behavior.Ban(ctx, clientKey, reason, score, now)
	return err
}

// pipeline builds the Check pipeline for cfg and applies cfg to the
// stateful modules, so call it only with a configuration that will be used.
func (a *app) pipeline(cfg config.Config) (*authz.Pipeline, error) {
	if err := validateModules(cfg); err != nil {
		return nil, err
	}
	p := &authz.Pipeline{
		FailOpen: cfg.Server.FailMode == config.FailAllow,
		Identity: authz.Identity{
			FromXFF:       cfg.Identity.ClientIP.Source == "xff",
			TrustedHops:   cfg.Identity.ClientIP.TrustedHops,
			UserHeader:    cfg.Identity.UserHeader,
			PlanHeader:    cfg.Identity.PlanHeader,
			AnonymousPlan: cfg.Identity.AnonymousPlan,
			JWTFilter:     cfg.Identity.JWT.Filter,
			JWTPayloadKey: cfg.Identity.JWT.PayloadKey,
			UserClaim:     cfg.Identity.JWT.UserClaim,
			PlanClaim:     cfg.Identity.JWT.PlanClaim,
			MaxBodyBytes:  cfg.Payload.MaxBodyBytes,
		},
	}
	for _, c := range cfg.Behavior.AllowCIDRs {
		pfx, err := config.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("behavior.allow_cidrs: %w", err)
		}
		p.Allow = append(p.Allow, pfx)
	}
	for _, c := range cfg.Behavior.DenyCIDRs {
		pfx, err := config.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("behavior.deny_cidrs: %w", err)
		}
		p.Deny = append(p.Deny, pfx)
	}

	storeTimeout := time.Duration(0)
	if a.redis != nil {
		storeTimeout = cfg.Store.Redis.Timeout
	}
	if err := a.behavior.SetConfig(behaviorConfig(cfg.Behavior)); err != nil {
		return nil, err
	}
	p.Stages = append(p.Stages,
		authz.NamedStage{Module: authz.ModuleBehavior, Mode: mode(cfg.Behavior.Mode), SkipAllowListed: true,
			Stage: authz.BehaviorStage(a.behavior, storeTimeout)},
		authz.NamedStage{Module: authz.ModulePayload, Mode: mode(cfg.Payload.Mode),
			Stage: authz.PayloadStage(a.payload, a.ban)})

	table, err := quota.Compile(cfg.Quota.Plans)
	if err != nil {
		return nil, err
	}
	a.quota.SetTable(table)
	if len(table.Plans()) > 0 {
		// No plans, no quota stage: no store round trip for nothing.
		p.Stages = append(p.Stages, authz.NamedStage{Module: authz.ModuleQuota, Mode: mode(cfg.Quota.Mode),
			Stage: authz.QuotaStage(a.quota, storeTimeout)})
	}
	return p, nil
}

func mode(m config.Mode) authz.Mode {
	switch m {
	case config.ModeShadow:
		return authz.Shadow
	case config.ModeOff:
		return authz.Off
	default:
		return authz.Enforce
	}
}

func behaviorConfig(b config.Behavior) scoring.BehaviorConfig {
	return scoring.BehaviorConfig{
		GraceRequests: b.GraceRequests, BlockThreshold: b.BlockThreshold, GreyThreshold: b.GreyThreshold,
		BlockEmptyUserAgent: b.BlockEmptyUserAgent,
		RateWindow:          b.RateWindow, RateBlock: b.RateBlock, RateSuspect: b.RateSuspect, RateWeight: b.RateWeight,
		ErrorWindow: b.ErrorWindow, ErrorBlockRatio: b.ErrorBlockRatio, ErrorSuspectRatio: b.ErrorSuspectRatio,
		ErrorMinSample: b.ErrorMinSample, ErrorWeight: b.ErrorWeight,
		SuspiciousUserAgents: b.SuspiciousUserAgents, SuspiciousUAWeight: b.SuspiciousUAWeight,
		SensitivePaths: b.SensitivePaths, SensitiveWeight: b.SensitiveWeight,
		DistinctWindow: b.DistinctWindow, DistinctEndpoints: b.DistinctEndpoints, DistinctWeight: b.DistinctWeight,
		TrackedEndpoints: b.TrackedEndpoints,
		SequentialRun:    b.SequentialRun, SequentialWeight: b.SequentialWeight, TrackedTemplates: b.TrackedTemplates,
		IdleBefore: b.IdleBefore, BurstWindow: b.BurstWindow, BurstCount: b.BurstCount, BurstWeight: b.BurstWeight,
		StateTTL: b.StateTTL,
		BanTTL:   b.BanTTL, BanEscalation: b.BanEscalation, BanMaxTTL: b.BanMaxTTL, OffenceMemory: b.OffenceMemory,
		IPv6Prefix: b.IPv6Prefix,
		LLM: scoring.LLMConfig{
			MinConfidence: b.LLM.MinConfidence, QueueSize: b.LLM.QueueSize, Workers: b.LLM.Workers,
			Timeout: b.LLM.Timeout, CacheTTL: b.LLM.CacheTTL, CacheSize: b.LLM.CacheSize,
			StoreTimeout: b.LLM.StoreTimeout,
		},
	}
}

// payloadConfig maps the payload.* keys onto the validator's Config.
// Changing them needs a restart; payload.mode reloads.
func payloadConfig(c config.Payload) (payload.Config, error) {
	mode, err := payload.ParseLLMMode(string(c.LLMMode))
	if err != nil {
		return payload.Config{}, fmt.Errorf("payload.llm_mode: %w", err)
	}
	return payload.Config{
		BlockScore: c.BlockScore, MaxBodyBytes: c.MaxBodyBytes, MaxJSONDepth: c.MaxJSONDepth,
		Headers: c.Headers, SkipHeaders: c.SkipHeaders,
		LLMMode: mode, MinConfidence: c.MinConfidence, LLMMaxExcerpt: c.LLMMaxExcerpt,
		LLMQueueSize: c.LLMQueueSize, LLMWorkers: c.LLMWorkers, LLMTimeout: c.LLMTimeout,
		VerdictCacheSize: c.VerdictCacheSize, VerdictTTL: c.VerdictTTL,
	}, nil
}

func accessLogConfig(c config.Config) (accesslog.Config, error) {
	a := c.AccessLog
	policy, err := accesslog.ParseClientIPPolicy(a.StoreClientIP)
	if err != nil {
		return accesslog.Config{}, fmt.Errorf("accesslog.store_client_ip: %w", err)
	}
	return accesslog.Config{
		Database: a.ClickHouse.Database, BatchRows: a.BatchRows, FlushInterval: a.FlushInterval,
		QueueBatches: a.QueueBatches, MaxInflight: a.MaxInflight, InsertTimeout: a.InsertTimeout,
		RetryAttempts: a.RetryAttempts, RetryMinBackoff: a.RetryMinBackoff, RetryMaxBackoff: a.RetryMaxBackoff,
		SpoolDir: a.SpoolDir, SpoolMaxBytes: a.SpoolMaxBytes, StoreClientIP: policy,
		UserHeader: c.Identity.UserHeader, PlanHeader: c.Identity.PlanHeader,
	}, nil
}
