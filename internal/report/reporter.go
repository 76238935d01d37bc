package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Reporter builds, stores and delivers daily reports.
type Reporter struct {
	conn    Conn
	cfg     Config
	sum     Summarizer
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	http    *http.Client
	dial    func(ctx context.Context, addr string) (NodeConn, error)
}

// NodeConn is a connection to one node of a cluster.
type NodeConn interface {
	Conn
	Close() error
}

// WithNodeDialer lets retention reach every node of Config.Cluster: dial
// opens one (host:port as system.clusters lists it).
func WithNodeDialer(dial func(ctx context.Context, addr string) (NodeConn, error)) Option {
	return func(r *Reporter) { r.dial = dial }
}

// Option sets an optional dependency of a Reporter.
type Option func(*Reporter)

// WithSummarizer makes the Reporter ask s for the narrative.
func WithSummarizer(s Summarizer) Option { return func(r *Reporter) { r.sum = s } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(r *Reporter) { r.log = l } }

// WithRegisterer registers the reporter's metrics (default: none).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(r *Reporter) { r.metrics = newMetrics(reg) }
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(r *Reporter) { r.now = now } }

// WithHTTPClient sets the client used for the webhook.
func WithHTTPClient(c *http.Client) Option { return func(r *Reporter) { r.http = c } }

// New returns a Reporter reading and writing cfg.Database through conn.
func New(conn Conn, cfg Config, opts ...Option) (*Reporter, error) {
	if conn == nil {
		return nil, errors.New("report: nil ClickHouse connection")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("report: invalid config: %w", err)
	}
	r := &Reporter{conn: conn, cfg: cfg, now: time.Now, http: http.DefaultClient}
	for _, o := range opts {
		o(r)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.metrics == nil {
		r.metrics = newMetrics(nil)
	}
	if r.cfg.Cluster != "" && r.dial == nil {
		return nil, errors.New("report: a cluster needs WithNodeDialer (retention drops partitions on every node)")
	}
	return r, nil
}

func (r *Reporter) table(name string) string { return "`" + r.cfg.Database + "`.`" + name + "`" }

// Today is now's calendar day in the report's timezone.
func (r *Reporter) Today() Date { return DateOf(r.now().In(r.cfg.Location)) }

// Aggregate computes the day's aggregates in ClickHouse and analyses them.
func (r *Reporter) Aggregate(ctx context.Context, day Date) (*Aggregates, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
	defer cancel()
	if r.cfg.MaxThreads > 0 {
		// A per-query setting, known to every server version (an unknown
		// setting would fail the query on 18.16).
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": r.cfg.MaxThreads}))
	}
	a := &aggregator{conn: r.conn, cfg: r.cfg, table: r.table("access_log"), day: day}
	agg, err := a.collect(ctx)
	if err != nil {
		return nil, err
	}
	r.cfg.analyse(agg)
	return agg, nil
}

// BuildOptions tunes Build.
type BuildOptions struct {
	// NoLLM skips the Summarizer even when one is configured.
	NoLLM bool
}

// Build writes the narrative (from the Summarizer when configured and its
// answer is valid, else deterministically) and renders Markdown and HTML.
// It never returns an empty report.
func (r *Reporter) Build(ctx context.Context, day Date, agg *Aggregates, opts BuildOptions) (*Report, error) {
	normalise(agg)
	js, err := json.Marshal(agg)
	if err != nil {
		return nil, fmt.Errorf("encode aggregates for %s: %w", day, err)
	}
	rep := &Report{Date: day, GeneratedAt: r.now(), Aggregates: agg, AggregatesJSON: js}
	rep.Narrative, rep.Source, rep.FallbackReason = r.narrative(ctx, agg, js, opts)
	rep.Markdown = renderMarkdown(rep)
	if rep.HTML, err = renderHTML(rep); err != nil {
		return nil, err
	}
	return rep, nil
}

func (r *Reporter) narrative(ctx context.Context, agg *Aggregates, js []byte, opts BuildOptions) (Narrative, NarrativeSource, string) {
	fallback := func(reason string, err error) (Narrative, NarrativeSource, string) {
		r.metrics.narratives.WithLabelValues(string(SourceDeterministic), reason).Inc()
		why := reason
		if err != nil {
			why = reason + ": " + err.Error()
			r.log.Warn("report: using the deterministic narrative", "reason", reason, "err", err)
		}
		return r.cfg.deterministic(agg), SourceDeterministic, why
	}
	switch {
	case r.sum == nil:
		return fallback("not_configured", nil)
	case opts.NoLLM:
		return fallback("disabled", nil)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.NarrativeTimeout)
	defer cancel()
	n, err := r.sum.Narrative(ctx, js)
	if err != nil {
		return fallback("error", err)
	}
	n, err = ValidateNarrative(n, agg.Health)
	if err != nil {
		return fallback("invalid", err)
	}
	r.metrics.narratives.WithLabelValues(string(SourceLLM), "used").Inc()
	return n, SourceLLM, ""
}

// maxDataRunes caps every string that comes from the logs (paths, client
// IDs, reasons): scanners send kilobyte-long paths, and the aggregates must
// stay small enough for the model's input (internal/llm takes 64 KiB).
const maxDataRunes = 160

func clipData(s string) string {
	if utf8.RuneCountInString(s) <= maxDataRunes {
		return s
	}
	return string([]rune(s)[:maxDataRunes-1]) + "…"
}

func clipAll(ss []string) []string {
	for i := range ss {
		ss[i] = clipData(ss[i])
	}
	return ss
}

// normalise clips data strings and replaces nil lists with empty ones so the
// JSON has [] rather than null everywhere.
func normalise(a *Aggregates) {
	for _, l := range [][]RouteStats{a.SlowestRoutes, a.BusiestRoutes, a.ErrorRoutes} {
		for i := range l {
			l[i].Route = clipData(l[i].Route)
		}
	}
	for _, l := range [][]ClientStats{a.TopBlockedClients, a.NewBlockedClients} {
		for i := range l {
			l[i].Client = clipData(l[i].Client)
			l[i].Trigger = clipData(l[i].Trigger)
			clipAll(l[i].Reasons)
			if l[i].HourlyBlocked == nil {
				l[i].HourlyBlocked = []uint64{}
			}
		}
	}
	for i := range a.Blocks {
		a.Blocks[i].Module, a.Blocks[i].Reason = clipData(a.Blocks[i].Module), clipData(a.Blocks[i].Reason)
	}
	for i := range a.SlowDrip {
		c := &a.SlowDrip[i]
		c.Client = clipData(c.Client)
		clipAll(c.SensitivePaths)
		clipAll(c.SamplePaths)
		if c.SensitivePaths == nil {
			c.SensitivePaths = []string{}
		}
		if c.SamplePaths == nil {
			c.SamplePaths = []string{}
		}
	}
	for _, l := range []*[]RouteStats{&a.SlowestRoutes, &a.BusiestRoutes, &a.ErrorRoutes} {
		if *l == nil {
			*l = []RouteStats{}
		}
	}
	for _, l := range []*[]ClientStats{&a.TopBlockedClients, &a.NewBlockedClients} {
		if *l == nil {
			*l = []ClientStats{}
		}
		for i := range *l {
			if (*l)[i].Reasons == nil {
				(*l)[i].Reasons = []string{}
			}
		}
	}
	if a.Blocks == nil {
		a.Blocks = []BlockCount{}
	}
	for i := range a.BanTriggers {
		a.BanTriggers[i].Trigger = clipData(a.BanTriggers[i].Trigger)
	}
	if a.BanTriggers == nil {
		a.BanTriggers = []BanTrigger{}
	}
	for _, l := range []*[]FailOpenCount{&a.FailOpen, &a.FailOpenReasons} {
		for i := range *l {
			(*l)[i].Reason = clipData((*l)[i].Reason)
		}
		if *l == nil {
			*l = []FailOpenCount{}
		}
	}
	if a.Timeline == nil {
		a.Timeline = []HourStats{}
	}
	if a.GenericRouteNames == nil {
		a.GenericRouteNames = []string{}
	}
	if a.SlowDrip == nil {
		a.SlowDrip = []SlowDripClient{}
	}
	if a.HealthReasons == nil {
		a.HealthReasons = []string{}
	}
}

// RunOptions is one reporter invocation.
type RunOptions struct {
	// Date is the day to report; zero means yesterday in the report's timezone.
	Date Date
	// DryRun computes and prints the report and the partitions retention
	// would drop, and stores, writes, delivers and drops nothing.
	DryRun bool
	// NoLLM skips the Summarizer.
	NoLLM bool
	// Stdout receives the Markdown report (nil: not printed).
	Stdout io.Writer
}

// Result is what a run did.
type Result struct {
	Report *Report
	Files  []string
	// Dropped lists the partitions retention dropped (with DryRun: would drop).
	Dropped []Partition
}

// Run builds the report for one day, prints it, writes the files, stores it,
// delivers it and applies retention, in that order. A failure of one output
// does not stop the others; the returned error joins them. The Result is
// non-nil whenever the report itself was built.
func (r *Reporter) Run(ctx context.Context, opts RunOptions) (res *Result, err error) {
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
		}
		r.metrics.runs.WithLabelValues(result).Inc()
	}()
	day := opts.Date
	if day == (Date{}) {
		day = Yesterday(r.now(), r.cfg.Location)
	}
	stage := func(name string, start time.Time) {
		r.metrics.stage.WithLabelValues(name).Set(time.Since(start).Seconds())
	}

	start := time.Now()
	agg, err := r.Aggregate(ctx, day)
	if err != nil {
		return nil, err
	}
	stage("aggregate", start)

	start = time.Now()
	rep, err := r.Build(ctx, day, agg, BuildOptions{NoLLM: opts.NoLLM})
	if err != nil {
		return nil, err
	}
	stage("narrative", start)
	res = &Result{Report: rep}
	r.log.Info("report built", "date", day.String(), "health", string(agg.Health), "requests", agg.Totals.Requests,
		"narrative", string(rep.Source), "fallback", rep.FallbackReason)

	var errs []error
	if opts.Stdout != nil {
		if _, err := io.WriteString(opts.Stdout, rep.Markdown); err != nil {
			errs = append(errs, fmt.Errorf("print report: %w", err))
		}
	}
	if !opts.DryRun {
		if r.cfg.OutDir != "" {
			files, err := WriteFiles(r.cfg.OutDir, rep)
			res.Files = files
			errs = append(errs, err)
		}
		start = time.Now()
		errs = append(errs, r.Store(ctx, rep))
		stage("store", start)
		start = time.Now()
		errs = append(errs, r.Deliver(ctx, rep))
		stage("deliver", start)
	}
	start = time.Now()
	res.Dropped, err = r.Retention(ctx, r.Today(), opts.DryRun)
	errs = append(errs, err)
	stage("retention", start)
	return res, errors.Join(errs...)
}
