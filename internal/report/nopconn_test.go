package report

import (
	"context"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// nopConn satisfies Conn for tests that never reach ClickHouse; any call fails.
type nopConn struct{}

var errNoClickHouse = errors.New("nopConn: no ClickHouse in this test")

func (nopConn) Query(context.Context, string, ...any) (driver.Rows, error) {
	return nil, errNoClickHouse
}
func (nopConn) QueryRow(context.Context, string, ...any) driver.Row { return nil }
func (nopConn) Exec(context.Context, string, ...any) error          { return errNoClickHouse }
func (nopConn) PrepareBatch(context.Context, string, ...driver.PrepareBatchOption) (driver.Batch, error) {
	return nil, errNoClickHouse
}
