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
