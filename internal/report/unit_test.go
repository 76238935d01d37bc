package report

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mod  func(*Config)
		want string // substring of the error naming the key; "" = valid
	}{
		"defaults":            {func(*Config) {}, ""},
		"bad database":        {func(c *Config) { c.Database = "a;DROP" }, "accesslog.clickhouse.database"},
		"nil timezone":        {func(c *Config) { c.Location = nil }, "report.timezone"},
		"retention too short": {func(c *Config) { c.RetentionDays = 5 }, "report.retention_days"},
		"retention disabled":  {func(c *Config) { c.RetentionDays = 0 }, ""},
		"webhook scheme":      {func(c *Config) { c.WebhookURL = "ftp://x" }, "report.webhook_url"},
		"smtp without to":     {func(c *Config) { c.SMTP = SMTPConfig{Host: "h", Port: 25, From: "a@b"} }, "report.smtp.to"},
		"smtp header inject":  {func(c *Config) { c.SMTP = SMTPConfig{Host: "h", Port: 25, From: "a@b\r\nBcc: x", To: []string{"c@d"}} }, "report.smtp"},
		"smtp port":           {func(c *Config) { c.SMTP = SMTPConfig{Host: "h", Port: 0, From: "a@b", To: []string{"c@d"}} }, "report.smtp.port"},
		"sensitive prefix":    {func(c *Config) { c.SensitivePrefixes = []string{"admin"} }, "report.sensitive_paths"},
		"min days > window":   {func(c *Config) { c.SlowDrip.MinDays = 9 }, "report.slow_drip.min_days"},
		"error ratio":         {func(c *Config) { c.SlowDrip.MinErrorRatio = 1.5 }, "report.slow_drip.min_error_ratio"},
		"thresholds swapped":  {func(c *Config) { c.Health.CriticalP95 = time.Millisecond }, "report.health.critical_p95"},
		"top n":               {func(c *Config) { c.TopN = 0 }, "report.top_n"},
		"fail-open swapped":   {func(c *Config) { c.Health.CriticalFailOpenRatio = 0.0001 }, "report.health.degraded_fail_open_ratio"},
		"fail-open zero":      {func(c *Config) { c.Health.DegradedFailOpenRatio = 0 }, "report.health.degraded_fail_open_ratio"},
		"route name spaces":   {func(c *Config) { c.GenericRouteNames = []string{" app"} }, "report.generic_route_names"},
		"local timezone":      {func(c *Config) { c.Location = time.Local }, "report.timezone"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to name %s", err, tc.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	c := DefaultConfig()
	tests := map[string]struct {
		t    Totals
		want Health
		why  string
	}{
		"no traffic":        {Totals{}, HealthDegraded, "no requests"},
		"healthy":           {Totals{Requests: 100, ErrorRate: 0.01, ServerErrorRate: 0.001, P95Ms: 100}, HealthGood, "within"},
		"client errors":     {Totals{Requests: 100, ErrorRate: 0.06, P95Ms: 100}, HealthDegraded, "error rate 6.00%"},
		"5xx degraded":      {Totals{Requests: 100, ErrorRate: 0.02, ServerErrorRate: 0.02, P95Ms: 100}, HealthDegraded, "5xx rate 2.00%"},
		"5xx critical":      {Totals{Requests: 100, ErrorRate: 0.06, ServerErrorRate: 0.06, P95Ms: 100}, HealthCritical, "5xx rate 6.00% ≥ 5.00%"},
		"slow p95":          {Totals{Requests: 100, P95Ms: 900}, HealthDegraded, "p95 900 ms ≥ 800 ms"},
		"very slow p95":     {Totals{Requests: 100, P95Ms: 2000}, HealthCritical, "p95 2000 ms ≥ 2000 ms"},
		"errors everywhere": {Totals{Requests: 100, ErrorRate: 0.5, ServerErrorRate: 0.01, P95Ms: 1000}, HealthCritical, "error rate 50.00%"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, why := c.judge(tc.t)
			if h != tc.want || !strings.Contains(strings.Join(why, ";"), tc.why) {
				t.Errorf("judge = %s %v, want %s with %q", h, why, tc.want, tc.why)
			}
		})
	}
}

func TestCauseOf(t *testing.T) {
	c := DefaultConfig()
	tests := map[string]struct {
		r    RouteStats
		want string
	}{
		"uniform":  {RouteStats{Requests: 100, Served: 100, P50Ms: 1500, P95Ms: 1590, P99Ms: 1600}, "uniformly slow"},
		"tail":     {RouteStats{Requests: 100, Served: 100, P50Ms: 10, P95Ms: 900, P99Ms: 900}, "tail latency"},
		"timeouts": {RouteStats{Requests: 100, Served: 100, Timeouts: 5, P50Ms: 10, P95Ms: 20, P99Ms: 30}, "upstream timeouts"},
		"failing":  {RouteStats{Requests: 100, Served: 100, ServerErrors: 40, P50Ms: 10, P95Ms: 20, P99Ms: 30}, "failing upstream"},
		"fast":     {RouteStats{Requests: 100, Served: 100, P50Ms: 10, P95Ms: 20, P99Ms: 30}, "within the latency threshold"},
		"moderate": {RouteStats{Requests: 100, Served: 100, P50Ms: 300, P95Ms: 900, P99Ms: 1200}, "moderately slow"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := c.causeOf(tc.r); !strings.Contains(got, tc.want) {
				t.Errorf("causeOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidateNarrative(t *testing.T) {
	ok := Narrative{Health: "Degraded ", Summary: "  a\n\tb\u202e ", Findings: []string{"f"}, Recommendations: []string{"r1", "r2"}}
	tests := map[string]struct {
		n       Narrative
		wantErr string
	}{
		"valid, cleaned":       {ok, ""},
		"unknown health":       {Narrative{Health: "fine", Summary: "s", Recommendations: []string{"a", "b"}}, "not good"},
		"contradicting health": {Narrative{Health: "good", Summary: "s", Recommendations: []string{"a", "b"}}, "contradicts"},
		"no summary":           {Narrative{Health: "degraded", Summary: " \n", Recommendations: []string{"a", "b"}}, "summary"},
		"four recs":            {Narrative{Health: "degraded", Summary: "s", Recommendations: []string{"a", "b", "c", "d"}}, "recommendations"},
		"empty rec":            {Narrative{Health: "degraded", Summary: "s", Recommendations: []string{"a", "\x00"}}, "recommendation 1"},
		"long summary":         {Narrative{Health: "degraded", Summary: strings.Repeat("x", maxSummaryRunes+1), Recommendations: []string{"a", "b"}}, "summary"},
		"bad utf8":             {Narrative{Health: "degraded", Summary: "\xff", Recommendations: []string{"a", "b"}}, "UTF-8"},
		"too many findings":    {Narrative{Health: "degraded", Summary: "s", Findings: make([]string, 11), Recommendations: []string{"a", "b"}}, "findings"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ValidateNarrative(tc.n, HealthDegraded)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Health != HealthDegraded || got.Summary != "a b" || len(got.Recommendations) != 2 {
				t.Errorf("cleaned = %+v", got)
			}
		})
	}
}

func TestDate(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Date
		wantErr bool
	}{
		"plain":     {"2026-11-20", Date{2026, 11, 20}, false},
		"leap day":  {"2028-02-29", Date{2028, 2, 29}, false},
		"no leap":   {"2026-02-29", Date{}, true},
		"too early": {"1969-12-31", Date{}, true},
		"garbage":   {"yesterday", Date{}, true},
		"with time": {"2026-11-20T00:00:00Z", Date{}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDate(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseDate(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
	d := Date{2026, 3, 1}
	if d.AddDays(-1) != (Date{2026, 2, 28}) || d.AddDays(365) != (Date{2027, 3, 1}) {
		t.Errorf("AddDays across month/year boundaries broken")
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	// 2026-11-20 16:00 UTC is already the 21st in Tokyo: yesterday is the 20th.
	if y := Yesterday(time.Date(2026, 11, 20, 16, 0, 0, 0, time.UTC), tokyo); y != (Date{2026, 11, 20}) {
		t.Errorf("Yesterday in Tokyo = %s", y)
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-11-20", "2026-02-29", "0000-00-00", "9999-99-99", "2026-1-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			return
		}
		// Whatever parses prints back to the same text.
		if d.String() != s {
			t.Fatalf("ParseDate(%q) = %s", s, d)
		}
	})
}

// FuzzMarkdownEscape checks that no data string can open a Markdown/HTML
// structure or a new line.
func FuzzMarkdownEscape(f *testing.F) {
	for _, s := range []string{injectionPath, "a|b", "[x](javascript:alert(1))", "line\nbreak", "\\<", "`code`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := md(s)
		if strings.ContainsAny(out, "\r\n") {
			t.Fatalf("md(%q) keeps a line break", s)
		}
		for i := 0; i < len(out); i++ {
			if strings.IndexByte("<>|[]`*_#!&~", out[i]) < 0 {
				continue
			}
			// Count the backslashes before it: odd means escaped.
			n := 0
			for j := i - 1; j >= 0 && out[j] == '\\'; j-- {
				n++
			}
			if n%2 == 0 {
				t.Fatalf("md(%q) = %q leaves %q unescaped at %d", s, out, out[i], i)
			}
		}
	})
}

func FuzzValidateNarrative(f *testing.F) {
	f.Add("degraded", "summary", "finding", "rec one", "rec two")
	f.Add("GOOD", "<script>", "\u202e", "\x00", "")
	f.Fuzz(func(t *testing.T, health, summary, finding, r1, r2 string) {
		n, err := ValidateNarrative(Narrative{Health: Health(health), Summary: summary, Findings: []string{finding},
			Recommendations: []string{r1, r2}}, HealthDegraded)
		if err != nil {
			return
		}
		for _, s := range append([]string{n.Summary}, append(n.Findings, n.Recommendations...)...) {
			if s == "" || !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r\t\x00") {
				t.Fatalf("validated text %q", s)
			}
		}
		if n.Health != HealthDegraded {
			t.Fatalf("health %q passed", n.Health)
		}
	})
}

// TestAggregatesJSONBounded fills every list to TopN with the longest data
// strings and checks the JSON stays under internal/llm's 64 KiB input cap.
func TestAggregatesJSONBounded(t *testing.T) {
	cfg := DefaultConfig()
	long := strings.Repeat("/very-long-path-segment", 200)
	agg := &Aggregates{Date: "2026-11-20", Timezone: "UTC"}
	for i := 0; i < cfg.TopN; i++ {
		r := RouteStats{Route: long, Requests: 1 << 40, P50Ms: 123456.78, P95Ms: 123456.78, P99Ms: 123456.78}
		agg.SlowestRoutes = append(agg.SlowestRoutes, r)
		agg.BusiestRoutes = append(agg.BusiestRoutes, r)
		agg.ErrorRoutes = append(agg.ErrorRoutes, r)
		c := ClientStats{Client: long, Reasons: []string{long, long, long}}
		agg.TopBlockedClients = append(agg.TopBlockedClients, c)
		agg.NewBlockedClients = append(agg.NewBlockedClients, c)
		agg.SlowDrip = append(agg.SlowDrip, SlowDripClient{Client: long, SensitivePaths: []string{long, long, long, long, long},
			SamplePaths: []string{long, long, long, long, long}})
	}
	for i := 0; i < 2*cfg.TopN; i++ {
		agg.Blocks = append(agg.Blocks, BlockCount{Module: long, Reason: long})
	}
	cfg.analyse(agg)
	r, err := New(nopConn{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Build(t.Context(), scenarioDay, agg, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rep.AggregatesJSON); n > 64<<10 {
		t.Errorf("aggregates JSON is %d bytes, over 64 KiB", n)
	}
	if !strings.Contains(rep.Markdown, "…") {
		t.Errorf("long paths were not clipped")
	}
}
