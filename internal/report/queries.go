package report

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
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
	anonIP = `if(user_id != '', '', client_ip)`
	// clientHash is the same caller as one UInt64, for the widest grouping.
	clientHash = `cityHash64(user_id, ` + anonIP + `)`
	// routeExpr is the endpoint a row counts for: Envoy's route name unless
	// it is generic (@generic_routes, routeGrouping), else the path template.
	routeExpr = `if(has(@generic_routes, route_name), ` + PathTemplateSQL + `, route_name)`
	// hourExpr is the hour of a row in the report's timezone.
	hourExpr = `toHour(timestamp, @tz)`
	// failOpenCond: the request passed without a check. Either authz's fail
	// mode allowed it, or Envoy served it without any ext_authz answer
	// (failure_mode_allow when authz was unreachable); Envoy's own early
	// replies without an answer (jwt_authn 401, 404 no route) are 4xx and
	// protected nothing, so they do not count.
	failOpenCond = `(decision = 'failed_open' OR (decision = 'unchecked' AND status > 0 AND status < 400))`
	// failOpenReason labels a fail-open row: authz's failmode.* reason, or
	// "unchecked" for Envoy's.
	failOpenReason = `if(decision = 'failed_open', block_reason, 'unchecked')`
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
	// clients are the clients of the client tables, in table order;
	// clientDetails fills every table's rows for them from one query.
	clients []clientKey
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
		{"timeline", a.timeline},
		{"fail-open", a.failOpen},
		{"blocks", a.blocks},
		{"ban triggers", a.banTriggers},
		{"route grouping", a.routeGrouping},
		{"routes", a.routes},
		{"blocked clients", a.blockedClients},
		{"new blocked clients", a.newBlockedClients},
		{"client details", a.clientDetails},
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
	q := a.sql(`SELECT count(), uniqIf(user_id, user_id != '') + uniqIf(client_ip, user_id = ''), uniqIf(user_id, user_id != ''),
	countIf(status >= 200 AND status < 300), countIf(status >= 300 AND status < 400),
	countIf(status >= 400 AND status < 500), countIf(status >= 500),
	countIf(blocked = 1), countIf(decision = 'shadow'),
	countIf(` + failOpenCond + `), countIf(` + failOpenCond + ` AND decision = 'unchecked'), countIf(decision = 'failed_closed'),
	` + errorsExpr + `, ` + server5xx + `, ` + latencyExpr + `, sum(bytes_out)
	FROM {t} WHERE ` + s.where())
	t := &agg.Totals
	var qs []float64
	if err := a.conn.QueryRow(ctx, q, a.args(s)...).Scan(&t.Requests, &t.UniqueClients, &t.UniqueUsers,
		&t.Status2xx, &t.Status3xx, &t.Status4xx, &t.Status5xx, &t.Blocked, &t.ShadowBlocked,
		&t.FailedOpen, &t.Unchecked, &t.FailedClosed,
		&t.Errors, &t.ServerErrors, &qs, &t.BytesOut); err != nil {
		return err
	}
	t.FailOpenRatio = ratio(t.FailedOpen, t.Requests)
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
	q := a.sql(`SELECT toString(` + dayExpr + `) AS d, count(), uniqIf(user_id, user_id != '') + uniqIf(client_ip, user_id = ''),
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
			p := ds
			agg.PreviousDay = &p
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
		agg.SevenDayAverage = &DaySummary{Requests: round2(sum.Requests / n), UniqueClients: round2(sum.UniqueClients / n),
			ErrorRate: sum.ErrorRate / n, ServerErrorRate: sum.ServerErrorRate / n, BlockedRate: sum.BlockedRate / n,
			P95Ms: round2(sum.P95Ms / n)}
	}
	return nil
}

func (a *aggregator) blocks(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	// Denials and shadow would-be denials; fail-mode answers have their
	// own table (failOpen), they are no rule's verdict.
	q := a.sql(`SELECT block_module, block_reason, blocked, count() AS n, uniqIf(user_id, user_id != '') + uniqIf(client_ip, user_id = '')
	FROM {t} WHERE ` + s.where() + ` AND decision IN ('denied', 'shadow')
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

// routes fills the slowest, busiest and most erroring routes from one
// GROUP BY route: the routes are collected into an array of tuples, each
// list is sorted and cut to TopN inside ClickHouse, and ARRAY JOIN returns
// only those rows. One pass over the day instead of three, and no route list
// ever reaches Go whole.
func (a *aggregator) routes(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	// Tuple fields: 1 route, 2 requests, 3 served, 4 errors, 5 5xx,
	// 6 blocked, 7 upstream timeouts, 8 [p50, p95, p99].
	q := a.sql(`SELECT tupleElement(lx, 1),
	tupleElement(tupleElement(lx, 2), 1), tupleElement(tupleElement(lx, 2), 2), tupleElement(tupleElement(lx, 2), 3),
	tupleElement(tupleElement(lx, 2), 4), tupleElement(tupleElement(lx, 2), 5), tupleElement(tupleElement(lx, 2), 6),
	tupleElement(tupleElement(lx, 2), 7), tupleElement(tupleElement(lx, 2), 8)
	FROM (
		SELECT arrayConcat(
			arrayMap(x -> (1, x), arraySlice(arrayReverseSort(
				x -> (tupleElement(x, 8)[2], tupleElement(x, 8)[3], tupleElement(x, 1)),
				arrayFilter(x -> tupleElement(x, 3) >= @min, rows)), 1, @top)),
			arrayMap(x -> (2, x), arraySlice(arrayReverseSort(
				x -> (tupleElement(x, 2), tupleElement(x, 1)), rows), 1, @top)),
			arrayMap(x -> (3, x), arraySlice(arrayReverseSort(
				x -> (tupleElement(x, 5), tupleElement(x, 4), tupleElement(x, 1)),
				arrayFilter(x -> tupleElement(x, 5) > 0 OR tupleElement(x, 4) >= @min, rows)), 1, @top))
		) AS lists
		FROM (
			SELECT groupArray((route, n, served, errs, errs5, blk, tmo, q)) AS rows
			FROM (
				SELECT ` + routeExpr + ` AS route, count() AS n, countIf(blocked = 0) AS served,
				` + errorsExpr + ` AS errs, ` + server5xx + ` AS errs5, countIf(blocked = 1) AS blk,
				countIf(position(response_flags, 'UT') > 0) AS tmo, ` + latencyExpr + ` AS q
				FROM {t} WHERE ` + s.where() + ` GROUP BY route
			)
		)
	) ARRAY JOIN lists AS lx`)
	rows, err := a.conn.Query(ctx, q, a.args(s,
		clickhouse.Named("min", a.cfg.MinRouteRequests), clickhouse.Named("top", a.cfg.TopN),
		clickhouse.Named("generic_routes", agg.GenericRouteNames))...)
	if err != nil {
		return err
	}
	defer rows.Close()
	lists := map[uint8]*[]RouteStats{1: &agg.SlowestRoutes, 2: &agg.BusiestRoutes, 3: &agg.ErrorRoutes}
	for rows.Next() {
		var (
			list uint8
			r    RouteStats
			qs   []float64
		)
		if err := rows.Scan(&list, &r.Route, &r.Requests, &r.Served, &r.Errors, &r.ServerErrors, &r.Blocked, &r.Timeouts, &qs); err != nil {
			return err
		}
		dst, ok := lists[list]
		if !ok {
			return fmt.Errorf("routes: unexpected list %d", list)
		}
		r.P50Ms, r.P95Ms, r.P99Ms = quant(qs)
		r.ErrorRate = ratio(r.Errors, r.Requests)
		r.By = "route"
		if slices.Contains(agg.GenericRouteNames, r.Route) || strings.HasPrefix(r.Route, "/") {
			r.By = "path"
		}
		*dst = append(*dst, r)
	}
	return rows.Err()
}

// blockedClients ranks the clients with the most blocked requests;
// clientDetails then reads the rest of their numbers, so no per-client state
// is built for the whole day's traffic.
func (a *aggregator) blockedClients(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	q := a.sql(`SELECT user_id, ` + anonIP + ` AS anon_ip, count() AS b
	FROM {t} WHERE ` + s.where() + ` AND blocked = 1 GROUP BY user_id, anon_ip
	ORDER BY b DESC, user_id, anon_ip LIMIT @top`)
	var err error
	agg.TopBlockedClients, err = a.clientTable(ctx, q, a.args(s, clickhouse.Named("top", a.cfg.TopN)))
	return err
}

// newBlockedClients lists clients blocked on the day and on none of the 7
// days before. One pass over the blocked rows gives the total and the top N
// (groupArray + sort in ClickHouse); clientDetails fills in the rest.
func (a *aggregator) newBlockedClients(ctx context.Context, agg *Aggregates) error {
	s := span{a.day.AddDays(-7), a.day}
	q := a.sql(`SELECT total, tupleElement(x, 1), tupleElement(x, 2), tupleElement(x, 3)
	FROM (
		SELECT count() AS total,
		arraySlice(arraySort(x -> (-toInt64(tupleElement(x, 3)), tupleElement(x, 1), tupleElement(x, 2)),
			groupArray((user_id, anon_ip, today))), 1, @top) AS top
		FROM (
			SELECT user_id, ` + anonIP + ` AS anon_ip, countIf(` + dayExpr + ` = toDate(@day)) AS today,
			countIf(` + dayExpr + ` < toDate(@day)) AS prior
			FROM {t} WHERE ` + s.where() + ` AND blocked = 1 GROUP BY user_id, anon_ip
			HAVING today > 0 AND prior = 0
		)
	) ARRAY JOIN top AS x`)
	var err error
	agg.NewBlockedClients, err = a.clientTable(ctx, q,
		a.args(s, clickhouse.Named("day", a.day.String()), clickhouse.Named("top", a.cfg.TopN)), &agg.NewBlockedClientsTotal)
	return err
}

// clientTable reads a table of clients: each row of q is the columns lead
// scans into, then user_id, anon_ip and the blocked count. Its clients are
// remembered, once each, for clientDetails.
func (a *aggregator) clientTable(ctx context.Context, q string, args []any, lead ...any) ([]ClientStats, error) {
	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ClientStats
	for rows.Next() {
		var (
			k clientKey
			c ClientStats
		)
		if err := rows.Scan(append(lead[:len(lead):len(lead)], &k.user, &k.ip, &c.Blocked)...); err != nil {
			return nil, err
		}
		c.Client = k.label()
		out = append(out, c)
		if !slices.Contains(a.clients, k) {
			a.clients = append(a.clients, k)
		}
	}
	return out, rows.Err()
}

// slowDrip finds clients that stay under the radar of per-minute rules: a
// few requests a day, several days a week, on sensitive routes or mostly
// failing. Failures count only answers smartlayer did not block: a client
// denied every day is already seen, not under the radar.
//
// This is the one query over the whole window's traffic, so the first pass
// groups by a 64-bit hash of the client (half the cost of two String keys)
// and keeps only counters per (client, day); the second pass reads names and
// paths for the few clients found.
func (a *aggregator) slowDrip(ctx context.Context, agg *Aggregates) error {
	sd := a.cfg.SlowDrip
	s := span{a.day.AddDays(1 - sd.WindowDays), a.day}
	sens, sensArgs := a.sensitive()
	q := a.sql(`SELECT h, count() AS days, sum(n) AS requests, max(n) AS max_daily,
	sum(sens) AS sensitive, sum(errs) AS errors
	FROM (
		SELECT ` + clientHash + ` AS h, ` + dayExpr + ` AS day, count() AS n,
		countIf(` + sens + `) AS sens, countIf(status >= 400 AND blocked = 0) AS errs
		FROM {t} WHERE ` + s.where() + ` GROUP BY h, day
	)
	GROUP BY h
	HAVING days >= @min_days AND max_daily <= @max_daily AND (sensitive > 0 OR errors >= @min_err * requests)
	ORDER BY sensitive DESC, days DESC, requests DESC, h LIMIT @top`)
	args := a.args(s, append(sensArgs,
		clickhouse.Named("min_days", sd.MinDays), clickhouse.Named("max_daily", sd.MaxDailyRequests),
		clickhouse.Named("min_err", sd.MinErrorRatio), clickhouse.Named("top", a.cfg.TopN))...)
	rows, err := a.conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	var hashes []uint64
	var found []SlowDripClient
	for rows.Next() {
		var (
			h uint64
			c SlowDripClient
		)
		if err := rows.Scan(&h, &c.DaysActive, &c.Requests, &c.MaxDaily, &c.SensitiveHits, &c.Errors); err != nil {
			rows.Close()
			return err
		}
		c.ErrorRate = ratio(c.Errors, c.Requests)
		hashes = append(hashes, h)
		found = append(found, c)
	}
	err = rows.Err()
	rows.Close()
	if err != nil || len(hashes) == 0 {
		return err
	}
	rows, err = a.conn.Query(ctx, a.sql(`SELECT `+clientHash+` AS h, any(user_id), any(`+anonIP+`),
	arraySlice(arraySort(groupUniqArrayIf(path, `+sens+`)), 1, 5), arraySlice(arraySort(groupUniqArray(path)), 1, 5)
	FROM {t} WHERE `+s.where()+` AND has(@hashes, `+clientHash+`) GROUP BY h`),
		a.args(s, append(sensArgs, clickhouse.Named("hashes", hashes))...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	byHash := make(map[uint64]int, len(hashes))
	for i, h := range hashes {
		byHash[h] = i
	}
	for rows.Next() {
		var (
			h             uint64
			k             clientKey
			sens, samples []string
		)
		if err := rows.Scan(&h, &k.user, &k.ip, &sens, &samples); err != nil {
			return err
		}
		if i, ok := byHash[h]; ok {
			found[i].Client, found[i].SensitivePaths, found[i].SamplePaths = k.label(), sens, samples
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	agg.SlowDrip = append(agg.SlowDrip, found...)
	return nil
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

// timeline counts the day hour by hour.
func (a *aggregator) timeline(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	q := a.sql(`SELECT ` + hourExpr + ` AS h, count(), countIf(blocked = 1), ` + errorsExpr + `,
	countIf(` + failOpenCond + `), countIf(decision = 'shadow')
	FROM {t} WHERE ` + s.where() + ` GROUP BY h ORDER BY h`)
	rows, err := a.conn.Query(ctx, q, a.args(s)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	agg.Timeline = make([]HourStats, 24)
	for h := range agg.Timeline {
		agg.Timeline[h].Hour = h
	}
	for rows.Next() {
		var (
			h  uint8
			hs HourStats
		)
		if err := rows.Scan(&h, &hs.Requests, &hs.Blocked, &hs.Errors, &hs.FailedOpen, &hs.Shadow); err != nil {
			return err
		}
		if h < 24 {
			hs.Hour = int(h)
			agg.Timeline[h] = hs
		}
	}
	return rows.Err()
}

// failOpen lists the requests that passed unchecked by reason and hour.
func (a *aggregator) failOpen(ctx context.Context, agg *Aggregates) error {
	if agg.Totals.FailedOpen == 0 {
		return nil
	}
	s := span{a.day, a.day}
	q := a.sql(`SELECT ` + failOpenReason + ` AS reason, ` + hourExpr + ` AS h, count() AS n
	FROM {t} WHERE ` + s.where() + ` AND ` + failOpenCond + `
	GROUP BY reason, h ORDER BY h, n DESC, reason LIMIT 240`)
	rows, err := a.conn.Query(ctx, q, a.args(s)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	sums := map[string]uint64{}
	for rows.Next() {
		var (
			c FailOpenCount
			h uint8
		)
		if err := rows.Scan(&c.Reason, &h, &c.Requests); err != nil {
			return err
		}
		c.Hour = int(h)
		agg.FailOpen = append(agg.FailOpen, c)
		sums[c.Reason] += c.Requests
	}
	for reason, n := range sums {
		agg.FailOpenReasons = append(agg.FailOpenReasons, FailOpenCount{Reason: reason, Hour: -1, Requests: n})
	}
	slices.SortFunc(agg.FailOpenReasons, func(x, y FailOpenCount) int {
		if x.Requests != y.Requests {
			return cmpDesc(x.Requests, y.Requests)
		}
		return strings.Compare(x.Reason, y.Reason)
	})
	return rows.Err()
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func cmpDesc(x, y uint64) int {
	switch {
	case x > y:
		return -1
	case x < y:
		return 1
	}
	return 0
}

// reasonBanned is the reason of a denial because the client is banned; the
// ban's cause is the block before it.
const reasonBanned = "behavior.banned"

// banTriggers finds, for each client denied as banned on the day, the block
// that banned it (its first block of the day with another reason) and
// groups the clients by that trigger.
func (a *aggregator) banTriggers(ctx context.Context, agg *Aggregates) error {
	s := span{a.day, a.day}
	q := a.sql(`SELECT trigger, count() AS clients, sum(banned) AS b, sum(triggers) AS tr
	FROM (
		SELECT user_id, ` + anonIP + ` AS anon_ip,
		argMinIf(block_reason, toUInt64(timestamp) * 1000 + timestamp_ms, block_reason != @banned) AS trigger,
		countIf(block_reason = @banned) AS banned, countIf(block_reason != @banned) AS triggers
		FROM {t} WHERE ` + s.where() + ` AND decision = 'denied'
		GROUP BY user_id, anon_ip HAVING banned > 0
	)
	GROUP BY trigger ORDER BY clients DESC, b DESC, trigger LIMIT @top`)
	rows, err := a.conn.Query(ctx, q, a.args(s, clickhouse.Named("banned", reasonBanned), clickhouse.Named("top", a.cfg.TopN))...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b BanTrigger
		if err := rows.Scan(&b.Trigger, &b.Clients, &b.BannedRequests, &b.TriggerRequests); err != nil {
			return err
		}
		agg.BanTriggers = append(agg.BanTriggers, b)
	}
	return rows.Err()
}

// genericRouteShare: a route name carrying at least this share of the
// day's requests is a catch-all (Envoy's single "prefix: /" route under
// whatever name), not an endpoint.
const genericRouteShare = 0.9

// routeGrouping decides which route names are generic: the configured ones,
// the empty name, and a name that carries genericRouteShare of the day's
// requests.
func (a *aggregator) routeGrouping(ctx context.Context, agg *Aggregates) error {
	generic := append([]string{""}, a.cfg.GenericRouteNames...)
	if agg.Totals.Requests > 0 {
		s := span{a.day, a.day}
		q := a.sql(`SELECT route_name, count() AS n FROM {t} WHERE ` + s.where() + `
		GROUP BY route_name HAVING n >= @total ORDER BY n DESC LIMIT 1`)
		var (
			name string
			n    uint64
		)
		err := a.conn.QueryRow(ctx, q, a.args(s, clickhouse.Named("total", uint64(math.Ceil(genericRouteShare*float64(agg.Totals.Requests)))))...).Scan(&name, &n)
		switch {
		case err == nil:
			if !slices.Contains(generic, name) {
				generic = append(generic, name)
			}
		case !isNoRows(err):
			return err
		}
	}
	agg.GenericRouteNames = generic
	return nil
}

// clientDetails fills the client tables from one query over the day, so a
// client has the same numbers in every table: all its requests, its blocks,
// distinct paths, top block reasons, ban trigger, first and last seen, and
// blocks per hour.
func (a *aggregator) clientDetails(ctx context.Context, agg *Aggregates) error {
	if len(a.clients) == 0 {
		return nil
	}
	s := span{a.day, a.day}
	filter, fargs := clientFilter(a.clients)
	rows, err := a.conn.Query(ctx, a.sql(`SELECT user_id, `+anonIP+` AS anon_ip, count(), countIf(blocked = 1), uniqExact(path),
	topKIf(3)(block_reason, blocked = 1),
	argMinIf(block_reason, toUInt64(timestamp) * 1000 + timestamp_ms, decision = 'denied' AND block_reason != @banned),
	toUInt32(min(timestamp)), toUInt32(max(timestamp)),
	tupleElement(sumMap([toUInt8(`+hourExpr+`)], [toUInt64(blocked)]) AS hourly, 1), tupleElement(hourly, 2),
	countIf(block_reason = @banned)
	FROM {t} WHERE `+s.where()+` AND `+filter+` GROUP BY user_id, anon_ip`),
		a.args(s, append(fargs, clickhouse.Named("banned", reasonBanned))...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	byLabel := map[string][]*ClientStats{}
	for _, l := range []*[]ClientStats{&agg.TopBlockedClients, &agg.NewBlockedClients} {
		for i := range *l {
			c := &(*l)[i]
			byLabel[c.Client] = append(byLabel[c.Client], c)
		}
	}
	loc := a.cfg.Location
	for rows.Next() {
		var (
			k           clientKey
			d           ClientStats
			first, last uint32
			hours       []uint8
			counts      []uint64
			banned      uint64
		)
		if err := rows.Scan(&k.user, &k.ip, &d.Requests, &d.Blocked, &d.Paths, &d.Reasons, &d.Trigger,
			&first, &last, &hours, &counts, &banned); err != nil {
			return err
		}
		if banned == 0 {
			d.Trigger = "" // not banned: no trigger to tell
		}
		d.FirstSeen = time.Unix(int64(first), 0).In(loc).Format(time.TimeOnly)
		d.LastSeen = time.Unix(int64(last), 0).In(loc).Format(time.TimeOnly)
		d.HourlyBlocked = make([]uint64, 24)
		for i, h := range hours {
			if h < 24 && i < len(counts) {
				d.HourlyBlocked[h] = counts[i]
			}
		}
		for _, c := range byLabel[k.label()] {
			d.Client = c.Client
			*c = d
			c.Reasons = slices.Clone(d.Reasons)
			c.HourlyBlocked = slices.Clone(d.HourlyBlocked)
		}
	}
	return rows.Err()
}
