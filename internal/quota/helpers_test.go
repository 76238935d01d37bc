package quota

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// base is a UTC day boundary, so it also starts a minute and an hour bucket.
var base = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type plans = map[string]map[string]map[string]int64

func mustCompile(t testing.TB, p plans) *Table {
	t.Helper()
	tab, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

// uniq returns a subject no other test or run uses, since the shared Redis
// outlives a test run.
func uniq(t testing.TB, name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// newRedisClient is configured as NewRedis asks: the context bounds each
// call, a failed script is never retried, and a refused dial fails at once.
func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		Protocol:              2,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           time.Second,
		ReadTimeout:           3 * time.Second,
		WriteTimeout:          3 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type newFunc func(t testing.TB, tab *Table) *Limiter

// backends runs the same behaviour against memory and real Redis.
func backends() map[string]newFunc {
	return map[string]newFunc{
		"memory": func(t testing.TB, tab *Table) *Limiter {
			l, err := NewMemory(tab, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
		"redis": func(t testing.TB, tab *Table) *Limiter {
			l, err := NewRedis(newRedisClient(t, testenv.RedisAddr(t)), tab, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	}
}
