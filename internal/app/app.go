// Package app builds and runs the authz process from one configuration:
// the modules (behaviour scoring, payload validation, quotas), the Check
// pipeline, the ext_authz, access-log and admin servers, hot reload and the
// shutdown order. cmd/authz only parses flags and calls Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/smartlayer/smartlayer/internal/accesslog"
	"github.com/smartlayer/smartlayer/internal/admin"
	"github.com/smartlayer/smartlayer/internal/authz"
	"github.com/smartlayer/smartlayer/internal/config"
	"github.com/smartlayer/smartlayer/internal/logging"
	"github.com/smartlayer/smartlayer/internal/prom"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/payload"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
	"github.com/smartlayer/smartlayer/internal/server"
	"github.com/smartlayer/smartlayer/internal/store"
)

// Run serves until ctx is done, then shuts down in order. cfg must come
// from config.Load (validated); src is watched for hot reloads.
func Run(ctx context.Context, cfg config.Config, src config.Source, logger *slog.Logger) error {
	a := &app{logger: logger, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, n := range cfg.Notices {
		logger.Warn("configuration: " + n)
	}
	if cfg.Store.Backend == store.BackendRedis {
		rc, err := store.NewRedisClient(cfg.Store.Redis)
		if err != nil {
			return err
		}
		a.redis = rc
		logger.Info("redis store", "topology", cfg.Store.Redis.Topology(), "addrs", cfg.Store.Redis.Addrs)
		// go-redis's own lines (reconnects, pool errors) in our format.
		redis.SetLogger(logging.Redis{L: logger})
		defer a.redis.Close()
	}
	model, err := newLLM(cfg.LLM, a.reg, logger)
	if err != nil {
		return err
	}
	var cv scoring.Verdicts
	var pv payload.Verdicts
	if model != nil {
		defer model.Close()
		cv, pv = clientVerdicts{model}, payloadVerdicts{model}
	}
	if err := a.build(cfg, cv, pv); err != nil {
		return err
	}
	defer a.behavior.Close()
	if a.redisState != nil {
		// Deferred before the servers stop: it runs after them, so the
		// last Checks' observations reach Redis (the client closes after).
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := a.redisState.Close(ctx); err != nil {
				logger.Warn("redis store: observations not sent at shutdown", "err", err)
			}
		}()
	}
	if cfg.AccessLog.ClickHouse.Enabled() {
		var err error
		if a.ch, err = openClickHouse(cfg.AccessLog.ClickHouse); err != nil {
			return err
		}
		defer a.ch.Close()
	}
	// Feedback from the access log counts only for requests authz decided
	// (Decisions): the ALS port must not let anyone ban anyone.
	var decisionStore scoring.DecisionStore
	if a.redis != nil {
		if decisionStore, err = state.NewRedisDecisions(a.redis, state.DefaultRedisOptions(), cfg.Behavior.FeedbackWindow); err != nil {
			return err
		}
	} else {
		decisionStore = state.NewMemoryDecisions(cfg.Behavior.FeedbackMaxRecords)
	}
	decisions := scoring.NewDecisions(decisionStore, cfg.Behavior.FeedbackWindow, 64<<10, logger, a.reg)
	defer decisions.Close()
	// 1024 ALS messages of responses (64k+ with Envoy's batches).
	fb := scoring.NewFeedback(a.behavior, cfg.Behavior.LLM.StoreTimeout, 1024, 2, logger, a.reg)
	fb.Bind(decisions, cfg.Behavior.FeedbackMaxSkew)
	als, err := accesslog.New(cfg.AccessLog, a.ch, feedbackAdapter{fb}, logger, a.reg)
	if err != nil {
		return err
	}

	pipeline, err := a.pipeline(cfg)
	if err != nil {
		return err
	}
	authzSrv := authz.NewServer(pipeline, cfg.Server.DecisionBudget,
		authz.WithLogger(logger), authz.WithRegisterer(a.reg), authz.WithDecisionRecorder(decisions),
		authz.WithDenyDetail(cfg.Server.DenyDetail == "reason"))

	panics := prom.Counter("smartlayer_grpc_panics_total", "Panics recovered in gRPC handlers.")
	a.reg.MustRegister(panics)
	grpcOpts, err := server.GRPCOptions(cfg.Server)
	if err != nil {
		return err
	}
	// Recovery first, so a panic anywhere below it (token check included)
	// is contained; each listener then checks its own token.
	grpcOpts = append(grpcOpts, server.Recovery(logger, panics)...)
	authzGRPC := grpc.NewServer(append(server.WithTokenAuth(grpcOpts, cfg.Server.AuthzToken), authz.ServerCodec())...)
	authzSrv.Register(authzGRPC)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(authzGRPC, healthSrv)
	if cfg.Server.Reflection {
		reflection.Register(authzGRPC)
	}

	// The access log gets its own listener and server so a flood of log
	// streams cannot starve Checks, and each drains on its own.
	alsGRPC := als.NewServer(server.WithTokenAuth(grpcOpts, cfg.Server.ALSToken)...)
	healthpb.RegisterHealthServer(alsGRPC, healthSrv)

	adminSrv := admin.New(a.reg, admin.BansHandler(a.behavior, cfg.Server.AdminToken.Reveal(), logger), logger)
	adminSrv.SetProbes(a.probes())
	if cfg.Server.Pprof {
		adminSrv.EnableProfiling(cfg.Server.AdminToken.Reveal())
	}

	authzLis, err := net.Listen("tcp", cfg.Server.AuthzAddr)
	if err != nil {
		return fmt.Errorf("listen server.authz_addr %s: %w", cfg.Server.AuthzAddr, err)
	}
	defer authzLis.Close()
	var alsLis net.Listener
	if cfg.Server.ALSAddr != "" {
		if alsLis, err = net.Listen("tcp", cfg.Server.ALSAddr); err != nil {
			return fmt.Errorf("listen server.als_addr %s: %w", cfg.Server.ALSAddr, err)
		}
		defer alsLis.Close()
	}
	var adminHTTP *http.Server
	var adminLis net.Listener
	if cfg.Server.AdminAddr != "" {
		if adminLis, err = net.Listen("tcp", cfg.Server.AdminAddr); err != nil {
			return fmt.Errorf("listen server.admin_addr %s: %w", cfg.Server.AdminAddr, err)
		}
		adminHTTP = &http.Server{Handler: adminSrv, ReadHeaderTimeout: 5 * time.Second}
	}
	logger.Info("smartlayer authz serving",
		"authz_addr", authzLis.Addr().String(), "als_addr", addrOf(alsLis), "admin_addr", addrOf(adminLis),
		"store", cfg.Store.Backend, "decision_budget", cfg.Server.DecisionBudget,
		"fail_mode", cfg.Server.FailMode, "llm", cfg.LLM.BaseURL != "")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := authzGRPC.Serve(authzLis); err != nil {
			return fmt.Errorf("authz gRPC server: %w", err)
		}
		return nil
	})
	if alsLis != nil {
		g.Go(func() error {
			if err := alsGRPC.Serve(alsLis); err != nil {
				return fmt.Errorf("access-log gRPC server: %w", err)
			}
			return nil
		})
	}
	// The access-log pipeline outlives the signal: it stops only after
	// Close has flushed or spooled every row.
	alsCtx, stopALS := context.WithCancel(context.WithoutCancel(ctx))
	defer stopALS()
	alsDone := make(chan error, 1)
	go func() { alsDone <- als.Run(alsCtx) }()
	if a.ch != nil {
		g.Go(func() error { return ensureSchema(gctx, a.ch, cfg, logger) })
	}
	if adminHTTP != nil {
		g.Go(func() error {
			if err := adminHTTP.Serve(adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin HTTP server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return a.payload.Run(gctx) })
	g.Go(func() error {
		return config.Watch(gctx, src, logger, a.reg, func(next config.Config) {
			p, err := a.pipeline(next)
			if err != nil {
				logger.Error("config reload rejected; keeping the last good configuration", "err", err)
				return
			}
			authzSrv.Swap(p, next.Server.DecisionBudget)
		})
	})
	g.Go(func() error {
		<-gctx.Done()
		// Shutdown order, all under one deadline (drain_delay +
		// shutdown_timeout; the pod's grace period is sized to it):
		// 1. say NOT_SERVING and fail readiness, but keep answering Checks
		//    for drain_delay while Envoy and Kubernetes stop sending — a
		//    listener closed at once would let requests through unchecked
		//    (Envoy's failure_mode_allow);
		// 2. stop accepting Checks and finish the ones in flight;
		// 3. end the access-log streams (Envoy keeps them open forever and
		//    reconnects to another replica); every row received is already
		//    in the batcher;
		// 4. flush the access log, spooling what ClickHouse does not take.
		start := time.Now()
		deadline := start.Add(cfg.Server.DrainDelay + cfg.Server.ShutdownTimeout)
		remaining := func() time.Duration { return max(time.Until(deadline), 0) }
		logger.Info("shutting down", "drain_delay", cfg.Server.DrainDelay, "timeout", cfg.Server.ShutdownTimeout)
		healthSrv.Shutdown()
		adminSrv.Drain()
		time.Sleep(min(cfg.Server.DrainDelay, remaining()))
		server.GracefulStop(authzGRPC, remaining())
		server.GracefulStop(alsGRPC, min(alsStreamGrace, remaining()))
		cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		if err := als.Close(cctx); err != nil {
			logger.Error("access log closed with losses", "err", err)
		}
		stopALS()
		if err := <-alsDone; err != nil {
			logger.Error("access-log pipeline", "err", err)
		}
		fb.Close()
		if adminHTTP != nil {
			_ = adminHTTP.Shutdown(cctx)
		}
		logger.Info("shut down", "took", time.Since(start))
		return nil
	})
	return g.Wait()
}

// alsStreamGrace is how long access-log streams may end by themselves
// before the server ends them: Envoy never closes its stream, so waiting
// longer only eats the flush's share of the deadline.
const alsStreamGrace = time.Second

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// probes lists the backends /readyz waits for.
func (a *app) probes() []admin.Probe {
	var ps []admin.Probe
	if a.redis != nil {
		ps = append(ps, admin.Probe{Name: "redis", Check: func(ctx context.Context) error {
			return a.redis.Ping(ctx).Err()
		}})
	}
	if a.ch != nil {
		// Not critical: ClickHouse is off the request path, and batches
		// spool while it is away. Failing readiness for it would take
		// authz out of Envoy's endpoints and let every request through.
		ps = append(ps, admin.Probe{Name: "clickhouse", Check: a.ch.Ping, Optional: true})
	}
	return ps
}

// openClickHouse connects over the native protocol with no extra settings:
// ClickHouse 18.16 rejects settings it does not know.
func openClickHouse(c accesslog.ClickHouseConfig) (driver.Conn, error) {
	opts := &clickhouse.Options{
		Addr:        c.Addr,
		Auth:        clickhouse.Auth{Username: c.Username, Password: c.Password.Reveal()},
		DialTimeout: c.DialTimeout,
		// The driver keeps each connection's block encoding buffer. A
		// whole 50,000-row batch as one block made it ~15 MB per
		// connection (~72 of 132 MB live heap during make bench's ALS
		// ingest); the writer now sends blocks of 4,096 rows (~2 MB), so
		// the buffer is kept: freeing it after each insert made it
		// re-grow every time, 15 % of the bytes authz allocated during
		// that ingest. The compressed block still goes out every MiB.
		MaxCompressionBuffer: 1 << 20,
	}
	if c.Cluster != "" {
		// Each node given is an entry to the Distributed table, which
		// splits and forwards every batch: spread that work over them
		// instead of loading the first.
		opts.ConnOpenStrategy = clickhouse.ConnOpenRoundRobin
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("accesslog.clickhouse: %w", err)
	}
	return conn, nil
}

// ensureSchema creates the tables, retrying until ClickHouse answers: authz
// starts and decides without it, and the access log spools meanwhile.
func ensureSchema(ctx context.Context, conn driver.Conn, cfg config.Config, logger *slog.Logger) error {
	backoff := time.Second
	for {
		ch := cfg.AccessLog.ClickHouse
		opts := append([]accesslog.SchemaOption{accesslog.WithRetentionDays(cfg.Report.RetentionDays)},
			ch.SchemaOptions(func(_ context.Context, addr string) (driver.Conn, error) {
				node := ch
				node.Addr = []string{addr}
				return openClickHouse(node)
			})...)
		err := accesslog.EnsureSchema(ctx, conn, ch.Database, opts...)
		if err == nil {
			logger.Info("clickhouse schema ready", "database", ch.Database, "cluster", ch.Cluster)
			return nil
		}
		logger.Warn("clickhouse schema not ready; access log spools meanwhile", "err", err, "retry_in", backoff,
			"fix", schemaFix(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// feedbackAdapter hands the access log's response codes to behaviour
// scoring's feedback queue (accesslog.Feedback).
type feedbackAdapter struct{ f *scoring.Feedback }

// ObserveResponses copies rs (the stream reuses it) and never blocks.
func (a feedbackAdapter) ObserveResponses(_ context.Context, rs []accesslog.Response) {
	batch := make([]scoring.UpstreamResponse, len(rs))
	for i, r := range rs {
		batch[i] = scoring.UpstreamResponse{ClientIP: r.ClientIP, Status: r.Status, OwnDenial: r.Denied, At: r.At,
			RequestID: r.RequestID}
	}
	a.f.Offer(batch)
}

// schemaFix says what an operator should do about a schema error.
func schemaFix(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "authentication failed") || strings.Contains(msg, "unknown user") ||
		strings.Contains(msg, "password is incorrect"):
		return "check accesslog.clickhouse.username/password; create the user with deploy/clickhouse/init/01-smartlayer.sql"
	case strings.Contains(msg, "not enough privileges") || strings.Contains(msg, "access_denied"):
		return "grant the user CREATE, ALTER, INSERT and SELECT on the database (deploy/clickhouse/init/01-smartlayer.sql)"
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "timeout"):
		return "ClickHouse is unreachable at accesslog.clickhouse.addr: rows spool until it answers"
	}
	return "see the error; rows spool until the schema is ready"
}
