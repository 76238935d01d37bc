package testenv

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
)

// TestSharedServices proves `make test` gives the suite a real Redis and a
// real ClickHouse and prints their versions.
func TestSharedServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr(t)})
	defer rdb.Close()
	info, err := rdb.InfoMap(ctx, "server").Result()
	if err != nil {
		t.Fatalf("redis INFO: %v", err)
	}
	t.Logf("redis %s at %s", info["Server"]["redis_version"], RedisAddr(t))

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ClickHouseAddr(t)}})
	if err != nil {
		t.Fatalf("clickhouse open: %v", err)
	}
	defer conn.Close()
	v, err := conn.ServerVersion()
	if err != nil {
		t.Fatalf("clickhouse version: %v", err)
	}
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT toUInt8(1)").Scan(&one); err != nil || one != 1 {
		t.Fatalf("clickhouse SELECT 1 = %d, %v", one, err)
	}
	t.Logf("clickhouse %s at %s", v, ClickHouseAddr(t))
}

func TestPrivateServersRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	r := StartRedis(t)
	r.Stop()
	if err := redisPing(r.Addr); err == nil {
		t.Fatal("redis still answers after Stop")
	}
	r.Start()
	if err := redisPing(r.Addr); err != nil {
		t.Fatalf("redis after restart: %v", err)
	}
	ch := StartClickHouse(t)
	ch.Stop()
	ch.Start()
	if err := ch.ready(); err != nil {
		t.Fatalf("clickhouse after restart: %v", err)
	}
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewClock(t0)
	c.Add(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after Add: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("after Set: %v", got)
	}
}

func TestBufferAndWriteFile(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, _ = b.Write([]byte("ab")) })
	}
	wg.Wait()
	if b.String() != "abababab" {
		t.Fatalf("buffer %q", b.String())
	}
	p := WriteFile(t, "x.yaml", "k: v")
	if data, err := os.ReadFile(p); err != nil || string(data) != "k: v" || filepath.Base(p) != "x.yaml" {
		t.Fatalf("WriteFile %s: %q %v", p, data, err)
	}
}
