package report

import (
	"os"
	"testing"
)

// sampleIncident is a day on which Checks overran their budget for a few
// hours: the aggregates the README screenshot (scripts/report-screenshot.sh)
// is rendered from, without ClickHouse.
func sampleIncident() *Aggregates {
	a := &Aggregates{Date: "2026-11-20", Timezone: "Europe/Paris", BaselineDays: 7,
		PreviousDay:       &DaySummary{Requests: 212034, UniqueClients: 3120, ErrorRate: 0.012, ServerErrorRate: 0.002, BlockedRate: 0.011, P95Ms: 180},
		SevenDayAverage:   &DaySummary{Requests: 205880, UniqueClients: 3054, ErrorRate: 0.011, ServerErrorRate: 0.002, BlockedRate: 0.010, P95Ms: 176},
		GenericRouteNames: []string{"", "app", "default", "allow_any"},
	}
	base := []uint64{2100, 1500, 1100, 900, 800, 1000, 2600, 6100, 10400, 13200, 14100, 14800,
		15200, 14900, 14300, 13800, 13500, 12900, 12000, 10600, 9100, 7400, 5200, 3400}
	var t Totals
	for h, n := range base {
		hs := HourStats{Hour: h, Requests: n, Blocked: n / 90, Errors: n / 70, Shadow: n / 400}
		if h >= 13 && h <= 15 { // the incident: Redis slow, Checks over budget
			hs.FailedOpen = n * 6 / 10
			a.FailOpen = append(a.FailOpen, FailOpenCount{Reason: "failmode.budget_exceeded", Hour: h, Requests: hs.FailedOpen - n/50},
				FailOpenCount{Reason: "failmode.stage_error", Hour: h, Requests: n / 50})
		}
		if h == 3 {
			hs.Blocked += 900 // a scanner at night
		}
		a.Timeline = append(a.Timeline, hs)
		t.Requests += n
		t.Blocked += hs.Blocked
		t.Errors += hs.Errors
		t.ShadowBlocked += hs.Shadow
		t.FailedOpen += hs.FailedOpen
	}
	for _, f := range a.FailOpen {
		found := false
		for i := range a.FailOpenReasons {
			if a.FailOpenReasons[i].Reason == f.Reason {
				a.FailOpenReasons[i].Requests += f.Requests
				found = true
			}
		}
		if !found {
			a.FailOpenReasons = append(a.FailOpenReasons, FailOpenCount{Reason: f.Reason, Hour: -1, Requests: f.Requests})
		}
	}
	t.UniqueClients, t.UniqueUsers = 3188, 2410
	t.ServerErrors = t.Errors / 6
	t.Status2xx = t.Requests - t.Errors - t.Blocked - 4000
	t.Status3xx, t.Status4xx, t.Status5xx = 4000, t.Errors-t.ServerErrors+t.Blocked, t.ServerErrors
	t.ErrorRate, t.ServerErrorRate = ratio(t.Errors, t.Requests), ratio(t.ServerErrors, t.Requests)
	t.ClientErrorRate, t.BlockedRate = ratio(t.Errors-t.ServerErrors, t.Requests), ratio(t.Blocked, t.Requests)
	t.FailOpenRatio = ratio(t.FailedOpen, t.Requests)
	t.P50Ms, t.P95Ms, t.P99Ms = 38, 240, 610
	a.Totals = t
	a.Blocks = []BlockCount{
		{Module: "behavior", Reason: "behavior.banned", Requests: 1630, Clients: 14},
		{Module: "quota", Reason: "quota.per_minute", Requests: 402, Clients: 37},
		{Module: "behavior", Reason: "behavior.request_burst", Requests: 14, Clients: 14},
		{Module: "payload", Reason: "payload.sqli", Requests: 31, Clients: 3},
		{Module: "payload", Reason: "payload.prompt_injection", Requests: 480, Clients: 22, Shadow: true},
	}
	a.BanTriggers = []BanTrigger{
		{Trigger: "behavior.request_burst", Clients: 9, BannedRequests: 1210, TriggerRequests: 9},
		{Trigger: "behavior.score", Clients: 4, BannedRequests: 380, TriggerRequests: 4},
		{Trigger: "payload.sqli", Clients: 1, BannedRequests: 40, TriggerRequests: 3},
	}
	a.SlowestRoutes = []RouteStats{
		{Route: "/api/report/{id}/export", By: "path", Requests: 2210, Served: 2210, P50Ms: 1480, P95Ms: 1620, P99Ms: 1710},
		{Route: "search", By: "route", Requests: 18800, Served: 18790, P50Ms: 12, P95Ms: 640, P99Ms: 910},
		{Route: "/products/item-{id}", By: "path", Requests: 96000, Served: 95500, P50Ms: 31, P95Ms: 120, P99Ms: 300},
	}
	a.BusiestRoutes = []RouteStats{a.SlowestRoutes[2], a.SlowestRoutes[1], a.SlowestRoutes[0]}
	a.ErrorRoutes = []RouteStats{{Route: "checkout", By: "route", Requests: 5100, Served: 5100, Errors: 420, ServerErrors: 390, ErrorRate: 0.082}}
	spark := func(peak int, hours ...int) []uint64 {
		s := make([]uint64, 24)
		for i, h := range hours {
			s[h] = uint64(peak - 40*i)
		}
		return s
	}
	a.TopBlockedClients = []ClientStats{
		{Client: "ip:203.0.113.66", Requests: 1210, Blocked: 1150, Paths: 1190, Trigger: "behavior.request_burst",
			Reasons: []string{"behavior.banned", "behavior.request_burst"}, FirstSeen: "02:51:07", LastSeen: "04:12:40", HourlyBlocked: spark(700, 3, 2, 4)},
		{Client: "user:u-4711", Requests: 900, Blocked: 402, Paths: 3, Reasons: []string{"quota.per_minute"},
			FirstSeen: "08:02:11", LastSeen: "19:44:02", HourlyBlocked: spark(120, 9, 10, 11, 14)},
		{Client: "ip:198.51.100.23", Requests: 240, Blocked: 220, Paths: 220, Trigger: "behavior.score",
			Reasons: []string{"behavior.banned", "behavior.score"}, FirstSeen: "21:10:54", LastSeen: "21:58:31", HourlyBlocked: spark(220, 21)},
	}
	a.NewBlockedClientsTotal = 2
	a.NewBlockedClients = []ClientStats{a.TopBlockedClients[0], a.TopBlockedClients[2]}
	a.SlowDrip = []SlowDripClient{{Client: "ip:192.0.2.13", DaysActive: 4, Requests: 20, MaxDaily: 5, SensitiveHits: 20, Errors: 20, ErrorRate: 1,
		SensitivePaths: []string{"/admin/login", "/.env"}, SamplePaths: []string{}}}
	return a
}

// TestWriteSampleReport renders sampleIncident to $SMARTLAYER_REPORT_SAMPLE
// (scripts/report-screenshot.sh); without it the rendering is only checked.
func TestWriteSampleReport(t *testing.T) {
	r, err := New(nopConn{}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	agg := sampleIncident()
	r.cfg.analyse(agg)
	if agg.Health != HealthCritical {
		t.Fatalf("sample incident health %s, want critical", agg.Health)
	}
	rep, err := r.Build(t.Context(), Date{2026, 11, 20}, agg, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := checkSVGs(t, rep.HTML); n != 1+len(agg.TopBlockedClients)+len(agg.NewBlockedClients) {
		t.Errorf("%d svg elements", n)
	}
	if out := os.Getenv("SMARTLAYER_REPORT_SAMPLE"); out != "" {
		if err := os.WriteFile(out, []byte(rep.HTML), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out+".md", []byte(rep.Markdown), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
