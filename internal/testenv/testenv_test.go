package testenv

import (
	"context"
	"errors"
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

// TestModernClickHouse: the chDB front answers as a 26.x server does to
// clickhouse-go: its version, typed values at the client's protocol
// revision, server-side parameters, settings per request, and errors as
// ClickHouse exceptions with their codes.
func TestModernClickHouse(t *testing.T) {
	conn := OpenModernClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Version.Major < 26 {
		t.Fatalf("chDB reports ClickHouse %s, want 26.x or later", v)
	}
	var (
		lc   string
		arr  []uint64
		tup  []float64
		name string
	)
	if err := conn.QueryRow(ctx, "SELECT toLowCardinality('x'), [1, 2], arrayMap(x -> toFloat64(x), [0.5]), {n:String}",
		clickhouse.Named("n", "param")).Scan(&lc, &arr, &tup, &name); err != nil {
		t.Fatal(err)
	}
	if lc != "x" || len(arr) != 2 || arr[1] != 2 || len(tup) != 1 || tup[0] != 0.5 || name != "param" {
		t.Errorf("got %q %v %v %q", lc, arr, tup, name)
	}
	var setting string
	sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": 3}))
	if err := conn.QueryRow(sctx, "SELECT toString(getSetting('max_threads'))").Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if setting != "3" {
		t.Errorf("max_threads %q in a request that set it to 3", setting)
	}
	if err := conn.QueryRow(ctx, "SELECT toString(getSetting('max_threads'))").Scan(&setting); err != nil || setting == "3" {
		t.Errorf("max_threads %q (%v) after the request that set it: settings leak between requests", setting, err)
	}
	err = conn.Exec(ctx, "SELECT nosuchfunction(1)")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 46 {
		t.Errorf("unknown function: %v, want a ClickHouse exception with code 46", err)
	}
}
