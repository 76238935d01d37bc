package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/testenv"
	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

// topologyConfig: two authz processes on one Redis topology. Anonymous
// callers get 5 requests a minute on /api/items, counted per client IP.
const topologyConfig = `
server: {decision_budget: 2s, admin_token: e2e-admin}
store:
  backend: redis
  redis: {addrs: [%s], master_name: %q, timeout: %s}
quota:
  plans:
    anonymous: {"/api/items": {per_minute: 5}}
`

func quoted(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, ", ")
}

func fastUpstream(*envoysim.Request) (int, time.Duration) { return 200, time.Millisecond }

// pair starts two authz processes on the same store and an Envoy for each.
func pair(t *testing.T, cfg string) (*authzProcess, [2]*envoysim.Envoy) {
	t.Helper()
	a, b := startAuthz(t, cfg), startAuthz(t, cfg)
	return a, [2]*envoysim.Envoy{
		envoysim.New(a.authzConn, nil, fastUpstream, "edge-a"),
		envoysim.New(b.authzConn, nil, fastUpstream, "edge-b"),
	}
}

func check(t *testing.T, e *envoysim.Envoy, r *envoysim.Request) envoysim.Result {
	t.Helper()
	res, err := e.Do(ctxFor(t, 10*time.Second), r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// shareBansAndQuota: a ban decided by one replica holds on the other, a
// manual ban posted to one reaches the other, and quota counted by both
// stops at the plan's limit, for clients whose keys spread over the nodes.
func shareBansAndQuota(t *testing.T, admin string, env [2]*envoysim.Envoy) {
	t.Helper()
	wantDenied(t, check(t, env[0], get("192.0.2.10", "/products", "")), 403, "behavior.empty_user_agent")
	wantDenied(t, check(t, env[1], get("192.0.2.10", "/products", browserUA)), 403, "behavior.banned")

	for c := range 8 {
		ip := fmt.Sprintf("198.51.100.%d", c+1)
		for i := range 5 {
			if res := check(t, env[i%2], get(ip, "/api/items", browserUA)); !res.Allowed {
				t.Fatalf("%s request %d: denied %d %s", ip, i+1, res.Status, res.Reason)
			}
		}
		wantDenied(t, check(t, env[c%2], get(ip, "/api/items", browserUA)), 429, "quota.per_minute")
	}

	req, _ := http.NewRequest("POST", "http://"+admin+"/v1/bans",
		strings.NewReader(`{"ip": "192.0.2.99", "reason": "e2e", "ttl": "10m"}`))
	req.Header.Set("Authorization", "Bearer e2e-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /v1/bans: %d", resp.StatusCode)
	}
	waitFor(t, 5*time.Second, "manual ban on the other replica", func() error {
		if res := check(t, env[1], get("192.0.2.99", "/products", browserUA)); res.Allowed {
			return fmt.Errorf("still allowed")
		}
		return nil
	})
}

// Two authz binaries share bans and quota through a 3-master Redis Cluster.
func TestTwoReplicasOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	rc := testenv.StartRedisCluster(t, 3)
	a, env := pair(t, fmt.Sprintf(topologyConfig, quoted(rc.Addrs), "", "1s"))
	shareBansAndQuota(t, a.admin, env)
}

// Two authz binaries share bans and quota through a Sentinel-watched
// master and replica; then the master is killed under load. While the
// Sentinels elect the replica the Checks get fail-mode answers; a banned
// client is never allowed by anything but the fail mode, and after the
// failover bans and quota work on the new master.
func TestTwoReplicasOnSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	rs := testenv.StartRedisSentinel(t)
	a, env := pair(t, fmt.Sprintf(topologyConfig, quoted(rs.Sentinels), rs.MasterName, "200ms"))
	shareBansAndQuota(t, a.admin, env)

	// The banned client's ban is on the replica before the master dies:
	// replication is asynchronous, so a ban written in the last moment
	// before a crash can be lost with the master (README, Scaling out).
	const banned = "192.0.2.10"
	rs.WaitReplicated(t)

	type answer struct {
		at       time.Time
		banned   bool
		allowed  bool
		failMode bool
		reason   string
	}
	var (
		mu      sync.Mutex
		answers []answer
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				ip, isBanned := fmt.Sprintf("198.18.%d.%d", w, i%200+1), i%3 == 0
				if isBanned {
					ip = banned
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := env[(w+i)%2].Do(ctx, get(ip, "/products", browserUA))
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				answers = append(answers, answer{at: time.Now(), banned: isBanned, allowed: res.Allowed,
					failMode: res.Metadata["module"] == "failmode", reason: fmt.Sprint(res.Metadata["reason"])})
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	killed := time.Now()
	rs.Master.Stop()
	waitFor(t, 30*time.Second, "sentinels promote the replica", func() error {
		m, err := rs.MasterAddr(context.Background())
		if err != nil {
			return err
		}
		if m != rs.Replica.Addr {
			return fmt.Errorf("master still %s", m)
		}
		return nil
	})
	promoted := time.Now()
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()

	var failModes, wrong, total int
	var lastFail time.Time
	for _, a := range answers {
		total++
		if a.failMode {
			failModes++
			lastFail = a.at
			continue
		}
		if a.banned && (a.allowed || a.reason != "behavior.banned") {
			wrong++
			t.Errorf("banned client at +%v: allowed=%v reason=%s", a.at.Sub(killed), a.allowed, a.reason)
		}
	}
	t.Logf("%d checks; master killed, replica promoted after %v; %d fail-mode answers, the last at +%v; %d wrong answers for the banned client",
		total, promoted.Sub(killed).Round(time.Millisecond), failModes, lastFail.Sub(killed).Round(time.Millisecond), wrong)
	if failModes > 0 && lastFail.After(promoted.Add(2*time.Second)) {
		t.Errorf("fail-mode answers went on %v after the promotion", lastFail.Sub(promoted))
	}
	var after int
	for _, a := range answers {
		if a.at.After(promoted.Add(2*time.Second)) && !a.failMode {
			after++
		}
	}
	if after == 0 {
		t.Fatal("no store-backed answer after the failover")
	}

	// The new master takes writes: a ban by one replica holds on the other,
	// and quota counts again.
	wantDenied(t, check(t, env[1], get("192.0.2.11", "/products", "")), 403, "behavior.empty_user_agent")
	wantDenied(t, check(t, env[0], get("192.0.2.11", "/products", browserUA)), 403, "behavior.banned")
	for i := range 5 {
		if res := check(t, env[i%2], get("198.51.100.200", "/api/items", browserUA)); !res.Allowed {
			t.Fatalf("after failover, request %d: denied %d %s", i+1, res.Status, res.Reason)
		}
	}
	wantDenied(t, check(t, env[0], get("198.51.100.200", "/api/items", browserUA)), 429, "quota.per_minute")
}
