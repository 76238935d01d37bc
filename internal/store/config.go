package store

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/setting"
)

// Backend selects where behaviour and quota state live.
type Backend string

// Store backends.
const (
	// BackendMemory keeps state in the process: the default for one
	// replica and for `make run`.
	BackendMemory Backend = "memory"
	// BackendRedis shares state between replicas and survives restarts.
	BackendRedis Backend = "redis"
)

// Config selects and sizes the state store (store.*).
type Config struct {
	Backend Backend      `koanf:"backend"`
	Redis   RedisConfig  `koanf:"redis"`
	Memory  MemoryConfig `koanf:"memory"`
}

// RedisConfig is the shared Redis for several replicas (store.redis.*).
type RedisConfig struct {
	Addr     string         `koanf:"addr"`
	Username string         `koanf:"username"`
	Password setting.Secret `koanf:"password"`
	DB       int            `koanf:"db"`
	// Timeout bounds each request-path call; past it the fail mode answers.
	Timeout  time.Duration `koanf:"timeout"`
	PoolSize int           `koanf:"pool_size"`
}

// MemoryConfig bounds the in-process store (store.memory.*).
type MemoryConfig struct {
	MaxTrackedClients int `koanf:"max_tracked_clients"`
	MaxBans           int `koanf:"max_bans"`
}

// DefaultConfig returns the memory backend, and Redis settings that keep a
// slow Redis inside the decision budget once it is chosen.
func DefaultConfig() Config {
	return Config{
		Backend: BackendMemory,
		Redis:   RedisConfig{Addr: "127.0.0.1:6379", Timeout: 5 * time.Millisecond, PoolSize: 64},
		Memory:  MemoryConfig{MaxTrackedClients: 1_000_000, MaxBans: 100_000},
	}
}

// Validate reports every problem at once, named by its YAML key (store.*).
func (c Config) Validate() error {
	p := setting.Section("store")
	p.OneOf("backend", string(c.Backend), string(BackendMemory), string(BackendRedis))
	if c.Backend == BackendRedis {
		p.Addr("redis.addr", c.Redis.Addr, true)
	}
	p.Positive("redis.timeout", c.Redis.Timeout)
	p.NonNegative("redis.db", c.Redis.DB)
	p.AtLeast("redis.pool_size", c.Redis.PoolSize, 1)
	p.AtLeast("memory.max_tracked_clients", c.Memory.MaxTrackedClients, 1)
	p.AtLeast("memory.max_bans", c.Memory.MaxBans, 1)
	return p.Err()
}

// NewRedisClient returns the Redis client behaviour scoring and quotas
// share. Its settings keep a slow or dead Redis inside the decision budget:
// deadlines come from each call's context, a failed dial is not retried
// five times, and a script whose reply was lost is not re-run (it would
// count a request twice).
func NewRedisClient(c RedisConfig) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: c.Addr, Username: c.Username, Password: c.Password.Reveal(), DB: c.DB,
		PoolSize:              c.PoolSize,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
}
