package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/smartlayer/smartlayer/internal/testenv"
)

// Issue 19: the report must never call a day good while smartlayer let
// requests through unchecked, and must read like an on-call summary.

// TestFailOpenDay: every Check overran its budget. The day is critical,
// the fail-opens have their own table and are not filed as shadow.
func TestFailOpenDay(t *testing.T) { testenv.ForEachClickHouse(t, testFailOpenDay) }

func testFailOpenDay(t *testing.T, conn driver.Conn) {
	tests := map[string]struct {
		failOpen, checked int
		unchecked         map[string]string // extra rows without an authz answer
		want              Health
		wantFailed        uint64
	}{
		"99 % fail-open":  {failOpen: 990, checked: 10, want: HealthCritical, wantFailed: 990},
		"0.5 % fail-open": {failOpen: 5, checked: 995, want: HealthDegraded, wantFailed: 5},
		"Envoy served unchecked": {checked: 1000, want: HealthCritical, wantFailed: 50,
			unchecked: map[string]string{"status": "toUInt16(200)"}},
		"Envoy's own 401s are no fail-open": {checked: 1000, want: HealthGood, wantFailed: 0,
			unchecked: map[string]string{"status": "toUInt16(401)"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db := freshDB(t, conn)
			insertTraffic(t, conn, db, traffic{scenarioDay, tc.checked, map[string]string{
				"path": "concat('/api/items/', toString(number))", "duration_ms": "toUInt32(20)",
				"user_id": "concat('u', toString(number % 50))", "decision": "'allowed'",
			}})
			if tc.failOpen > 0 {
				insertTraffic(t, conn, db, traffic{scenarioDay, tc.failOpen, map[string]string{
					"path": "'/api/search'", "duration_ms": "toUInt32(60)", "user_id": "concat('u', toString(number % 50))",
					"block_module": "'failmode'", "block_reason": "'failmode.budget_exceeded'", "decision": "'failed_open'",
				}})
			}
			if tc.unchecked != nil {
				cols := map[string]string{"path": "'/api/search'", "decision": "'unchecked'"}
				for k, v := range tc.unchecked {
					cols[k] = v
				}
				insertTraffic(t, conn, db, traffic{scenarioDay, 50, cols})
			}
			r, agg := scenarioAggregate(t, conn, db)
			if agg.Health != tc.want || agg.Totals.FailedOpen != tc.wantFailed {
				t.Fatalf("health %s, failed open %d; want %s, %d (reasons %v)", agg.Health, agg.Totals.FailedOpen,
					tc.want, tc.wantFailed, agg.HealthReasons)
			}
			if agg.Totals.ShadowBlocked != 0 {
				t.Errorf("shadow = %d: fail-opens are not shadow denials", agg.Totals.ShadowBlocked)
			}
			for _, b := range agg.Blocks {
				if b.Module == "failmode" {
					t.Errorf("fail-mode answers listed as blocks: %+v", b)
				}
			}
			rep, err := r.Build(testCtx(t), scenarioDay, agg, BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFailed == 0 {
				if len(agg.FailOpen) != 0 || !strings.Contains(rep.Markdown, "None: every request got a decision") {
					t.Errorf("fail-open table %+v on a day without fail-open", agg.FailOpen)
				}
				return
			}
			if !strings.Contains(agg.HealthReasons[0], "fail-open") {
				t.Errorf("first health reason %q, want the fail-open clause", agg.HealthReasons[0])
			}
			reason := "failmode.budget_exceeded"
			if tc.failOpen == 0 {
				reason = "unchecked"
			}
			if len(agg.FailOpenReasons) != 1 || agg.FailOpenReasons[0].Reason != reason || agg.FailOpenReasons[0].Requests != tc.wantFailed {
				t.Errorf("fail-open reasons %+v, want %s %d", agg.FailOpenReasons, reason, tc.wantFailed)
			}
			var byHour uint64
			for _, f := range agg.FailOpen {
				byHour += f.Requests
			}
			if byHour != tc.wantFailed || len(agg.FailOpen) == 0 {
				t.Errorf("fail-open by hour sums to %d over %d rows, want %d", byHour, len(agg.FailOpen), tc.wantFailed)
			}
			for name, doc := range map[string]string{"markdown": rep.Markdown, "html": rep.HTML} {
				for _, want := range []string{strings.ToUpper(string(tc.want)), "Unchecked requests (fail-open)", "passed WITHOUT a check"} {
					if !strings.Contains(doc, want) {
						t.Errorf("%s lacks %q", name, want)
					}
				}
				if strings.Contains(doc, "Nothing stands out") {
					t.Errorf("%s says nothing stands out on a fail-open day", name)
				}
			}
			if !strings.Contains(rep.Markdown, md(reason)) {
				t.Errorf("markdown lacks the reason %s", reason)
			}
			if !strings.Contains(rep.Narrative.Recommendations[0], "unchecked") {
				t.Errorf("first recommendation %q is not about the fail-open", rep.Narrative.Recommendations[0])
			}
		})
	}
}

// TestPathTemplate runs PathTemplateSQL on the server.
func TestPathTemplate(t *testing.T) { testenv.ForEachClickHouse(t, testPathTemplate) }

func testPathTemplate(t *testing.T, conn driver.Conn) {
	cases := map[string]string{
		"/items/42":        "/items/{id}",
		"/products/item-7": "/products/item-{id}",
		"/doc:42:x":        "/doc:{id}:x",
		"/o/3fa85f64-5717-4562-b3fc-2c963f66afa6.json": "/o/{id}.json",
		"/blob/9f86d081884c7d659a2feaa0c55ad015":       "/blob/{id}",
		"/users/12/orders/34":                          "/users/{id}/orders/{id}",
		"/1/2/3":                                       "/{id}/{id}/{id}",
		"/v1/":                                         "/v1/",
		"/api2/x":                                      "/api2/x",
		"/a/123abc":                                    "/a/123abc",
		"/":                                            "/",
	}
	// A ':' in the text would make clickhouse-go send every query using the
	// template with server-side parameters, leaving @name unbound (idSegment).
	if strings.Contains(PathTemplateSQL, ":") {
		t.Fatal("PathTemplateSQL contains ':'")
	}
	for in, want := range cases {
		var got string
		if err := conn.QueryRow(testCtx(t), "SELECT "+PathTemplateSQL+" FROM (SELECT ? AS path)", in).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("template(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRouteGrouping: a generic route name ("app", or one name for nearly all
// traffic) groups by path template; a specific one stays.
func TestRouteGrouping(t *testing.T) { testenv.ForEachClickHouse(t, testRouteGrouping) }

func testRouteGrouping(t *testing.T, conn driver.Conn) {
	t.Run("generic names", func(t *testing.T) {
		db := freshDB(t, conn)
		insertTraffic(t, conn, db, traffic{scenarioDay, 900, map[string]string{
			"route_name": "'app'", "path": "concat('/products/item-', toString(number % 9))", "duration_ms": "toUInt32(30)"}})
		insertTraffic(t, conn, db, traffic{scenarioDay, 300, map[string]string{
			"route_name": "'default'", "path": "concat('/orders/', toString(generateUUIDv4()))", "duration_ms": "toUInt32(10)"}})
		insertTraffic(t, conn, db, traffic{scenarioDay, 200, map[string]string{
			"route_name": "'checkout'", "path": "'/api/checkout'", "duration_ms": "toUInt32(90)"}})
		agg := aggregate(t, conn, db)
		want := map[string]struct {
			n  uint64
			by string
		}{"/products/item-{id}": {900, "path"}, "/orders/{id}": {300, "path"}, "checkout": {200, "route"}}
		if len(agg.BusiestRoutes) != len(want) {
			t.Fatalf("busiest = %+v, want %d endpoints", agg.BusiestRoutes, len(want))
		}
		for _, r := range agg.BusiestRoutes {
			if w, ok := want[r.Route]; !ok || r.Requests != w.n || r.By != w.by {
				t.Errorf("endpoint %+v, want %+v", r, w)
			}
		}
	})
	t.Run("one name for nearly everything", func(t *testing.T) {
		db := freshDB(t, conn)
		insertTraffic(t, conn, db, traffic{scenarioDay, 1000, map[string]string{
			"route_name": "'inbound|8080||'", "path": "concat('/products/', toString(number % 9))"}})
		agg := aggregate(t, conn, db)
		if len(agg.BusiestRoutes) != 1 || agg.BusiestRoutes[0].Route != "/products/{id}" {
			t.Errorf("busiest = %+v, want /products/{id}", agg.BusiestRoutes)
		}
	})
}

func aggregate(t *testing.T, conn Conn, db string) *Aggregates {
	t.Helper()
	_, agg := scenarioAggregate(t, conn, db)
	return agg
}

// scenarioAggregate aggregates scenarioDay in db with scenarioConfig and
// returns the reporter too, to build the report.
func scenarioAggregate(t *testing.T, conn Conn, db string) (*Reporter, *Aggregates) {
	t.Helper()
	r, err := New(conn, scenarioConfig(db))
	if err != nil {
		t.Fatal(err)
	}
	agg, err := r.Aggregate(testCtx(t), scenarioDay)
	if err != nil {
		t.Fatal(err)
	}
	return r, agg
}

// TestBansAndClients: the ban's trigger is found behind behavior.banned,
// a client has the same numbers in both client tables, and it gets first
// and last seen and its hourly blocks.
func TestBansAndClients(t *testing.T) { testenv.ForEachClickHouse(t, testBansAndClients) }

func testBansAndClients(t *testing.T, conn driver.Conn) {
	db := freshDB(t, conn)
	const ip = "203.0.113.9"
	// 240 rows over the day from one new client: the first 20 allowed, one
	// burst denial at row 20, then banned.
	insertTraffic(t, conn, db, traffic{scenarioDay, 240, map[string]string{
		"client_ip":    sqlString(ip),
		"path":         "concat('/api/items/', toString(number))",
		"status":       "toUInt16(if(number < 20, 200, 403))",
		"blocked":      "toUInt8(number >= 20)",
		"block_module": "if(number >= 20, 'behavior', '')",
		"block_reason": "multiIf(number = 20, 'behavior.request_burst', number > 20, 'behavior.banned', '')",
	}})
	insertTraffic(t, conn, db, traffic{scenarioDay, 1000, map[string]string{"path": "'/ok'", "user_id": "'u1'"}})
	agg := aggregate(t, conn, db)
	if len(agg.BanTriggers) != 1 || agg.BanTriggers[0] != (BanTrigger{Trigger: "behavior.request_burst", Clients: 1, BannedRequests: 219, TriggerRequests: 1}) {
		t.Errorf("ban triggers %+v", agg.BanTriggers)
	}
	top, ok1 := findClient(agg.TopBlockedClients, "ip:"+ip)
	nw, ok2 := findClient(agg.NewBlockedClients, "ip:"+ip)
	if !ok1 || !ok2 {
		t.Fatalf("client missing: top %+v new %+v", agg.TopBlockedClients, agg.NewBlockedClients)
	}
	if fmt.Sprint(top) != fmt.Sprint(nw) {
		t.Errorf("the same client differs between tables:\n top %+v\n new %+v", top, nw)
	}
	if top.Requests != 240 || top.Blocked != 220 || top.Trigger != "behavior.request_burst" ||
		top.FirstSeen != "00:00:00" || top.LastSeen != "23:54:00" || len(top.HourlyBlocked) != 24 {
		t.Errorf("client %+v", top)
	}
	var sum uint64
	for _, n := range top.HourlyBlocked {
		sum += n
	}
	if sum != 220 || top.HourlyBlocked[0] != 0 || top.HourlyBlocked[23] != 10 {
		t.Errorf("hourly blocked %v", top.HourlyBlocked)
	}
}

// TestDayOne: without earlier days the comparisons say n/a, and the HTML
// carries a well-formed SVG timeline and sparklines.
func TestDayOne(t *testing.T) { testenv.ForEachClickHouse(t, testDayOne) }

func testDayOne(t *testing.T, conn driver.Conn) {
	db := freshDB(t, conn)
	insertTraffic(t, conn, db, traffic{scenarioDay, 480, map[string]string{
		"path": "'/x'", "client_ip": "'198.51.100.1'", "blocked": "toUInt8(number % 4 = 0)",
		"block_module": "if(number % 4 = 0, 'quota', '')", "block_reason": "if(number % 4 = 0, 'quota.per_minute', '')",
		"status": "toUInt16(if(number % 4 = 0, 429, 200))",
	}})
	r, err := New(conn, scenarioConfig(db), WithClock((&fixedClock{time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)}).now))
	if err != nil {
		t.Fatal(err)
	}
	agg, err := r.Aggregate(testCtx(t), scenarioDay)
	if err != nil {
		t.Fatal(err)
	}
	if agg.PreviousDay != nil || agg.SevenDayAverage != nil || agg.BaselineDays != 0 {
		t.Fatalf("baselines %+v %+v %d on day one", agg.PreviousDay, agg.SevenDayAverage, agg.BaselineDays)
	}
	rep, err := r.Build(testCtx(t), scenarioDay, agg, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Markdown, "| Requests | 480 | n/a | n/a |") {
		t.Errorf("markdown key numbers lack n/a:\n%s", rep.Markdown)
	}
	if !strings.Contains(rep.HTML, `<td class="n">n/a</td>`) {
		t.Errorf("html key numbers lack n/a")
	}
	var js map[string]json.RawMessage
	if err := json.Unmarshal(rep.AggregatesJSON, &js); err != nil || string(js["previous_day"]) != "null" {
		t.Errorf("aggregates previous_day = %s (%v), want null", js["previous_day"], err)
	}
	svgs := checkSVGs(t, rep.HTML)
	if svgs < 2 { // the timeline and the client's sparkline
		t.Errorf("%d svg elements, want the timeline and a sparkline", svgs)
	}
	if strings.Contains(strings.ToLower(rep.HTML), "<script") {
		t.Errorf("the report contains script")
	}
}

// checkSVGs parses every <svg>…</svg> of html as XML and returns how many
// there are.
func checkSVGs(t *testing.T, html string) int {
	t.Helper()
	n := 0
	for rest := html; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			return n
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatalf("unterminated svg")
		}
		frag := rest[i : i+j+len("</svg>")]
		d := xml.NewDecoder(strings.NewReader(frag))
		var root string
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("svg %d is not well-formed XML: %v\n%s", n, err, frag)
			}
			if se, ok := tok.(xml.StartElement); ok && root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("svg %d namespace %q", n, se.Name.Space)
				}
			}
		}
		n++
		rest = rest[i+j:]
	}
}
