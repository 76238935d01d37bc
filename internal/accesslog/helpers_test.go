package accesslog

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

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

// schemaDB creates the schema in a fresh database on conn, without the TTL:
// the tests write rows of fixed past dates, which a >= 20.1 server would
// drop as expired whenever a merge runs.
func schemaDB(t testing.TB, conn driver.Conn) string {
	t.Helper()
	db := freshDB(t, conn)
	if err := EnsureSchema(testCtx(t), conn, db, WithRetentionDays(0)); err != nil {
		t.Fatal(err)
	}
	return db
}

// mustCHWriter is newCHWriter failing the test on error.
func mustCHWriter(t testing.TB, conn driver.Conn, db string) *chWriter {
	t.Helper()
	w, err := newCHWriter(conn, db)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runCHService starts New(cfg, conn, fb) with a fresh registry; wait
// returns Run's outcome once the service is closed.
func runCHService(t testing.TB, cfg Config, conn driver.Conn, fb Feedback) (s *Service, wait func()) {
	t.Helper()
	s, err := New(cfg, conn, fb, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s, runService(t, s)
}

// batchRows decodes every row of b, failing the test on error.
func batchRows(t testing.TB, b *batch) []Row {
	t.Helper()
	rows, err := b.rows()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// sendStreams opens streams access-log streams on c at once; each sends
// what fill gives it and waits for the server's answer.
func sendStreams(ctx context.Context, c alsv3.AccessLogServiceClient, streams int,
	fill func(i int, send func(*alsv3.StreamAccessLogsMessage) error) error) error {
	var g errgroup.Group
	for i := range streams {
		g.Go(func() error {
			st, err := c.StreamAccessLogs(ctx)
			if err != nil {
				return err
			}
			if err := fill(i, st.Send); err != nil {
				return err
			}
			_, err = st.CloseAndRecv()
			return err
		})
	}
	return g.Wait()
}
