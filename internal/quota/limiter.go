package quota

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
	"github.com/smartlayer/smartlayer/internal/setting"
	"github.com/smartlayer/smartlayer/internal/store"
)

// Key identifies who is counted and where. The caller resolves identity.
type Key struct {
	// Subject is the user id, or the client IP for anonymous callers.
	Subject string
	// Plan is the caller's plan.
	Plan string
	// Path is the request path (a query string is ignored).
	Path string
}

// Config is the quota module's configuration (quota.*).
type Config struct {
	// Mode is enforce, shadow (log and count what would be denied) or off.
	Mode setting.Mode `koanf:"mode"`
	// Plans maps plan → route → window → limit; Compile checks the shape.
	// No plans, no quota stage.
	Plans map[string]map[string]map[string]int64 `koanf:"plans"`
	// CaseSensitive keeps the case of paths and route keys: with false (the
	// default) "/API/generate/" spends the "/api/generate/" quota.
	CaseSensitive bool `koanf:"case_sensitive"`
	// TrailingSlash is ignore ("/a/" and "/a" are one route; the default)
	// or strict.
	TrailingSlash pathnorm.TrailingSlash `koanf:"trailing_slash"`
	// Memory bounds the memory backend.
	Memory MemoryConfig `koanf:"memory"`

	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer `koanf:"-"`
	// Logger receives backend errors at debug level; nil discards.
	Logger *slog.Logger `koanf:"-"`
	// LocalCacheTTL and LocalCacheSize (store.redis.local_cache_ttl,
	// local_cache_size) let the Redis backend answer an exhausted window
	// from memory (see NewRedis); 0 is no cache.
	LocalCacheTTL  time.Duration `koanf:"-"`
	LocalCacheSize int           `koanf:"-"`
}

// MemoryConfig bounds the memory backend (quota.memory.*).
type MemoryConfig struct {
	// MaxKeys: counters are kept for at most this many (subject, plan,
	// route) triples, rounded up to a multiple of Shards; the least
	// recently used go first. Ignored by the Redis backend, where keys
	// expire with their window.
	MaxKeys int `koanf:"max_keys"`
	// Shards splits the memory backend's map and lock.
	Shards int `koanf:"shards"`
}

// DefaultConfig returns the defaults: enforcing, no plans, 100 000 keys in
// 64 shards.
func DefaultConfig() Config {
	return Config{Mode: setting.Enforce, Plans: map[string]map[string]map[string]int64{},
		TrailingSlash: pathnorm.Ignore, Memory: MemoryConfig{MaxKeys: 100_000, Shards: 64}}
}

// PathOptions is how request paths and route keys are normalized.
func (c Config) PathOptions() pathnorm.Options {
	return pathnorm.Options{CaseSensitive: c.CaseSensitive, TrailingSlash: c.TrailingSlash}
}

// Compile compiles the plans with the configured path normalization.
func (c Config) Compile() (*Table, error) { return compile(c.Plans, c.PathOptions()) }

// Validate reports every problem at once, named by its YAML key (quota.*),
// the plans' shape included.
func (c Config) Validate() error {
	p := setting.Section("quota")
	p.Mode("mode", c.Mode)
	p.OneOf("trailing_slash", string(c.TrailingSlash), string(pathnorm.Ignore), string(pathnorm.Strict))
	p.AtLeast("memory.max_keys", c.Memory.MaxKeys, 1)
	p.Between("memory.shards", c.Memory.Shards, 1, 4096)
	if _, err := c.Compile(); err != nil {
		p.Join(err)
	}
	return p.Err()
}

// validate checks what the limiter itself uses (not the plans, compiled
// apart).
func (c *Config) validate() error {
	p := setting.Section("quota")
	p.AtLeast("memory.max_keys", c.Memory.MaxKeys, 1)
	p.Between("memory.shards", c.Memory.Shards, 1, 4096)
	return p.Err()
}

// BackendError reports that the counter store failed; the caller applies its
// fail mode. The request was not decided; nothing is known to be counted.
type BackendError struct {
	Backend string // "redis"
	Err     error
}

func (e *BackendError) Error() string { return "quota: " + e.Backend + ": " + e.Err.Error() }
func (e *BackendError) Unwrap() error { return e.Err }

// Timeout reports whether the store did not answer in time.
func (e *BackendError) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// backend checks and counts one request on one plan route atomically.
type backend interface {
	// take returns the counts seen before this request and, when every
	// window admits it (admitted), counts it in every window. Counts travel
	// by value: a pointer through this interface would escape to the heap.
	take(ctx context.Context, subject string, pr *planRoute, nowMs int64) (c counts, allowed bool, err error)
}

// Limiter decides quotas. It is safe for concurrent use.
type Limiter struct {
	table   atomic.Pointer[Table]
	backend backend
	// denied holds exhausted windows answered without the backend (Redis
	// only; nil otherwise): subject + "\x00" + plan:route: → the denial.
	denied *store.LocalCache[cachedDenial]
	m      *metrics
	log    *slog.Logger
}

// cachedDenial is a denial and when it was decided, so a later answer from
// the cache counts its RetryAfter and Reset down.
type cachedDenial struct {
	res Result
	at  time.Time
}

func newLimiter(t *Table, cfg Config, b backend) *Limiter {
	l := &Limiter{backend: b, m: newMetrics(cfg.Registerer), log: cfg.Logger}
	if l.log == nil {
		l.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l.SetTable(t)
	return l
}

// SetTable swaps the plans atomically. Counters are keyed by plan and route
// key, not by limits, so changed limits apply to what is already counted; a
// renamed route or plan starts from zero.
func (l *Limiter) SetTable(t *Table) {
	if t == nil {
		t = &Table{}
	}
	l.table.Store(t)
	// Cached denials were decided under the old limits.
	l.denied.Clear()
}

// Table returns the plans in force.
func (l *Limiter) Table() *Table { return l.table.Load() }

// Take decides one request at now and, when it is allowed, counts it in every
// window of the caller's plan route. On a *BackendError the Result carries
// only Route; the caller applies its fail mode. Denied requests consume
// nothing.
func (l *Limiter) Take(ctx context.Context, k Key, now time.Time) (Result, error) {
	t := l.table.Load()
	r := t.match(t.normalize(k.Path))
	if r == nil {
		l.m.noRoute.Inc()
		return Result{Decision: NoRoute}, nil
	}
	pr := r.plans[k.Plan]
	if pr == nil {
		l.m.forbidden.Inc()
		return Result{Decision: Forbidden, Route: r.key}, nil
	}
	var ckey string
	if l.denied.Any() {
		ckey = k.Subject + "\x00" + pr.part
		if d, ok := l.denied.Get(ckey, now); ok {
			res := d.res
			el := max(now.Sub(d.at), 0)
			res.RetryAfter, res.Reset = max(res.RetryAfter-el, 0), max(res.Reset-el, 0)
			l.m.denied[res.Window].Inc()
			return res, nil
		}
	}
	c, allowed, err := l.backend.take(ctx, k.Subject, pr, now.UnixMilli())
	if err != nil {
		var be *BackendError
		if errors.As(err, &be) {
			l.m.backendError(be)
		}
		l.log.Debug("quota backend failed", "route", r.key, "plan", k.Plan, "err", err)
		return Result{Route: r.key}, err
	}
	res := decide(pr, &c, allowed)
	if allowed {
		l.m.allowed.Inc()
	} else {
		l.m.denied[res.Window].Inc()
		l.cacheDenial(k.Subject, ckey, pr, res, now)
	}
	return res, nil
}

// cacheDenial keeps a denial for the local cache's TTL, or until its
// RetryAfter when sooner: until then the window admits nothing whatever
// other replicas count (counts only grow), so the cached answer is the one
// Redis would give. A denial that retrying cannot help (RetryAfter 0: the
// lifetime spent, a limit of 0) is kept for the TTL.
func (l *Limiter) cacheDenial(subject, ckey string, pr *planRoute, res Result, now time.Time) {
	if l.denied == nil {
		return
	}
	if ckey == "" {
		ckey = subject + "\x00" + pr.part
	}
	until := now.Add(time.Hour) // the TTL bounds it
	if res.RetryAfter > 0 {
		until = now.Add(res.RetryAfter)
	}
	l.denied.Put(ckey, cachedDenial{res: res, at: now}, now, until)
}

// metrics are the Limiter's Prometheus series, resolved once so Take only
// increments.
type metrics struct {
	noRoute, forbidden, allowed prometheus.Counter
	denied                      [numWindows]prometheus.Counter
	redisTimeout, redisCanceled prometheus.Counter
	redisOther                  prometheus.Counter
	// evictions by kind: a window counter or a lifetime count.
	evictions [numClasses]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	decisions := prom.CounterVec("smartlayer_quota_decisions_total",
		"Quota decisions by result (allowed, denied, forbidden, no_route) and denying window (none unless denied).",
		"result", "window")
	redisErrors := prom.CounterVec("smartlayer_quota_redis_errors_total",
		"Quota Redis calls that failed, by kind (timeout, canceled, error); the fail mode decided those requests.", "kind")
	evictions := prom.CounterVec("smartlayer_quota_evictions_total",
		"Memory-backend counters evicted to stay within quota.memory.max_keys, by kind: window (per_minute/hour/day buckets) or lifetime (a lifetime count lost: use Redis with persistence).",
		"kind")
	decisions = register(reg, decisions)
	redisErrors = register(reg, redisErrors)
	evictions = register(reg, evictions)
	m := &metrics{
		noRoute:       decisions.WithLabelValues(NoRoute.String(), "none"),
		forbidden:     decisions.WithLabelValues(Forbidden.String(), "none"),
		allowed:       decisions.WithLabelValues(Allowed.String(), "none"),
		redisTimeout:  redisErrors.WithLabelValues("timeout"),
		redisCanceled: redisErrors.WithLabelValues("canceled"),
		redisOther:    redisErrors.WithLabelValues("error"),
	}
	m.evictions[classTimed] = evictions.WithLabelValues("window")
	m.evictions[classLife] = evictions.WithLabelValues("lifetime")
	for w := Window(0); w < numWindows; w++ {
		m.denied[w] = decisions.WithLabelValues(Denied.String(), w.String())
	}
	return m
}

// redisErrors returns the counter for one kind (tests).
func (m *metrics) redisErrors(kind string) prometheus.Counter {
	switch kind {
	case "timeout":
		return m.redisTimeout
	case "canceled":
		return m.redisCanceled
	}
	return m.redisOther
}

func (m *metrics) backendError(be *BackendError) {
	switch {
	case be.Timeout():
		m.redisTimeout.Inc()
	case errors.Is(be.Err, context.Canceled):
		m.redisCanceled.Inc()
	default:
		m.redisOther.Inc()
	}
}

// register registers c, or reuses the collector already registered under the
// same description, so two Limiters can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
