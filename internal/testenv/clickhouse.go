package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// OpenClickHouse connects to the ClickHouse at addr over the native
// protocol, closed when the test ends.
func OpenClickHouse(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr}, DialTimeout: 2 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		t.Fatalf("testenv: open clickhouse %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// OpenModernClickHouse connects to the test's current ClickHouse (26.x:
// chDB behind internal/testenv/chdbhttp) over HTTP, closed when the test
// ends. It is clickhouse-go's own client, so the code under test binds,
// sends and scans as against any server; only the native protocol is not
// exercised.
func OpenModernClickHouse(t testing.TB) driver.Conn {
	t.Helper()
	addr := ModernClickHouseAddr(t)
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{addr}, Protocol: clickhouse.HTTP, DialTimeout: 5 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		t.Fatalf("testenv: open chDB clickhouse %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// ForEachClickHouse runs f as a subtest on each ClickHouse generation the
// product's SQL must work on: "18.16" (Debian's server, native protocol; the
// schema's legacy branch) and "26.x" (chDB over HTTP; the >= 20.1 branch
// with LowCardinality, codecs and TTL). A missing server skips its subtest
// (fails it under CI=true). The two run one after the other: in parallel
// they shorten a package by seconds but raise the load that the timing-
// sensitive tests of other packages, run at the same time, feel (a killed
// server's spool replay under load); packages already run side by side.
func ForEachClickHouse(t *testing.T, f func(t *testing.T, conn driver.Conn)) {
	t.Helper()
	servers := []struct {
		name string
		open func(testing.TB) driver.Conn
	}{
		{"18.16", func(t testing.TB) driver.Conn { t.Helper(); return OpenClickHouse(t, ClickHouseAddr(t)) }},
		{"26.x", OpenModernClickHouse},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) { f(t, s.open(t)) })
	}
}

// FreshDatabase returns the name of a database no other test uses (it is
// not created), dropped when the test ends. Tests share one server, so
// each works in its own database.
func FreshDatabase(t testing.TB, conn driver.Conn, prefix string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := prefix + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	})
	return db
}
