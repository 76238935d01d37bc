package report

import (
	"fmt"
	"sort"
	"strings"
)

// Health is the day's verdict.
type Health string

// The closed set of health values.
const (
	HealthGood     Health = "good"
	HealthDegraded Health = "degraded"
	HealthCritical Health = "critical"
)

// Valid reports whether h is one of the three values.
func (h Health) Valid() bool {
	return h == HealthGood || h == HealthDegraded || h == HealthCritical
}

// rule states the health rule in words, with the configured thresholds.
func (c Config) rule() string {
	h := c.Health
	return fmt.Sprintf("critical if fail-open > %s, error rate ≥ %s, 5xx rate ≥ %s or p95 ≥ %d ms; "+
		"degraded if fail-open > %s, error rate ≥ %s, 5xx rate ≥ %s, p95 ≥ %d ms or no traffic; otherwise good "+
		"(fail-open = requests that passed without a check — authz's fail mode or no ext_authz answer — over all requests; "+
		"error rate = 4xx/5xx answers not caused by smartlayer blocks, over all requests; p95 over unblocked requests)",
		pct(h.CriticalFailOpenRatio), pct(h.CriticalErrorRate), pct(h.CriticalServerErrorRate), h.CriticalP95.Milliseconds(),
		pct(h.DegradedFailOpenRatio), pct(h.DegradedErrorRate), pct(h.DegradedServerErrorRate), h.DegradedP95.Milliseconds())
}

// judge applies the health rule to the totals and says which clauses fired.
func (c Config) judge(t Totals) (Health, []string) {
	h := c.Health
	if t.Requests == 0 {
		return HealthDegraded, []string{"no requests were logged for the day: the service or the access-log pipeline may be down"}
	}
	p95 := t.P95Ms
	var crit, deg []string
	// Fail-open first: a day on which smartlayer did not protect the API
	// must never read as good, however healthy the upstream looks.
	failOpen := fmt.Sprintf("fail-open %s (%s passed unchecked)", pct(t.FailOpenRatio), plural(t.FailedOpen, "request"))
	switch {
	case t.FailOpenRatio > h.CriticalFailOpenRatio:
		crit = append(crit, fmt.Sprintf("%s > %s", failOpen, pct(h.CriticalFailOpenRatio)))
	case t.FailOpenRatio > h.DegradedFailOpenRatio:
		deg = append(deg, fmt.Sprintf("%s > %s", failOpen, pct(h.DegradedFailOpenRatio)))
	}
	switch {
	case t.ErrorRate >= h.CriticalErrorRate:
		crit = append(crit, fmt.Sprintf("error rate %s ≥ %s", pct(t.ErrorRate), pct(h.CriticalErrorRate)))
	case t.ErrorRate >= h.DegradedErrorRate:
		deg = append(deg, fmt.Sprintf("error rate %s ≥ %s", pct(t.ErrorRate), pct(h.DegradedErrorRate)))
	}
	switch {
	case t.ServerErrorRate >= h.CriticalServerErrorRate:
		crit = append(crit, fmt.Sprintf("5xx rate %s ≥ %s", pct(t.ServerErrorRate), pct(h.CriticalServerErrorRate)))
	case t.ServerErrorRate >= h.DegradedServerErrorRate:
		deg = append(deg, fmt.Sprintf("5xx rate %s ≥ %s", pct(t.ServerErrorRate), pct(h.DegradedServerErrorRate)))
	}
	switch {
	case p95 >= float64(h.CriticalP95.Milliseconds()):
		crit = append(crit, fmt.Sprintf("p95 %s ≥ %d ms", ms(p95), h.CriticalP95.Milliseconds()))
	case p95 >= float64(h.DegradedP95.Milliseconds()):
		deg = append(deg, fmt.Sprintf("p95 %s ≥ %d ms", ms(p95), h.DegradedP95.Milliseconds()))
	}
	switch {
	case len(crit) > 0:
		return HealthCritical, append(crit, deg...)
	case len(deg) > 0:
		return HealthDegraded, deg
	}
	return HealthGood, []string{fmt.Sprintf("fail-open %s, error rate %s, 5xx rate %s and p95 %s are within the thresholds",
		pct(t.FailOpenRatio), pct(t.ErrorRate), pct(t.ServerErrorRate), ms(p95))}
}

// causeOf reads a route's latency shape. A p99 far above p50 means most
// calls are fast and a few wait (contention, pool exhaustion, GC, a slow
// dependency); a p50 close to p99 and high means every call does heavy work.
func (c Config) causeOf(r RouteStats) string {
	var causes []string
	slow := float64(c.Health.DegradedP95.Milliseconds())
	if r.Served > 0 && float64(r.Timeouts)/float64(r.Served) >= 0.01 {
		causes = append(causes, fmt.Sprintf("upstream timeouts (%d requests flagged UT)", r.Timeouts))
	}
	if r.Requests > 0 && float64(r.ServerErrors)/float64(r.Requests) >= 0.05 {
		causes = append(causes, "failing upstream (5xx): slow failures inflate latency")
	}
	tail := r.P50Ms > 0 && r.P99Ms/r.P50Ms >= 5
	switch {
	case r.P50Ms >= slow/2 && (r.P50Ms == 0 || r.P99Ms/r.P50Ms < 3):
		causes = append(causes, fmt.Sprintf("uniformly slow (p50 %s, p99/p50 %.1f): heavy work on every call — queries, serialisation or payload size", ms(r.P50Ms), r.P99Ms/max(r.P50Ms, 1)))
	case tail:
		causes = append(causes, fmt.Sprintf("tail latency (p99/p50 %.1f): contention — locks, connection-pool exhaustion, GC pauses or a slow dependency on some calls", r.P99Ms/r.P50Ms))
	}
	if len(causes) == 0 {
		if r.P95Ms < slow {
			return "within the latency threshold"
		}
		return "moderately slow with no single pattern"
	}
	return strings.Join(causes, "; ")
}

// analyse completes the aggregates with the health verdict and route causes.
func (c Config) analyse(agg *Aggregates) {
	agg.Health, agg.HealthReasons = c.judge(agg.Totals)
	agg.HealthRule = c.rule()
	for _, l := range [][]RouteStats{agg.SlowestRoutes, agg.BusiestRoutes, agg.ErrorRoutes} {
		for i := range l {
			l[i].LikelyCause = c.causeOf(l[i])
		}
	}
}

// deterministic writes the narrative from the aggregates alone: the report
// when no Summarizer is configured or its answer is unusable.
func (c Config) deterministic(agg *Aggregates) Narrative {
	t := agg.Totals
	n := Narrative{Health: agg.Health}
	if t.Requests == 0 {
		n.Summary = fmt.Sprintf("No requests were logged on %s. Check that Envoy's access log reaches smartlayer and that ClickHouse accepted the rows.", agg.Date)
		n.Findings = []string{"The access log holds no rows for the day."}
		n.Recommendations = []string{
			"Check the ALS stream (smartlayer's accesslog metrics) and Envoy's access-log configuration.",
			"Check ClickHouse for rejected inserts and disk space.",
		}
		return n
	}
	n.Summary = fmt.Sprintf("Health is %s: %s. %d requests from %d clients; %s of them failed (%s client errors, %s server errors) and smartlayer blocked %s.",
		agg.Health, strings.Join(agg.HealthReasons, ", "), t.Requests, t.UniqueClients,
		pct(t.ErrorRate), pct(t.ClientErrorRate), pct(t.ServerErrorRate), pct(t.BlockedRate))
	if t.FailedOpen > 0 {
		n.Summary += fmt.Sprintf(" %s (%s) passed WITHOUT a check.", plural(t.FailedOpen, "request"), pct(t.FailOpenRatio))
		n.Findings = append(n.Findings, failOpenFinding(agg))
	}
	if t.FailedClosed > 0 {
		n.Findings = append(n.Findings, fmt.Sprintf("authz could not decide %s and answered 503 (server.fail_mode: deny): users saw errors no rule asked for.",
			plural(t.FailedClosed, "request")))
	}

	if agg.BaselineDays > 0 && agg.SevenDayAverage != nil {
		n.Findings = append(n.Findings, fmt.Sprintf("Traffic %s versus the %d-day average (%.0f requests/day); error rate %s versus %s.",
			change(float64(t.Requests), agg.SevenDayAverage.Requests), agg.BaselineDays, agg.SevenDayAverage.Requests,
			pct(t.ErrorRate), pct(agg.SevenDayAverage.ErrorRate)))
	}
	if len(agg.ErrorRoutes) > 0 && agg.ErrorRoutes[0].ServerErrors > 0 {
		r := agg.ErrorRoutes[0]
		n.Findings = append(n.Findings, fmt.Sprintf("Most server errors come from %s: %d 5xx of %d requests.", r.Route, r.ServerErrors, r.Requests))
	}
	if len(agg.SlowestRoutes) > 0 {
		r := agg.SlowestRoutes[0]
		n.Findings = append(n.Findings, fmt.Sprintf("Slowest route: %s with p95 %s (p50 %s, p99 %s) — %s.", r.Route, ms(r.P95Ms), ms(r.P50Ms), ms(r.P99Ms), r.LikelyCause))
	}
	if t.Blocked > 0 && len(agg.Blocks) > 0 {
		b := agg.Blocks[0]
		n.Findings = append(n.Findings, fmt.Sprintf("smartlayer blocked %s; the main reason was %s (%s from %s).", plural(t.Blocked, "request"), orNone(b.Reason), plural(b.Requests, "request"), plural(b.Clients, "client")))
	}
	if len(agg.BanTriggers) > 0 {
		b := agg.BanTriggers[0]
		n.Findings = append(n.Findings, fmt.Sprintf("Bans were mostly triggered by %s (%s, %s denied while banned).",
			triggerLabel(b.Trigger), plural(b.Clients, "client"), plural(b.BannedRequests, "request")))
	}
	if t.ShadowBlocked > 0 {
		n.Findings = append(n.Findings, fmt.Sprintf("Shadow-mode modules would have denied %s more; they were let through.", plural(t.ShadowBlocked, "request")))
	}
	if agg.NewBlockedClientsTotal > 0 {
		n.Findings = append(n.Findings, fmt.Sprintf("%s blocked for the first time in 8 days, led by %s.", plural(agg.NewBlockedClientsTotal, "client was", "clients were"), agg.NewBlockedClients[0].Client))
	}
	if len(agg.SlowDrip) > 0 {
		s := agg.SlowDrip[0]
		n.Findings = append(n.Findings, fmt.Sprintf("%s under the rate limits; %s came on %d days with at most %d requests a day (%d on sensitive paths, %s errors).",
			plural(uint64(len(agg.SlowDrip)), "slow-drip client stays", "slow-drip clients stay"), s.Client, s.DaysActive, s.MaxDaily, s.SensitiveHits, pct(s.ErrorRate)))
	}
	n.Recommendations = c.recommend(agg)
	return n
}

// recommend picks the 2–3 most pressing actions, in priority order.
func (c Config) recommend(agg *Aggregates) []string {
	type rec struct {
		prio int
		text string
	}
	var recs []rec
	t := agg.Totals
	if t.FailedOpen > 0 && t.FailOpenRatio > c.Health.DegradedFailOpenRatio {
		text := fmt.Sprintf("Find why %s passed unchecked (%s): ", plural(t.FailedOpen, "request"), pct(t.FailOpenRatio))
		switch top := topFailOpenReason(agg); top {
		case "failmode.budget_exceeded":
			text += "Checks overran server.decision_budget — give authz CPU headroom or more replicas, check Redis latency (store.redis.timeout) and smartlayer_check_duration_seconds."
		case "failmode.stage_error":
			text += "a stage failed (usually the store): check Redis health and smartlayer_check_errors_total{kind=\"stage\"}."
		case "unchecked":
			text += "Envoy served requests without an ext_authz answer — authz unreachable or slower than Envoy's ext_authz timeout (failure_mode_allow), or a route without ext_authz."
		default:
			text += "see smartlayer_check_errors_total and authz's logs for " + top + "."
		}
		recs = append(recs, rec{200, text})
	}
	if len(agg.ErrorRoutes) > 0 && t.ServerErrorRate >= c.Health.DegradedServerErrorRate {
		r := agg.ErrorRoutes[0]
		recs = append(recs, rec{100, fmt.Sprintf("Investigate the %d server errors on %s (upstream logs, recent deploys, dependency health) — it drives the 5xx rate.", r.ServerErrors, r.Route)})
	}
	if len(agg.SlowestRoutes) > 0 && agg.SlowestRoutes[0].P95Ms >= float64(c.Health.DegradedP95.Milliseconds()) {
		r := agg.SlowestRoutes[0]
		text := fmt.Sprintf("Profile %s (p95 %s): ", r.Route, ms(r.P95Ms))
		switch {
		case strings.Contains(r.LikelyCause, "uniformly slow"):
			text += "every call is slow, so cut the work per call — indexes, caching, pagination or moving it to a background job."
		case strings.Contains(r.LikelyCause, "tail latency"):
			text += "the tail is the problem — look for lock contention, connection-pool limits and slow dependencies, and set timeouts."
		default:
			text += "look at its upstream and its slowest calls."
		}
		recs = append(recs, rec{90, text})
	}
	if len(agg.SlowDrip) > 0 {
		recs = append(recs, rec{80, fmt.Sprintf("Review the %s (first: %s); per-minute limits never see them — ban them or add their networks to behavior.deny_cidrs.", plural(uint64(len(agg.SlowDrip)), "slow-drip client"), agg.SlowDrip[0].Client)})
	}
	if agg.NewBlockedClientsTotal > 0 {
		recs = append(recs, rec{70, fmt.Sprintf("Check the %s (first: %s) for false positives before they become customers' complaints; persistent ones belong in deny_cidrs.", plural(agg.NewBlockedClientsTotal, "newly blocked client"), agg.NewBlockedClients[0].Client)})
	}
	if t.ErrorRate >= c.Health.DegradedErrorRate && t.ServerErrorRate < c.Health.DegradedServerErrorRate {
		recs = append(recs, rec{60, fmt.Sprintf("Client errors run at %s: check for a broken client release, expired tokens or a removed route.", pct(t.ClientErrorRate))})
	}
	if agg.BaselineDays > 0 && agg.SevenDayAverage != nil && agg.SevenDayAverage.Requests > 0 && float64(t.Requests) < agg.SevenDayAverage.Requests/2 {
		recs = append(recs, rec{50, "Traffic fell below half of the 7-day average: confirm that clients can reach the API and that access logs are complete."})
	}
	recs = append(recs,
		rec{10, "Keep alerting on the 5xx rate and p95 so a regression is seen before tomorrow's report."},
		rec{5, "Review behavior.sensitive_paths and the slow-drip thresholds against the routes your API really exposes."},
	)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].prio > recs[j].prio })
	out := make([]string, 0, 3)
	for _, r := range recs {
		if len(out) == 3 {
			break
		}
		out = append(out, r.text)
	}
	return out
}

func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func ms(f float64) string {
	if f >= 100 {
		return fmt.Sprintf("%.0f ms", f)
	}
	return fmt.Sprintf("%.1f ms", f)
}

func change(now, base float64) string {
	if base == 0 {
		return "has no baseline (n/a)"
	}
	d := (now - base) / base
	if d >= 0 {
		return fmt.Sprintf("is up %.1f%%", 100*d)
	}
	return fmt.Sprintf("is down %.1f%%", -100*d)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// plural writes "1 client" / "2 clients"; with two forms it picks one of them.
func plural(n uint64, forms ...string) string {
	one, many := forms[0], forms[0]+"s"
	if len(forms) > 1 {
		many = forms[1]
	}
	if n == 1 {
		return fmt.Sprintf("1 %s", one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// failOpenFinding says how many requests passed unchecked, why and when.
func failOpenFinding(agg *Aggregates) string {
	t := agg.Totals
	var why []string
	for _, r := range agg.FailOpenReasons {
		why = append(why, fmt.Sprintf("%s %d", r.Reason, r.Requests))
	}
	first, last, peak := -1, -1, -1
	var peakN uint64
	for _, h := range agg.Timeline {
		if h.FailedOpen == 0 {
			continue
		}
		if first < 0 {
			first = h.Hour
		}
		last = h.Hour
		if h.FailedOpen > peakN {
			peak, peakN = h.Hour, h.FailedOpen
		}
	}
	s := fmt.Sprintf("%s of %d (%s) passed without a check", plural(t.FailedOpen, "request"), t.Requests, pct(t.FailOpenRatio))
	if len(why) > 0 {
		s += " (" + strings.Join(why, ", ") + ")"
	}
	if first >= 0 {
		s += fmt.Sprintf(", between %02d:00 and %02d:59, peaking at %02d:00 with %d", first, last, peak, peakN)
	}
	return s + ": smartlayer did not protect the API for those requests."
}

func topFailOpenReason(agg *Aggregates) string {
	if len(agg.FailOpenReasons) == 0 {
		return ""
	}
	return agg.FailOpenReasons[0].Reason
}

// triggerLabel names a ban trigger; an empty one means the ban came from
// an earlier day.
func triggerLabel(s string) string {
	if s == "" {
		return "a ban from before the day"
	}
	return s
}
