package report

import (
	"testing"

	"go.uber.org/goleak"
)

// The SMTP test server, webhook servers and ClickHouse connections must all
// be gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
