package report

import (
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

func partitions(t testing.TB, conn driver.Conn, db string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT DISTINCT partition_id FROM system.parts WHERE database = ? AND table = 'access_log' AND active ORDER BY partition_id", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// TestRetention keeps exactly retention_days days before today and drops the
// rest, in dry-run only listing them.
func TestRetention(t *testing.T) { testenv.ForEachClickHouse(t, testRetention) }

func testRetention(t *testing.T, conn driver.Conn) {
	db := freshDB(t, conn)
	today := Date{2026, time.November, 21}
	for _, off := range []int{-45, -31, -30, -29, -1, 0} {
		insertTraffic(t, conn, db, traffic{today.AddDays(off), 10, map[string]string{"path": "'/x'"}})
	}
	clock := &fixedClock{today.Start(time.UTC).Add(3 * time.Hour)}
	r, err := New(conn, scenarioConfig(db), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	before := partitions(t, conn, db)
	if len(before) != 6 {
		t.Fatalf("partitions before = %v", before)
	}
	// today-30 is the oldest day kept: 30 full days before today.
	wantDropped := []Date{today.AddDays(-45), today.AddDays(-31)}
	tests := []struct {
		name    string
		dryRun  bool
		remain  []string
		dropped []Date
	}{
		{"dry run lists", true, before, wantDropped},
		{"drops old only", false, []string{"20261022", "20261023", "20261120", "20261121"}, wantDropped},
		{"second run has nothing to drop", false, []string{"20261022", "20261023", "20261120", "20261121"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Retention(testCtx(t), r.Today(), tc.dryRun)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.dropped) {
				t.Fatalf("dropped %+v, want %v", got, tc.dropped)
			}
			for i := range got {
				if got[i].Date != tc.dropped[i] {
					t.Errorf("dropped[%d] = %s, want %s", i, got[i].Date, tc.dropped[i])
				}
			}
			if remain := partitions(t, conn, db); len(remain) != len(tc.remain) || remain[0] != tc.remain[0] || remain[len(remain)-1] != tc.remain[len(tc.remain)-1] {
				t.Errorf("partitions left %v, want %v", remain, tc.remain)
			}
		})
	}
}

func TestPartitionDate(t *testing.T) {
	tests := map[string]struct {
		part, id string
		want     Date
		ok       bool
	}{
		"18.16":          {"2026-11-20", "20261120", Date{2026, 11, 20}, true},
		"quoted":         {"'2026-11-20'", "20261120", Date{2026, 11, 20}, true},
		"mismatch":       {"2026-11-21", "20261120", Date{}, false},
		"not a date id":  {"tuple()", "all", Date{}, false},
		"injection":      {"x", "2026112' OR 1", Date{}, false},
		"invalid day":    {"2026-02-30", "20260230", Date{}, false},
		"other key type": {"(20261120,'a')", "20261120-abc", Date{}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := partitionDate(tc.part, tc.id)
			if ok != tc.ok || got != tc.want {
				t.Errorf("partitionDate(%q, %q) = %v, %v; want %v, %v", tc.part, tc.id, got, ok, tc.want, tc.ok)
			}
		})
	}
}
