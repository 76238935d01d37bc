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
	p, s := a.PreviousDay, a.SevenDayAverage
	w("| Requests | %d | %.0f | %.0f |\n", t.Requests, p.Requests, s.Requests)
	w("| Unique clients | %d | %.0f | %.0f |\n", t.UniqueClients, p.UniqueClients, s.UniqueClients)
	w("| Error rate | %s | %s | %s |\n", pct(t.ErrorRate), pct(p.ErrorRate), pct(s.ErrorRate))
	w("| 5xx rate | %s | %s | %s |\n", pct(t.ServerErrorRate), pct(p.ServerErrorRate), pct(s.ServerErrorRate))
	w("| Blocked rate | %s | %s | %s |\n", pct(t.BlockedRate), pct(p.BlockedRate), pct(s.BlockedRate))
	w("| p95 latency | %s | %s | %s |\n\n", ms(t.P95Ms), ms(p.P95Ms), ms(s.P95Ms))
	w("Unique users %d · 2xx %d · 3xx %d · 4xx %d · 5xx %d · blocked %d (shadow %d) · p50 %s · p99 %s\n\n",
		t.UniqueUsers, t.Status2xx, t.Status3xx, t.Status4xx, t.Status5xx, t.Blocked, t.ShadowBlocked, ms(t.P50Ms), ms(t.P99Ms))

	w("## Error rate\n\n%s\n\n", errorMeaning(t))
	if len(a.ErrorRoutes) > 0 {
		w("| Route | Requests | Errors | 5xx | Error rate |\n|---|---:|---:|---:|---:|\n")
		for _, r := range a.ErrorRoutes {
			w("| %s | %d | %d | %d | %s |\n", md(r.Route), r.Requests, r.Errors, r.ServerErrors, pct(r.ErrorRate))
		}
		w("\n")
	}

	w("## Slowest endpoints\n\nBy p95 over unblocked requests, routes with at least the configured minimum of requests.\n\n")
	mdRoutes(&b, a.SlowestRoutes, true)
	w("## Busiest routes\n\n")
	mdRoutes(&b, a.BusiestRoutes, false)

	w("## Suspicious activity\n\n### Blocks by module and reason\n\n")
	if len(a.Blocks) == 0 {
		w("None.\n\n")
	} else {
		w("| Module | Reason | Mode | Requests | Clients |\n|---|---|---|---:|---:|\n")
		for _, bl := range a.Blocks {
			mode := "blocked"
			if bl.Shadow {
				mode = "shadow"
			}
			w("| %s | %s | %s | %d | %d |\n", md(orNone(bl.Module)), md(orNone(bl.Reason)), mode, bl.Requests, bl.Clients)
		}
		w("\n")
	}
	w("### Top blocked clients\n\n")
	mdClients(&b, a.TopBlockedClients)
	w("### Newly blocked clients\n\n%d client(s) blocked today and on none of the previous 7 days.\n\n", a.NewBlockedClientsTotal)
	mdClients(&b, a.NewBlockedClients)
	w("### Slow-drip clients\n\nPresent on several of the last days with a low daily volume, on sensitive paths or mostly failing.\n\n")
	if len(a.SlowDrip) == 0 {
		w("None.\n\n")
	} else {
		w("| Client | Days | Requests | Max/day | Sensitive | Error rate | Paths |\n|---|---:|---:|---:|---:|---:|---|\n")
		for _, c := range a.SlowDrip {
			paths := c.SensitivePaths
			if len(paths) == 0 {
				paths = c.SamplePaths
			}
			w("| %s | %d | %d | %d | %d | %s | %s |\n", md(c.Client), c.DaysActive, c.Requests, c.MaxDaily, c.SensitiveHits, pct(c.ErrorRate), mdList(paths))
		}
		w("\n")
	}

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
	if len(rs) == 0 {
		b.WriteString("None.\n\n")
		return
	}
	if cause {
		b.WriteString("| Route | Requests | p50 | p95 | p99 | 5xx | Likely cause |\n|---|---:|---:|---:|---:|---:|---|\n")
	} else {
		b.WriteString("| Route | Requests | p50 | p95 | p99 | Error rate |\n|---|---:|---:|---:|---:|---:|\n")
	}
	for _, r := range rs {
		if cause {
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %d | %s |\n", md(r.Route), r.Requests, ms(r.P50Ms), ms(r.P95Ms), ms(r.P99Ms), r.ServerErrors, md(r.LikelyCause))
		} else {
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", md(r.Route), r.Requests, ms(r.P50Ms), ms(r.P95Ms), ms(r.P99Ms), pct(r.ErrorRate))
		}
	}
	b.WriteString("\n")
}

func mdClients(b *strings.Builder, cs []ClientStats) {
	if len(cs) == 0 {
		b.WriteString("None.\n\n")
		return
	}
	b.WriteString("| Client | Blocked | Requests | Distinct paths | Reasons |\n|---|---:|---:|---:|---|\n")
	for _, c := range cs {
		fmt.Fprintf(b, "| %s | %d | %d | %d | %s |\n", md(c.Client), c.Blocked, c.Requests, c.Paths, mdList(c.Reasons))
	}
	b.WriteString("\n")
}

//go:embed report.html.tmpl
var htmlSource string

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":     pct,
	"ms":      ms,
	"upper":   strings.ToUpper,
	"orNone":  orNone,
	"join":    strings.Join,
	"meaning": errorMeaning,
	"note":    sourceNote,
	"inc":     func(i int) int { return i + 1 },
	"utc":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
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
