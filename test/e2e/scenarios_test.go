package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/smartlayer/smartlayer/internal/testenv"
	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"

// e2eConfig is the deployed shape with two test-only changes: generous
// time budgets, because this 2-core machine runs the whole suite at once
// and a fail-open answer would hide the decision under test.
const e2eConfig = `
server: {decision_budget: 2s}
store:
  backend: redis
  redis: {addrs: [%q], timeout: 1s}
behavior:
  deny_cidrs: [203.0.113.0/24]
quota:
  plans:
    free:    {"/api/generate/": {per_minute: 2, per_day: 100, lifetime: 1000}}
    premium: {"/api/generate/": {per_minute: 50}, "/api/analytics/": {per_minute: 100}}
accesslog:
  clickhouse: {addr: [%q], database: %s}
  flush_interval: 200ms
  spool_dir: %s
`

// tally counts what the simulated clients did, to compare with ClickHouse.
type tally struct {
	requests atomic.Int64
	denied   atomic.Int64
	// forged entries are stored like any other row (and never scored);
	// forgedNewIDs of them carry request ids nobody else has.
	forged       atomic.Int64
	forgedNewIDs atomic.Int64
}

type scenario struct {
	env *envoysim.Envoy
	t   *testing.T
	n   *tally
}

func (s *scenario) do(r *envoysim.Request) envoysim.Result {
	s.t.Helper()
	res, err := s.env.Do(ctxFor(s.t, 30*time.Second), r)
	if err != nil {
		s.t.Fatal(err)
	}
	s.n.requests.Add(1)
	if !res.Allowed {
		s.n.denied.Add(1)
	}
	return res
}

func get(client, path, ua string) *envoysim.Request {
	h := map[string]string{"accept": "text/html"}
	if ua != "" {
		h["user-agent"] = ua
	}
	return &envoysim.Request{Client: client, Method: "GET", Path: path, Headers: h}
}

// upstream plays the application: /reports/slow is slow, /missing is missing.
var upstream = envoysim.App(1800 * time.Millisecond)

func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	redis := testenv.StartRedis(t)
	chAddr := testenv.ClickHouseAddr(t)
	db := fmt.Sprintf("e2e_%d", time.Now().UnixNano())
	p := startAuthz(t, fmt.Sprintf(e2eConfig, redis.Addr, chAddr, db, t.TempDir()))
	n := &tally{}
	newEnvoy := func(node string) *scenario {
		env := envoysim.New(p.authzConn, p.alsConn, upstream, node)
		t.Cleanup(func() { _ = env.Close() })
		return &scenario{env: env, t: t, n: n}
	}

	// Normal users browse in the background while attackers run: a few
	// pages a second each, a realistic spread of paths, never denied.
	var wg sync.WaitGroup
	normalDenied := make(chan string, 64)
	for u := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newEnvoy(fmt.Sprintf("edge-normal-%d", u))
			client := fmt.Sprintf("198.51.100.%d", 10+u)
			pages := []string{"/", "/products", "/products/shoes", "/products/shoes/42", "/cart",
				"/about", "/search?q=running+shoes", "/products/hats", "/reports/slow", "/faq"}
			for i := range 60 {
				res := s.do(get(client, pages[(i*7+u)%len(pages)], browserUA))
				if !res.Allowed {
					normalDenied <- fmt.Sprintf("%s request %d: %d %s", client, i, res.Status, res.Reason)
				}
				time.Sleep(350 * time.Millisecond)
			}
			if err := s.env.Flush(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}

	tests := []struct {
		name string
		run  func(t *testing.T, s *scenario)
	}{
		{"empty user agent bot", func(t *testing.T, s *scenario) {
			res := s.do(get("192.0.2.10", "/products", ""))
			wantDenied(t, res, 403, "behavior.empty_user_agent")
		}},
		{"deny-listed network", func(t *testing.T, s *scenario) {
			wantDenied(t, s.do(get("203.0.113.5", "/", browserUA)), 403, "lists.deny_cidr")
		}},
		{"scraper burst", func(t *testing.T, s *scenario) {
			var first int
			for i := range 60 {
				res := s.do(get("192.0.2.20", fmt.Sprintf("/products/item-%d", i%9), browserUA))
				if !res.Allowed && first == 0 {
					first = i + 1
					wantDenied(t, res, 403, "behavior.request_burst")
				}
			}
			if first == 0 || first > 50 {
				t.Fatalf("scraper first denied at request %d, want ≤ 50", first)
			}
		}},
		{"sequential id prober", func(t *testing.T, s *scenario) {
			denied := 0
			for id := 1; id <= 40; id++ {
				res := s.do(get("192.0.2.30", fmt.Sprintf("/api/users/%d", id), browserUA))
				if !res.Allowed {
					if denied == 0 {
						if id <= 20 {
							t.Fatalf("denied inside the grace period at id %d: %s", id, res.Reason)
						}
						wantDenied(t, res, 403, "behavior.score")
					}
					denied++
				}
				time.Sleep(40 * time.Millisecond) // below the burst rule: the IDs give it away
			}
			if denied == 0 {
				t.Fatal("ID prober never denied")
			}
		}},
		{"sensitive path scanner with curl", func(t *testing.T, s *scenario) {
			// Admin and token paths are the behaviour rule's; /.env-style
			// restricted files are blocked at once by the payload check
			// (CRS 930130's family), asserted below.
			paths := []string{"/admin", "/wp-admin", "/api/token", "/admin/login", "/admin/users", "/api/token/refresh"}
			var res envoysim.Result
			for i := range 30 {
				res = s.do(get("192.0.2.40", paths[i%len(paths)], "curl/8.5.0"))
				if !res.Allowed {
					break
				}
				time.Sleep(40 * time.Millisecond)
			}
			wantDenied(t, res, 403, "behavior.score")
			wantDenied(t, s.do(get("192.0.2.41", "/.env", browserUA)), 403, "payload.path_traversal")
		}},
		{"sqli in query", func(t *testing.T, s *scenario) {
			wantDenied(t, s.do(get("192.0.2.50", "/search?q=1%27%20OR%20%271%27%3D%271", browserUA)), 403, "payload.sqli")
		}},
		{"xss in json body", func(t *testing.T, s *scenario) {
			r := get("192.0.2.51", "/api/comments", browserUA)
			r.Method, r.Body = "POST", []byte(`{"post": 7, "comment": {"text": "<script>alert(document.cookie)</script>"}}`)
			r.Headers["content-type"] = "application/json"
			wantDenied(t, s.do(r), 403, "payload.xss")
		}},
		{"path traversal", func(t *testing.T, s *scenario) {
			wantDenied(t, s.do(get("192.0.2.52", "/static/..%2f..%2f..%2fetc%2fpasswd", browserUA)), 403, "payload.path_traversal")
		}},
		{"large benign json body", func(t *testing.T, s *scenario) {
			var b strings.Builder
			b.WriteString(`{"items": [`)
			for i := range 600 {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"sku": "SKU-%05d", "name": "Trail running shoe, size %d", "note": "Ships in 2-3 days; O'Brien's pick <b>bold</b>", "qty": %d}`, i, 36+i%12, i%4+1)
			}
			b.WriteString(`]}`)
			r := get("192.0.2.53", "/api/orders", browserUA)
			r.Method, r.Body = "POST", []byte(b.String())
			r.Headers["content-type"] = "application/json"
			if res := s.do(r); !res.Allowed {
				t.Fatalf("benign %d-byte body denied: %s", b.Len(), res.Reason)
			}
		}},
		{"plan quota", func(t *testing.T, s *scenario) {
			free := func(path string) *envoysim.Request {
				r := get("192.0.2.60", path, browserUA)
				r.Method = "POST"
				r.Claims = map[string]any{"sub": "alice", "plan": "free"}
				return r
			}
			for i := range 2 {
				res := s.do(free("/api/generate/"))
				if !res.Allowed || res.Headers["ratelimit-limit"] == "" {
					t.Fatalf("free call %d: allowed=%v headers=%v", i+1, res.Allowed, res.Headers)
				}
			}
			res := s.do(free("/api/generate/"))
			wantDenied(t, res, 429, "quota.per_minute")
			if res.Headers["retry-after"] == "" {
				t.Fatalf("429 without Retry-After: %v", res.Headers)
			}
			wantDenied(t, s.do(free("/api/analytics/")), 403, "quota.plan_forbidden")

			prem := free("/api/generate/")
			prem.Claims = map[string]any{"sub": "bob", "plan": "premium"}
			if res := s.do(prem); !res.Allowed || res.Headers["ratelimit-remaining"] != "49" {
				t.Fatalf("premium: allowed=%v headers=%v", res.Allowed, res.Headers)
			}

			// Attack: claim a plan with headers instead of a verified token.
			// The headers are not identity: the caller is anonymous, and
			// the anonymous plan has no /api/analytics/ route.
			forged := get("192.0.2.61", "/api/analytics/", browserUA)
			forged.Headers["x-user-id"], forged.Headers["x-user-plan"] = "mallory", "premium"
			wantDenied(t, s.do(forged), 403, "quota.plan_forbidden")
			// A verified token without a plan claim does not take the header's.
			noPlan := get("192.0.2.62", "/api/analytics/", browserUA)
			noPlan.Claims = map[string]any{"sub": "carol"}
			noPlan.Headers["x-user-plan"] = "premium"
			wantDenied(t, s.do(noPlan), 403, "quota.plan_forbidden")

			// Attack: spell the route differently to get a fresh counter.
			// Every spelling is one route: the third call is over the
			// free plan's 2 a minute.
			variant := func(path string) *envoysim.Request {
				r := get("192.0.2.63", path, browserUA)
				r.Method = "POST"
				r.Claims = map[string]any{"sub": "dave", "plan": "free"}
				return r
			}
			for i, path := range []string{"/API/generate", "//api/./generate/;x=1"} {
				if res := s.do(variant(path)); !res.Allowed {
					t.Fatalf("variant %d %s denied: %s", i, path, res.Reason)
				}
			}
			for _, path := range []string{"/api/%2e/generate//", "/api%2Fgenerate/", "/api/generate"} {
				wantDenied(t, s.do(variant(path)), 429, "quota.per_minute")
			}
		}},
		{"slow-drip client over four days", func(t *testing.T, s *scenario) {
			// A few probes a day, well under every rate rule (and inside the
			// grace period), logged on today and the three days before.
			for day := 3; day >= 0; day-- {
				for i := range 4 {
					r := get("192.0.2.90", []string{"/.env", "/admin/config", "/.git/config", "/api/token"}[i], browserUA)
					r.Time = time.Now().UTC().AddDate(0, 0, -day).Add(-time.Duration(i) * time.Minute)
					if day == 0 {
						r.Time = time.Now().UTC().Add(-time.Duration(i) * time.Second)
					}
					s.do(r)
				}
			}
		}},
		{"forged access-log entries ban nobody", func(t *testing.T, s *scenario) {
			// Attack: whoever reaches the ALS port sends 500s "from" a
			// victim — never-decided request ids, and a real request's id
			// with the victim's address — to get the victim banned.
			victim := "192.0.2.72"
			real := s.do(get("192.0.2.73", "/products", browserUA))
			for i := range 40 {
				id := ""
				if i%2 == 0 {
					id = real.RequestID
				}
				s.env.Forge(get(victim, "/products", browserUA), id, 500)
				s.n.forged.Add(1)
				if id == "" {
					s.n.forgedNewIDs.Add(1)
				}
			}
			// Control in the same stream: a client whose real requests all
			// fail is banned, so the forged entries were processed too.
			for range 12 {
				s.do(get("192.0.2.74", "/missing/page", browserUA))
			}
			if err := s.env.Flush(ctxFor(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "control error-rate ban", func() error {
				if s.do(get("192.0.2.74", "/products", browserUA)).Allowed {
					return fmt.Errorf("control still allowed")
				}
				return nil
			})
			if res := s.do(get(victim, "/products", browserUA)); !res.Allowed {
				t.Fatalf("victim banned by forged entries: %s", res.Reason)
			}
		}},
		{"error responses feed back through the access log", func(t *testing.T, s *scenario) {
			var last envoysim.Result
			for range 12 {
				if last = s.do(get("192.0.2.70", "/missing/page", browserUA)); !last.Allowed {
					t.Fatalf("denied before any error was reported: %s", last.Reason)
				}
			}
			// Attack: the client re-sends one of its own entries dated
			// 2149 to push its error window into the future and dodge the
			// rule. Times are clamped to now: the ban still comes.
			s.env.ForgeAt(get("192.0.2.70", "/products", browserUA), last.RequestID, 200,
				time.Date(2149, 1, 1, 0, 0, 0, 0, time.UTC))
			s.n.forged.Add(1)
			if err := s.env.Flush(ctxFor(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			// 12 of 12 responses were 404: the next request is an instant
			// ban once the feedback reached behaviour scoring.
			var res envoysim.Result
			waitFor(t, 20*time.Second, "error-rate ban", func() error {
				res = s.do(get("192.0.2.70", "/products", browserUA))
				if res.Allowed {
					return fmt.Errorf("still allowed")
				}
				return nil
			})
			wantDenied(t, res, 403, "behavior.error_rate")
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newEnvoy(fmt.Sprintf("edge-%d", i))
			s.t = t
			tc.run(t, s)
			if err := s.env.Flush(ctxFor(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
		})
	}
	wg.Wait()
	close(normalDenied)
	for d := range normalDenied {
		t.Errorf("normal user denied: %s", d)
	}
	if t.Failed() {
		return
	}

	// Every request reached ClickHouse exactly once, denials marked.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := ctxFor(t, time.Minute)
	want := uint64(n.requests.Load())
	wantRows, wantIDs := want+uint64(n.forged.Load()), want+uint64(n.forgedNewIDs.Load())
	var rows, ids, blocked uint64
	waitFor(t, 30*time.Second, "access log rows", func() error {
		err := conn.QueryRow(ctx, "SELECT count(), uniqExact(request_id), countIf(blocked = 1) FROM "+db+".access_log").
			Scan(&rows, &ids, &blocked)
		if err != nil {
			return err
		}
		if rows < wantRows {
			return fmt.Errorf("%d of %d rows", rows, wantRows)
		}
		return nil
	})
	if rows != wantRows || ids != wantIDs || blocked != uint64(n.denied.Load()) {
		logCountsByNode(t, conn, db)
		t.Fatalf("access_log: %d rows, %d request ids, %d blocked; want %d, %d, %d", rows, ids, blocked, wantRows, wantIDs, n.denied.Load())
	}
	var reason, module string
	if err := conn.QueryRow(ctx, "SELECT block_reason, block_module FROM "+db+".access_log WHERE client_ip = '192.0.2.10'").Scan(&reason, &module); err != nil {
		t.Fatal(err)
	}
	if reason != "behavior.empty_user_agent" || module != "behavior" {
		t.Fatalf("empty-UA row: module %q reason %q", module, reason)
	}
	t.Logf("%d requests, %d denied, all in ClickHouse exactly once", want, n.denied.Load())

	// The daily report names the attackers and the slow endpoint.
	out := t.TempDir()
	report := exec.Command(filepath.Join(binaries(t), "reporter"), "--config", p.configFile,
		"--date", time.Now().UTC().Format("2006-01-02"), "--no-llm", "--out", out)
	stdout, err := report.Output()
	if err != nil {
		t.Fatalf("reporter: %v\n%s", err, stdout)
	}
	md, err := os.ReadFile(filepath.Join(out, "report-"+time.Now().UTC().Format("2006-01-02")+".md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.20", "192.0.2.30", "192.0.2.40", "/reports/slow", "192.0.2.90", "payload.sqli"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report does not mention %s", want)
		}
	}
	if !strings.Contains(string(stdout), "/reports/slow") {
		t.Errorf("report not printed to stdout")
	}
	if t.Failed() {
		t.Logf("report:\n%s", md)
	}
}

func wantDenied(t *testing.T, res envoysim.Result, status int, reason string) {
	t.Helper()
	if res.Allowed || res.Status != status || res.Reason != reason {
		t.Fatalf("got allowed=%v status=%d reason=%q, want %d %q (metadata %v)", res.Allowed, res.Status, res.Reason, status, reason, res.Metadata)
	}
	if res.Metadata["decision"] != "deny" || res.Metadata["reason"] != reason {
		t.Fatalf("dynamic metadata %v", res.Metadata)
	}
}

func logCountsByNode(t *testing.T, conn clickhouse.Conn, db string) {
	rows, err := conn.Query(context.Background(), "SELECT node_id, count() FROM "+db+".access_log GROUP BY node_id ORDER BY node_id")
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var node string
		var c uint64
		_ = rows.Scan(&node, &c)
		t.Logf("node %s: %d", node, c)
	}
}
