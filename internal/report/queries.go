package report

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Conn is the part of a clickhouse-go connection the reporter uses;
// driver.Conn satisfies it.
type Conn interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
	Exec(ctx context.Context, query string, args ...any) error
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// The SQL below is written for ClickHouse 18.16 and modern servers alike:
// only quantiles/countIf/uniqExact-style aggregates, sub-selects, HAVING,
// ORDER BY … LIMIT and lambdas. No WITH FILL, window functions or Nullable.
// Every query aggregates in the server; Go only reads top-N lists.
const (
	// A caller is the user when authenticated, else the IP (access_log keeps
	// client_ip only for anonymous requests by default). Queries group by the
	// pair (user_id, anonIP) instead of a concatenated label: no string is
	// built per row, which matters at 10 M rows a day.
	anonIP    = `if(user_id != '', '', client_ip)`
	routeExpr = `if(route_name != '', route_name, path)`
	// dayExpr is the calendar day of a row in the report's timezone.
	dayExpr = `toDate(timestamp, @tz)`
	// Latency quantiles skip denials: they are answered by smartlayer, not
	// the upstream. quantilesTiming is made for request times in ms: exact up
	// to 5670 values or below 1024 ms, else rounded to 16 ms, with a small
	// state per group, so grouping by a scanner's thousands of paths stays
	// cheap. It returns Float32: convert so Go scans Float64.
	latencyExpr = `arrayMap(x -> toFloat64(x), quantilesTimingIf(0.5, 0.95, 0.99)(duration_ms, blocked = 0))`
	errorsExpr  = `countIf(status >= 400 AND blocked = 0)`
	server5xx   = `countIf(status >= 500 AND blocked = 0)`
)

// clientKey is a caller as grouped in SQL.
type clientKey struct{ user, ip string }

func (k clientKey) label() string {
	if k.user != "" {
		return "user:" + k.user
	}
	return "ip:" + k.ip
}

// clientFilter is the SQL predicate "the row belongs to one of keys".
func clientFilter(keys []clientKey) (string, []any) {
	var users, ips []string
	for _, k := range keys {
		if k.user != "" {
			users = append(users, k.user)
		} else {
			ips = append(ips, k.ip)
		}
	}
	var preds []string
	var args []any
	if len(users) > 0 {
		preds = append(preds, `(user_id != '' AND has(@users, user_id))`)
		args = append(args, clickhouse.Named("users", users))
	}
	if len(ips) > 0 {
		preds = append(preds, `(user_id = '' AND has(@ips, client_ip))`)
		args = append(args, clickhouse.Named("ips", ips))
	}
	if len(preds) == 0 {
		return "0", nil
	}
	return "(" + strings.Join(preds, " OR ") + ")", args
}

// span is the rows of the days [from, to] in the report's timezone. The date
// column (the partition key) is widened by a day on each side because it may
// have been computed in another timezone; the timestamp bounds are exact.
type span struct{ from, to Date }

func (s span) where() string {
	return `date >= toDate(@date_lo) AND date <= toDate(@date_hi) AND timestamp >= @ts_lo AND timestamp < @ts_hi`
}

func (s span) args(loc *time.Location) []any {
	return []any{
		clickhouse.Named("date_lo", s.from.AddDays(-1).String()),
		clickhouse.Named("date_hi", s.to.AddDays(1).String()),
		clickhouse.Named("ts_lo", s.from.Start(loc).Unix()),
		clickhouse.Named("ts_hi", s.to.AddDays(1).Start(loc).Unix()),
		clickhouse.Named("tz", loc.String()),
	}
}

// aggregator runs the report's queries for one day.
type aggregator struct {
	conn  Conn
	cfg   Config
	table string
	day   Date
}

func (a *aggregator) args(s span, more ...any) []any {
	return append(s.args(a.cfg.Location), more...)
}

// sensitive is the SQL predicate "path starts with a sensitive prefix". It
// is a plain OR of startsWith: 18.16 drops a column that a sub-select uses
// only inside a lambda (arrayExists) and then fails with "Unknown
// identifier".
func (a *aggregator) sensitive() (string, []any) {
	if len(a.cfg.SensitivePrefixes) == 0 {
		return "0", nil
	}
	preds := make([]string, len(a.cfg.SensitivePrefixes))
	args := make([]any, len(a.cfg.SensitivePrefixes))
	for i, p := range a.cfg.SensitivePrefixes {
		name := fmt.Sprintf("sens%d", i)
		preds[i] = "startsWith(path, @" + name + ")"
		args[i] = clickhouse.Named(name, p)
	}
	return "(" + strings.Join(preds, " OR ") + ")", args
}

func (a *aggregator) sql(q string) string { return strings.ReplaceAll(q, "{t}", a.table) }

// collect runs every query and fills agg (without the analysis).
func (a *aggregator) collect(ctx context.Context) (*Aggregates, error) {
	agg := &Aggregates{Date: a.day.String(), Timezone: a.cfg.Location.String()}
	steps := []struct {
		name string
		fn   func(context.Context, *Aggregates) error
	}{
		{"totals", a.totals},
		{"history", a.history},
		{"blocks", a.blocks},
		{"routes", a.routes},
		{"blocked clients", a.blockedClients},
		{"new blocked clients", a.newBlockedClients},
		{"slow-drip clients", a.slowDrip},
	}
	for _, s := range steps {
		if err := s.fn(ctx, agg); err != nil {
			return nil, fmt.Errorf("aggregate %s for %s: %w", s.name, a.day, err)
		}
	}
	return agg, nil
}

func (a *aggregator) totals(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	q := a.sql(`SELECT count(), uniqExact(user_id, ` + anonIP + `), uniqExactIf(user_id, user_id != ''),
	countIf(status >= 200 AND status < 300), countIf(status >= 300 AND status < 400),
	countIf(status >= 400 AND status < 500), countIf(status >= 500),
	countIf(blocked = 1), countIf(blocked = 0 AND block_reason != ''),
	` + errorsExpr + `, ` + server5xx + `, ` + latencyExpr + `, sum(bytes_out)
	FROM {t} WHERE ` + s.where())
	t := &agg.Totals
	var qs []float64
	if err := a.conn.QueryRow(ctx, q, a.args(s)...).Scan(&t.Requests, &t.UniqueClients, &t.UniqueUsers,
		&t.Status2xx, &t.Status3xx, &t.Status4xx, &t.Status5xx, &t.Blocked, &t.ShadowBlocked,
		&t.Errors, &t.ServerErrors, &qs, &t.BytesOut); err != nil {
		return err
	}
	t.P50Ms, t.P95Ms, t.P99Ms = quant(qs)
	t.ErrorRate = ratio(t.Errors, t.Requests)
	t.ServerErrorRate = ratio(t.ServerErrors, t.Requests)
	t.ClientErrorRate = ratio(t.Errors-t.ServerErrors, t.Requests)
	t.BlockedRate = ratio(t.Blocked, t.Requests)
	return nil
}

// history fills the previous day and the average of the 7 days before.
func (a *aggregator) history(ctx context.Context, agg *Aggregates) error {
	s := span{a.day.AddDays(-7), a.day.AddDays(-1)}
	q := a.sql(`SELECT toString(` + dayExpr + `) AS d, count(), uniqExact(user_id, ` + anonIP + `),
	` + errorsExpr + `, ` + server5xx + `, countIf(blocked = 1), toFloat64(quantileTimingIf(0.95)(duration_ms, blocked = 0))
	FROM {t} WHERE ` + s.where() + ` GROUP BY d ORDER BY d`)
	rows, err := a.conn.Query(ctx, q, a.args(s)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	prev := a.day.AddDays(-1).String()
	var sum DaySummary
	for rows.Next() {
		var (
			d                                   string
			n, clients, errs, serverErrs, block uint64
			p95                                 float64
		)
		if err := rows.Scan(&d, &n, &clients, &errs, &serverErrs, &block, &p95); err != nil {
			return err
		}
		ds := DaySummary{Requests: float64(n), UniqueClients: float64(clients), ErrorRate: ratio(errs, n),
			ServerErrorRate: ratio(serverErrs, n), BlockedRate: ratio(block, n), P95Ms: finite(p95)}
		if d == prev {
			agg.PreviousDay = ds
		}
		agg.BaselineDays++
		sum.Requests += ds.Requests
		sum.UniqueClients += ds.UniqueClients
		sum.ErrorRate += ds.ErrorRate
		sum.ServerErrorRate += ds.ServerErrorRate
		sum.BlockedRate += ds.BlockedRate
		sum.P95Ms += ds.P95Ms
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n := float64(agg.BaselineDays); n > 0 {
		agg.SevenDayAverage = DaySummary{Requests: round2(sum.Requests / n), UniqueClients: round2(sum.UniqueClients / n),
			ErrorRate: sum.ErrorRate / n, ServerErrorRate: sum.ServerErrorRate / n, BlockedRate: sum.BlockedRate / n,
			P95Ms: round2(sum.P95Ms / n)}
	}
	return nil
}

func (a *aggregator) blocks(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	q := a.sql(`SELECT block_module, block_reason, blocked, count() AS n, uniqExact(user_id, ` + anonIP + `)
	FROM {t} WHERE ` + s.where() + ` AND (blocked = 1 OR block_reason != '')
	GROUP BY block_module, block_reason, blocked ORDER BY n DESC, block_reason LIMIT @top`)
	rows, err := a.conn.Query(ctx, q, a.args(s, clickhouse.Named("top", 2*a.cfg.TopN))...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b       BlockCount
			blocked uint8
		)
		if err := rows.Scan(&b.Module, &b.Reason, &blocked, &b.Requests, &b.Clients); err != nil {
			return err
		}
		b.Shadow = blocked == 0
		agg.Blocks = append(agg.Blocks, b)
	}
	return rows.Err()
}

// routes fills the slowest, busiest and most erroring routes: three top-N
// queries over the same grouping, so no route list ever reaches Go whole.
func (a *aggregator) routes(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	base := `SELECT ` + routeExpr + ` AS route, count() AS n, countIf(blocked = 0) AS served,
	` + errorsExpr + ` AS errs, ` + server5xx + ` AS errs5, countIf(blocked = 1),
	countIf(position(response_flags, 'UT') > 0), ` + latencyExpr + ` AS q
	FROM {t} WHERE ` + s.where() + ` GROUP BY route `
	lists := []struct {
		dst  *[]RouteStats
		tail string
	}{
		{&agg.SlowestRoutes, `HAVING served >= @min ORDER BY q[2] DESC, q[3] DESC, route LIMIT @top`},
		{&agg.BusiestRoutes, `ORDER BY n DESC, route LIMIT @top`},
		// A route with 5xx always counts; 4xx-only routes need the minimum
		// volume, or a scanner's one-off 404s would fill the list.
		{&agg.ErrorRoutes, `HAVING errs5 > 0 OR errs >= @min ORDER BY errs5 DESC, errs DESC, route LIMIT @top`},
	}
	for _, l := range lists {
		rows, err := a.conn.Query(ctx, a.sql(base+l.tail), a.args(s,
			clickhouse.Named("min", a.cfg.MinRouteRequests), clickhouse.Named("top", a.cfg.TopN))...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				r  RouteStats
				qs []float64
			)
			if err := rows.Scan(&r.Route, &r.Requests, &r.Served, &r.Errors, &r.ServerErrors, &r.Blocked, &r.Timeouts, &qs); err != nil {
				rows.Close()
				return err
			}
			r.P50Ms, r.P95Ms, r.P99Ms = quant(qs)
			r.ErrorRate = ratio(r.Errors, r.Requests)
			*l.dst = append(*l.dst, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// blockedClients ranks the clients with the most blocked requests, then
// reads their total requests and distinct paths: two passes, so no per-client
// state is built for the whole day's traffic.
func (a *aggregator) blockedClients(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	q := a.sql(`SELECT user_id, ` + anonIP + ` AS anon_ip, count() AS b, topK(3)(block_reason)
	FROM {t} WHERE ` + s.where() + ` AND blocked = 1 GROUP BY user_id, anon_ip
	ORDER BY b DESC, user_id, anon_ip LIMIT @top`)
	rows, err := a.conn.Query(ctx, q, a.args(s, clickhouse.Named("top", a.cfg.TopN))...)
	if err != nil {
		return err
	}
	var keys []clientKey
	for rows.Next() {
		var (
			k clientKey
			c ClientStats
		)
		if err := rows.Scan(&k.user, &k.ip, &c.Blocked, &c.Reasons); err != nil {
			rows.Close()
			return err
		}
		c.Client = k.label()
		keys = append(keys, k)
		agg.TopBlockedClients = append(agg.TopBlockedClients, c)
	}
	err = rows.Err()
	rows.Close()
	if err != nil || len(keys) == 0 {
		return err
	}
	filter, fargs := clientFilter(keys)
	rows, err = a.conn.Query(ctx, a.sql(`SELECT user_id, `+anonIP+` AS anon_ip, count(), uniqExact(path)
	FROM {t} WHERE `+s.where()+` AND `+filter+` GROUP BY user_id, anon_ip`), a.args(s, fargs...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	byLabel := make(map[string]*ClientStats, len(keys))
	for i := range agg.TopBlockedClients {
		byLabel[agg.TopBlockedClients[i].Client] = &agg.TopBlockedClients[i]
	}
	for rows.Next() {
		var (
			k        clientKey
			n, paths uint64
		)
		if err := rows.Scan(&k.user, &k.ip, &n, &paths); err != nil {
			return err
		}
		if c, ok := byLabel[k.label()]; ok {
			c.Requests, c.Paths = n, paths
		}
	}
	return rows.Err()
}

// newBlockedClients lists clients blocked on the day and on none of the 7
// days before.
func (a *aggregator) newBlockedClients(ctx context.Context, agg *Aggregates) error {
	s := span{a.day.AddDays(-7), a.day}
	inner := `SELECT user_id, ` + anonIP + ` AS anon_ip, countIf(` + dayExpr + ` = toDate(@day)) AS today,
	countIf(` + dayExpr + ` < toDate(@day)) AS prior, uniqExactIf(path, ` + dayExpr + ` = toDate(@day)) AS paths,
	topKIf(3)(block_reason, ` + dayExpr + ` = toDate(@day)) AS reasons
	FROM {t} WHERE ` + s.where() + ` AND blocked = 1 GROUP BY user_id, anon_ip HAVING today > 0 AND prior = 0`
	args := a.args(s, clickhouse.Named("day", a.day.String()), clickhouse.Named("top", a.cfg.TopN))
	if err := a.conn.QueryRow(ctx, a.sql(`SELECT count() FROM (`+inner+`)`), args...).Scan(&agg.NewBlockedClientsTotal); err != nil {
		return err
	}
	rows, err := a.conn.Query(ctx, a.sql(`SELECT user_id, anon_ip, today, paths, reasons FROM (`+inner+`) ORDER BY today DESC, user_id, anon_ip LIMIT @top`), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k clientKey
			c ClientStats
		)
		if err := rows.Scan(&k.user, &k.ip, &c.Blocked, &c.Paths, &c.Reasons); err != nil {
			return err
		}
		c.Client, c.Requests = k.label(), c.Blocked
		agg.NewBlockedClients = append(agg.NewBlockedClients, c)
	}
	return rows.Err()
}

// slowDrip finds clients that stay under the radar of per-minute rules: a
// few requests a day, several days a week, on sensitive routes or mostly
// failing. Failures count only answers smartlayer did not block: a client
// denied every day is already seen, not under the radar. The first pass
// keeps only counters per (client, day); the paths are read in a second
// pass for the few clients found.
func (a *aggregator) slowDrip(ctx context.Context, agg *Aggregates) error {
	sd := a.cfg.SlowDrip
	s := span{a.day.AddDays(1 - sd.WindowDays), a.day}
	sens, sensArgs := a.sensitive()
	q := a.sql(`SELECT user_id, anon_ip, count() AS days, sum(n) AS requests, max(n) AS max_daily,
	sum(sens) AS sensitive, sum(errs) AS errors
	FROM (
		SELECT user_id, ` + anonIP + ` AS anon_ip, ` + dayExpr + ` AS day, count() AS n,
		countIf(` + sens + `) AS sens, countIf(status >= 400 AND blocked = 0) AS errs
		FROM {t} WHERE ` + s.where() + ` GROUP BY user_id, anon_ip, day
	)
	GROUP BY user_id, anon_ip
	HAVING days >= @min_days AND max_daily <= @max_daily AND (sensitive > 0 OR errors >= @min_err * requests)
	ORDER BY sensitive DESC, days DESC, requests DESC, user_id, anon_ip LIMIT @top`)
	args := a.args(s, append(sensArgs,
		clickhouse.Named("min_days", sd.MinDays), clickhouse.Named("max_daily", sd.MaxDailyRequests),
		clickhouse.Named("min_err", sd.MinErrorRatio), clickhouse.Named("top", a.cfg.TopN))...)
	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	var keys []clientKey
	for rows.Next() {
		var (
			k clientKey
			c SlowDripClient
		)
		if err := rows.Scan(&k.user, &k.ip, &c.DaysActive, &c.Requests, &c.MaxDaily, &c.SensitiveHits, &c.Errors); err != nil {
			rows.Close()
			return err
		}
		c.Client = k.label()
		c.ErrorRate = ratio(c.Errors, c.Requests)
		keys = append(keys, k)
		agg.SlowDrip = append(agg.SlowDrip, c)
	}
	err = rows.Err()
	rows.Close()
	if err != nil || len(keys) == 0 {
		return err
	}
	filter, fargs := clientFilter(keys)
	rows, err = a.conn.Query(ctx, a.sql(`SELECT user_id, `+anonIP+` AS anon_ip,
	arraySlice(arraySort(groupUniqArrayIf(path, `+sens+`)), 1, 5), arraySlice(arraySort(groupUniqArray(path)), 1, 5)
	FROM {t} WHERE `+s.where()+` AND `+filter+` GROUP BY user_id, anon_ip`), a.args(s, append(sensArgs, fargs...)...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	byLabel := make(map[string]*SlowDripClient, len(keys))
	for i := range agg.SlowDrip {
		byLabel[agg.SlowDrip[i].Client] = &agg.SlowDrip[i]
	}
	for rows.Next() {
		var (
			k             clientKey
			sens, samples []string
		)
		if err := rows.Scan(&k.user, &k.ip, &sens, &samples); err != nil {
			return err
		}
		if c, ok := byLabel[k.label()]; ok {
			c.SensitivePaths, c.SamplePaths = sens, samples
		}
	}
	return rows.Err()
}

func ratio(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// quant unpacks quantiles(0.5, 0.95, 0.99); ClickHouse answers NaN for an
// empty set, which JSON cannot carry.
func quant(qs []float64) (p50, p95, p99 float64) {
	if len(qs) != 3 {
		return 0, 0, 0
	}
	return round2(finite(qs[0])), round2(finite(qs[1])), round2(finite(qs[2]))
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
