package report

import (
	"os"
	"testing"
	"time"
)

// BenchmarkReport10M times the whole report (aggregation, narrative,
// rendering, storage, retention) over one day of 10 M access-log rows
// generated in ClickHouse. Generating the rows takes a while, so it runs
// only with SMARTLAYER_BENCH_REPORT=1:
//
//	SMARTLAYER_BENCH_REPORT=1 scripts/testenv.sh go test -run '^$' -bench Report10M -benchtime 3x ./internal/report/
func BenchmarkReport10M(b *testing.B) {
	if os.Getenv("SMARTLAYER_BENCH_REPORT") != "1" {
		b.Skip("set SMARTLAYER_BENCH_REPORT=1 to generate 10 M rows and time the report")
	}
	const rows = 10_000_000
	conn := openCH(b)
	db := freshDB(b, conn)
	start := time.Now()
	// 50 routes with 1000 paths each, a 1 % scanner tail of unique paths,
	// 100k users and 50k anonymous IPs, 3 % 4xx, 1 % 5xx, 1 % blocked, and
	// a latency spread of 1..500 ms with a slow route.
	insertTraffic(b, conn, db, traffic{scenarioDay, rows, map[string]string{
		"path": "if(number % 100 = 0, concat('/scan/', toString(number)), " +
			"concat('/api/r', toString(number % 50), '/', toString(intHash32(number) % 1000)))",
		"route_name":   "if(number % 100 = 0, '', concat('route', toString(number % 50)))",
		"user_id":      "if(number % 5 = 0, '', concat('u', toString(intHash32(number) % 100000)))",
		"client_ip":    "if(number % 5 = 0, concat('10.0.', toString(intHash32(number) % 200), '.', toString(intHash64(number) % 250)), '')",
		"status":       "toUInt16(multiIf(number % 100 = 1, 500, number % 100 < 5, 404, number % 100 = 7, 403, 200))",
		"blocked":      "toUInt8(number % 100 = 7)",
		"block_module": "if(number % 100 = 7, 'behavior', '')",
		"block_reason": "if(number % 100 = 7, 'behavior.sensitive_path', '')",
		"duration_ms":  "toUInt32(if(number % 50 = 3, 1500 + intHash32(number) % 500, 1 + intHash32(number) % 500))",
		"bytes_out":    "toUInt64(intHash32(number) % 10000)",
	}})
	b.Logf("generated %d rows in %s", rows, time.Since(start).Round(time.Millisecond))
	cfg := scenarioConfig(db)
	r, err := New(conn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := testCtx(b)
	b.ResetTimer()
	for b.Loop() {
		res, err := r.Run(ctx, RunOptions{Date: scenarioDay})
		if err != nil {
			b.Fatal(err)
		}
		if res.Report.Aggregates.Totals.Requests != rows {
			b.Fatalf("report counted %d rows", res.Report.Aggregates.Totals.Requests)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
