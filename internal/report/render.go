package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Report is one day's rendered report.
type Report struct {
	Date        Date
	GeneratedAt time.Time
	Aggregates  *Aggregates
	// AggregatesJSON is exactly what the Summarizer saw and what is stored.
	AggregatesJSON []byte
	Narrative      Narrative
	Source         NarrativeSource
	// FallbackReason says why a configured Summarizer's prose was not used.
	FallbackReason string
	Markdown       string
	HTML           string
}

// mdReplacer backslash-escapes the characters that would let data (paths,
// client IDs, model prose) become Markdown or HTML structure. Newlines
// become spaces so a value never starts a new block or table row.
var mdReplacer = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`, `<`, `\<`, `>`, `\>`,
	`|`, `\|`, `#`, `\#`, `!`, `\!`, `&`, `\&`, `~`, `\~`, "\r", " ", "\n", " ",
)

func md(s string) string { return mdReplacer.Replace(s) }

func mdList(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = md(s)
	}
	return strings.Join(out, ", ")
}

func sourceNote(src NarrativeSource) string {
	if src == SourceLLM {
		return "Prose written by the LLM from the aggregates only; every number in the tables comes from ClickHouse."
	}
	return "Prose generated deterministically from the aggregates."
}

// errorMeaning explains the error rate in words.
func errorMeaning(t Totals) string {
	if t.Requests == 0 {
		return "No requests, so no error rate."
	}
	return fmt.Sprintf("%s of requests failed: %s client errors (4xx: the API rejected the request — authentication, validation, unknown routes) "+
		"and %s server errors (5xx: the API or an upstream broke). smartlayer's own blocks (%d requests, %s) are intended and not counted as errors.",
		pct(t.ErrorRate), pct(t.ClientErrorRate), pct(t.ServerErrorRate), t.Blocked, pct(t.BlockedRate))
}

// keyRow is one line of the key numbers: today, previous day, 7-day
// average, each already formatted ("n/a" without a baseline).
type keyRow struct{ Name, Today, Prev, Avg string }

func keyRows(a *Aggregates) []keyRow {
	t := a.Totals
	rows := []struct {
		name  string
		today string
		f     func(*DaySummary) string
	}{
		{"Requests", fmt.Sprint(t.Requests), func(d *DaySummary) string { return fmt.Sprintf("%.0f", d.Requests) }},
		{"Unique clients", fmt.Sprint(t.UniqueClients), func(d *DaySummary) string { return fmt.Sprintf("%.0f", d.UniqueClients) }},
		{"Error rate", pct(t.ErrorRate), func(d *DaySummary) string { return pct(d.ErrorRate) }},
		{"5xx rate", pct(t.ServerErrorRate), func(d *DaySummary) string { return pct(d.ServerErrorRate) }},
		{"Blocked rate", pct(t.BlockedRate), func(d *DaySummary) string { return pct(d.BlockedRate) }},
		{"p95 latency", ms(t.P95Ms), func(d *DaySummary) string { return ms(d.P95Ms) }},
	}
	out := make([]keyRow, 0, len(rows)+1)
	for _, r := range rows {
		out = append(out, keyRow{r.name, r.today, orNA(a.PreviousDay, r.f), orNA(a.SevenDayAverage, r.f)})
	}
	// Fail-open has no history in DaySummary: its own line, today only.
	out = append(out, keyRow{"Fail-open (unchecked)", fmt.Sprintf("%s (%d)", pct(t.FailOpenRatio), t.FailedOpen), "", ""})
	return out
}

func orNA(d *DaySummary, f func(*DaySummary) string) string {
	if d == nil {
		return "n/a"
	}
	return f(d)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// failOpenMeaning explains the fail-open count in words.
func failOpenMeaning(t Totals) string {
	if t.FailedOpen == 0 {
		return "None: every request got a decision from smartlayer."
	}
	s := fmt.Sprintf("%s (%s of the day) passed WITHOUT a check: smartlayer did not protect the API for them. "+
		"failmode.* reasons are authz's fail mode (server.fail_mode: allow) — a budget overrun, a store error, an unparsable request; "+
		"\"unchecked\" means Envoy served the request with no ext_authz answer at all (failure_mode_allow while authz was unreachable or too slow).",
		plural(t.FailedOpen, "request"), pct(t.FailOpenRatio))
	if t.FailedClosed > 0 {
		s += fmt.Sprintf(" Another %s got the fail mode's 503 (fail_mode: deny).", plural(t.FailedClosed, "request"))
	}
	return s
}

// groupingNote says how the endpoint tables group requests.
func groupingNote(a *Aggregates) string {
	var named []string
	for _, n := range a.GenericRouteNames {
		if n != "" {
			named = append(named, `"`+n+`"`)
		}
	}
	note := "Endpoints are Envoy route names where a name identifies one; requests on an empty"
	if len(named) > 0 {
		note += " or generic route name (" + strings.Join(named, ", ") + ")"
	} else {
		note += " route name"
	}
	return note + " are grouped by path template (ids, UUIDs and hashes as {id})."
}

// renderMarkdown writes the report as Markdown. Every string that comes from
// the logs or the model goes through md().
func renderMarkdown(r *Report) string {
	a, n := r.Aggregates, r.Narrative
	t := a.Totals
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# smartlayer daily report — %s (%s)\n\n", a.Date, md(a.Timezone))
	w("**Health: %s** — %s.\n\n", strings.ToUpper(string(a.Health)), md(strings.Join(a.HealthReasons, "; ")))
	w("Rule: %s.\n\n", md(a.HealthRule))
	w("## Summary\n\n%s\n\n_%s_\n\n", md(n.Summary), sourceNote(r.Source))

	w("## Key numbers\n\n| | %s | previous day | 7-day average (%d days) |\n|---|---:|---:|---:|\n", a.Date, a.BaselineDays)
	for _, row := range keyRows(a) {
		w("| %s | %s | %s | %s |\n", row.Name, row.Today, row.Prev, row.Avg)
	}
	w("\nUnique users %d · 2xx %d · 3xx %d · 4xx %d · 5xx %d · blocked %d · shadow %d · failed open %d · failed closed %d · p50 %s · p99 %s\n\n",
		t.UniqueUsers, t.Status2xx, t.Status3xx, t.Status4xx, t.Status5xx, t.Blocked, t.ShadowBlocked, t.FailedOpen, t.FailedClosed, ms(t.P50Ms), ms(t.P99Ms))

	w("## Timeline\n\nPer hour (%s), 00 → 23, each line scaled to its own peak.\n\n```\n", md(a.Timezone))
	for _, sr := range []struct {
		name string
		f    func(HourStats) uint64
	}{
		{"requests ", func(h HourStats) uint64 { return h.Requests }},
		{"blocked  ", func(h HourStats) uint64 { return h.Blocked }},
		{"errors   ", func(h HourStats) uint64 { return h.Errors }},
		{"fail-open", func(h HourStats) uint64 { return h.FailedOpen }},
	} {
		v := series(a.Timeline, sr.f)
		var peak uint64
		for _, x := range v {
			peak = max(peak, x)
		}
		w("%s %s  peak %d\n", sr.name, sparkText(v), peak)
	}
	w("```\n\n")

	w("## Unchecked requests (fail-open)\n\n%s\n\n", failOpenMeaning(t))
	if len(a.FailOpenReasons) > 0 {
		w("| Reason | Requests | Share of the day |\n|---|---:|---:|\n")
		for _, r := range a.FailOpenReasons {
			w("| %s | %d | %s |\n", md(r.Reason), r.Requests, pct(ratio(r.Requests, t.Requests)))
		}
		w("\n| Hour | Reason | Requests |\n|---|---|---:|\n")
		for _, r := range a.FailOpen {
			w("| %02d:00 | %s | %d |\n", r.Hour, md(r.Reason), r.Requests)
		}
		w("\n")
	}

	w("## Error rate\n\n%s\n\n", errorMeaning(t))
	if len(a.ErrorRoutes) > 0 {
		w("| Endpoint | Requests | Errors | 5xx | Error rate |\n|---|---:|---:|---:|---:|\n")
		for _, r := range a.ErrorRoutes {
			w("| %s | %d | %d | %d | %s |\n", md(r.Route), r.Requests, r.Errors, r.ServerErrors, pct(r.ErrorRate))
		}
		w("\n")
	}

	w("## Slowest endpoints\n\n%s By p95 over unblocked requests, endpoints with at least the configured minimum of requests.\n\n", md(groupingNote(a)))
	mdRoutes(&b, a.SlowestRoutes, true)
	w("## Busiest endpoints\n\n")
	mdRoutes(&b, a.BusiestRoutes, false)

	w("## Suspicious activity\n\n### Blocks by module and reason\n\n")
	mdTable(&b, a.Blocks, "| Module | Reason | Mode | Requests | Clients |\n|---|---|---|---:|---:|\n", func(bl BlockCount) string {
		mode := "blocked"
		if bl.Shadow {
			mode = "shadow"
		}
		return fmt.Sprintf("| %s | %s | %s | %d | %d |\n", md(orNone(bl.Module)), md(orNone(bl.Reason)), mode, bl.Requests, bl.Clients)
	})
	w("### Ban triggers\n\nThe rule that banned each client (its first block of the day other than behavior.banned), and what its ban then denied.\n\n")
	mdTable(&b, a.BanTriggers, "| Trigger | Clients banned | Trigger requests | Denied while banned |\n|---|---:|---:|---:|\n", func(bt BanTrigger) string {
		return fmt.Sprintf("| %s | %d | %d | %d |\n", md(triggerLabel(bt.Trigger)), bt.Clients, bt.TriggerRequests, bt.BannedRequests)
	})
	w("### Top blocked clients\n\n")
	mdClients(&b, a.TopBlockedClients)
	w("### Newly blocked clients\n\n%d client(s) blocked today and on none of the previous 7 days.\n\n", a.NewBlockedClientsTotal)
	mdClients(&b, a.NewBlockedClients)
	w("### Slow-drip clients\n\nPresent on several of the last days with a low daily volume, on sensitive paths or mostly failing.\n\n")
	mdTable(&b, a.SlowDrip, "| Client | Days | Requests | Max/day | Sensitive | Error rate | Paths |\n|---|---:|---:|---:|---:|---:|---|\n", func(c SlowDripClient) string {
		paths := c.SensitivePaths
		if len(paths) == 0 {
			paths = c.SamplePaths
		}
		return fmt.Sprintf("| %s | %d | %d | %d | %d | %s | %s |\n", md(c.Client), c.DaysActive, c.Requests, c.MaxDaily, c.SensitiveHits, pct(c.ErrorRate), mdList(paths))
	})

	w("## Findings\n\n")
	if len(n.Findings) == 0 {
		w("Nothing stands out.\n")
	}
	for _, f := range n.Findings {
		w("- %s\n", md(f))
	}
	w("\n## Recommendations\n\n")
	for i, rec := range n.Recommendations {
		w("%d. %s\n", i+1, md(rec))
	}
	w("\n---\nGenerated %s · narrative: %s\n", r.GeneratedAt.UTC().Format(time.RFC3339), r.Source)
	return b.String()
}

func mdRoutes(b *strings.Builder, rs []RouteStats, cause bool) {
	if cause {
		mdTable(b, rs, "| Endpoint | Requests | p50 | p95 | p99 | 5xx | Likely cause |\n|---|---:|---:|---:|---:|---:|---|\n", func(r RouteStats) string {
			return fmt.Sprintf("| %s | %d | %s | %s | %s | %d | %s |\n", md(r.Route), r.Requests, ms(r.P50Ms), ms(r.P95Ms), ms(r.P99Ms), r.ServerErrors, md(r.LikelyCause))
		})
		return
	}
	mdTable(b, rs, "| Endpoint | Requests | p50 | p95 | p99 | Error rate |\n|---|---:|---:|---:|---:|---:|\n", func(r RouteStats) string {
		return fmt.Sprintf("| %s | %d | %s | %s | %s | %s |\n", md(r.Route), r.Requests, ms(r.P50Ms), ms(r.P95Ms), ms(r.P99Ms), pct(r.ErrorRate))
	})
}

func mdClients(b *strings.Builder, cs []ClientStats) {
	mdTable(b, cs, "| Client | Blocked | Requests | Distinct paths | Ban trigger | Reasons | First seen | Last seen | Blocks 00→23 |\n|---|---:|---:|---:|---|---|---|---|---|\n", func(c ClientStats) string {
		return fmt.Sprintf("| %s | %d | %d | %d | %s | %s | %s | %s | %s |\n", md(c.Client), c.Blocked, c.Requests, c.Paths,
			md(orDash(c.Trigger)), mdList(c.Reasons), c.FirstSeen, c.LastSeen, sparkText(c.HourlyBlocked))
	})
}

// mdTable writes a Markdown table: header (the column names and the
// alignment row), then one row per item; "None." when there are no items.
func mdTable[T any](b *strings.Builder, items []T, header string, row func(T) string) {
	if len(items) == 0 {
		b.WriteString("None.\n\n")
		return
	}
	b.WriteString(header)
	for _, it := range items {
		b.WriteString(row(it))
	}
	b.WriteString("\n")
}

//go:embed report.html.tmpl
var htmlSource string

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":       pct,
	"ms":        ms,
	"upper":     strings.ToUpper,
	"orNone":    orNone,
	"join":      strings.Join,
	"meaning":   errorMeaning,
	"note":      sourceNote,
	"inc":       func(i int) int { return i + 1 },
	"utc":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"keyRows":   keyRows,
	"timeline":  timelineSVG,
	"spark":     sparkSVG,
	"sparkText": sparkText,
	"foMeaning": failOpenMeaning,
	"grouping":  groupingNote,
	"trigger":   triggerLabel,
	"dash":      orDash,
	"share":     func(n, total uint64) string { return pct(ratio(n, total)) },
	"hour":      func(h int) string { return fmt.Sprintf("%02d:00", h) },
}).Parse(htmlSource))

// renderHTML writes the report as a standalone HTML page; html/template
// escapes every value.
func renderHTML(r *Report) (string, error) {
	var buf bytes.Buffer
	if err := htmlTmpl.Execute(&buf, r); err != nil {
		return "", fmt.Errorf("render html: %w", err)
	}
	return buf.String(), nil
}
