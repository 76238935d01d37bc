package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/smartlayer/smartlayer/internal/testenv"
	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

// clusterConfig is e2eConfig with the access log on a ClickHouse cluster:
// authz is given one node and finds the others in system.clusters.
const clusterConfig = `
server: {decision_budget: 2s}
store:
  backend: redis
  redis: {addrs: [%q], timeout: 1s}
accesslog:
  clickhouse: {addr: [%q], database: %s, cluster: %s}
  flush_interval: 200ms
  spool_dir: %s
report:
  retention_days: 30
`

// TestClickHouseCluster runs authz against the 2-shard cluster of
// scripts/testenv.sh: rows Envoy logs go through the Distributed table to
// both shards, the reporter's totals count every one of them, and retention
// drops an expired day from both shards.
func TestClickHouseCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	cluster, addrs := testenv.ClickHouseCluster(t)
	redis := testenv.StartRedis(t)
	db := fmt.Sprintf("e2e_cluster_%d", time.Now().UnixNano())
	ctx := ctxFor(t, 3*time.Minute)
	var nodes []clickhouse.Conn
	for _, a := range addrs {
		n := testenv.OpenClickHouse(t, a)
		t.Cleanup(func() { _ = n.Exec(ctxFor(t, 30*time.Second), "DROP DATABASE IF EXISTS "+db) })
		nodes = append(nodes, n)
	}
	p := startAuthz(t, fmt.Sprintf(clusterConfig, redis.Addr, addrs[0], db, cluster, t.TempDir()))
	// authz creates the tables in the background (it serves without
	// ClickHouse); rows sent before would only wait in the spool.
	waitFor(t, 30*time.Second, "distributed tables on every node", func() error {
		for i, n := range nodes {
			var c uint64
			if err := n.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND engine = 'Distributed'", db).
				Scan(&c); err != nil {
				return err
			}
			if c != 2 {
				return fmt.Errorf("node %d has %d Distributed tables", i+1, c)
			}
		}
		return nil
	})

	began := time.Now()
	env := envoysim.New(p.authzConn, p.alsConn, upstream, "edge-cluster")
	t.Cleanup(func() { _ = env.Close() })
	// Today: browsing by 40 clients, decided by authz and logged by Envoy.
	const clients, perClient = 40, 10
	pages := []string{"/", "/products", "/products/shoes", "/cart", "/about", "/faq", "/missing"}
	for c := range clients {
		for i := range perClient {
			if _, err := env.Do(ctx, get(fmt.Sprintf("198.51.100.%d", 10+c), pages[(c+i)%len(pages)], browserUA)); err != nil {
				t.Fatal(err)
			}
		}
	}
	today := uint64(clients * perClient)
	// An expired day: entries from 40 days ago, past retention_days.
	const expired = 40
	old := time.Now().UTC().AddDate(0, 0, -40)
	for i := range expired {
		env.ForgeAt(get(fmt.Sprintf("192.0.2.%d", i), "/old", browserUA), "", 200, old)
	}
	if err := env.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries sent in %v", today+expired, time.Since(began).Round(time.Millisecond))

	// The Distributed table forwards the other shard's rows in the
	// background: wait until all are there.
	var total uint64
	waitFor(t, 60*time.Second, "rows through the Distributed table", func() error {
		if err := nodes[1].QueryRow(ctx, "SELECT count() FROM "+db+".access_log").Scan(&total); err != nil {
			return err
		}
		if total < today+expired {
			return fmt.Errorf("%d of %d rows", total, today+expired)
		}
		return nil
	})
	t.Logf("all in the Distributed table after %v", time.Since(began).Round(time.Millisecond))
	if total != today+expired {
		t.Fatalf("access_log has %d rows, sent %d", total, today+expired)
	}
	localRows := func(i int, where string) uint64 {
		var n uint64
		if err := nodes[i].QueryRow(ctx, "SELECT count() FROM "+db+".access_log_local WHERE "+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	oldDay := "date = toDate('" + old.Format("2006-01-02") + "')"
	var sum uint64
	for i := range nodes {
		n, o := localRows(i, "1"), localRows(i, oldDay)
		t.Logf("shard %d: %d rows, %d of them expired", i+1, n, o)
		// 400 and 40 rows hashed by request id: an empty shard would be a
		// sharding bug, not chance (odds 2^-39).
		if n == 0 || o == 0 {
			t.Errorf("shard %d holds %d rows, %d expired; want rows of both days on every shard", i+1, n, o)
		}
		sum += n
	}
	if sum != total {
		t.Errorf("shards hold %d rows together, the Distributed table %d", sum, total)
	}

	// The reporter (same config: the cluster) counts every row of today
	// and drops the expired day on both shards.
	date := time.Now().UTC().Format("2006-01-02")
	out, err := exec.Command(filepath.Join(binaries(t), "reporter"), "--config", p.configFile,
		"--date", date, "--no-llm", "--out", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("reporter: %v\n%s", err, out)
	}
	t.Logf("reporter done after %v", time.Since(began).Round(time.Millisecond))
	var reported uint64
	if err := nodes[1].QueryRow(ctx, "SELECT total FROM "+db+".daily_reports FINAL WHERE date = toDate(?)", date).
		Scan(&reported); err != nil {
		t.Fatalf("read the stored report: %v\n%s", err, out)
	}
	if reported != today {
		t.Errorf("report total %d, sent %d today\n%s", reported, today, out)
	}
	for i := range nodes {
		if o := localRows(i, oldDay); o != 0 {
			t.Errorf("shard %d still holds %d expired rows after retention\n%s", i+1, o, out)
		}
		var parts uint64
		if err := nodes[i].QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'access_log_local' "+
			"AND active AND partition_id = ?", db, old.Format("20060102")).Scan(&parts); err != nil {
			t.Fatal(err)
		}
		if parts != 0 {
			t.Errorf("shard %d: expired partition still has %d active parts", i+1, parts)
		}
	}
	if got := localRows(0, "1") + localRows(1, "1"); got != today {
		t.Errorf("%d rows left after retention, want today's %d", got, today)
	}
}

// TestClusterStartsWithClickHouseDown: with a cluster configured and its
// node unreachable, authz still starts, is ready and decides (the schema
// is retried in the background; the access log spools).
func TestClusterStartsWithClickHouseDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	redis := testenv.StartRedis(t)
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := startAuthz(t, fmt.Sprintf(clusterConfig, redis.Addr, dead, "chdown_cluster", "smartlayer_test", t.TempDir()))
	env := envoysim.New(p.authzConn, p.alsConn, upstream, "edge-cluster-down")
	t.Cleanup(func() { _ = env.Close() })
	res, err := env.Do(ctxFor(t, 30*time.Second), get("198.51.100.9", "/", browserUA))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allowed {
		t.Fatalf("a browser's request denied with ClickHouse down: %d %s", res.Status, res.Reason)
	}
	waitFor(t, 30*time.Second, "schema retry logged", func() error {
		if !strings.Contains(p.out.String(), "clickhouse schema not ready") {
			return fmt.Errorf("no retry in the log yet")
		}
		return nil
	})
}
