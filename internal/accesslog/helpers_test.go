package accesslog

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// openCH connects to the ClickHouse at addr, closed when the test ends.
func openCH(t testing.TB, addr string) driver.Conn { return testenv.OpenClickHouse(t, addr) }

// freshDB returns the name of a database no other test uses, dropped at the end.
func freshDB(t testing.TB, conn driver.Conn) string {
	return testenv.FreshDatabase(t, conn, "sl_test_")
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
