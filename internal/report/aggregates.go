package report

// Aggregates is everything the report says, computed by ClickHouse. It is
// stored as JSON in daily_reports.aggregates and is the only input the
// Summarizer sees. Latency figures are milliseconds over requests smartlayer
// did not block (a denial is answered in microseconds and would hide the
// upstream's latency).
type Aggregates struct {
	Date     string `json:"date"`
	Timezone string `json:"timezone"`

	Health        Health   `json:"health"`
	HealthRule    string   `json:"health_rule"`
	HealthReasons []string `json:"health_reasons"`

	Totals Totals `json:"totals"`
	// PreviousDay is the day before Date; null when it has no traffic (a
	// comparison is then "n/a", not a drop from zero).
	PreviousDay *DaySummary `json:"previous_day"`
	// SevenDayAverage averages the 7 days before Date that have traffic
	// (BaselineDays of them); null when none has.
	SevenDayAverage *DaySummary `json:"seven_day_average"`
	BaselineDays    int         `json:"baseline_days"`

	// Timeline is the day hour by hour in the report's timezone (24
	// entries, hours without traffic included).
	Timeline []HourStats `json:"timeline"`

	// FailOpen lists the requests that passed without a check, by reason
	// and hour (see Totals.FailedOpen); FailOpenReasons sums them by reason.
	FailOpen        []FailOpenCount `json:"fail_open"`
	FailOpenReasons []FailOpenCount `json:"fail_open_reasons"`

	// RouteGrouping says how the route tables group requests: by Envoy's
	// route name where it names an endpoint, else by path template
	// (GenericRouteNames lists the names that did not).
	GenericRouteNames []string `json:"generic_route_names"`

	Blocks []BlockCount `json:"blocks"`
	// BanTriggers are the rules that banned clients on the day: the block
	// before a client's first behavior.banned denial.
	BanTriggers []BanTrigger `json:"ban_triggers"`

	SlowestRoutes []RouteStats `json:"slowest_routes"`
	BusiestRoutes []RouteStats `json:"busiest_routes"`
	ErrorRoutes   []RouteStats `json:"error_routes"`

	TopBlockedClients      []ClientStats    `json:"top_blocked_clients"`
	NewBlockedClients      []ClientStats    `json:"new_blocked_clients"`
	NewBlockedClientsTotal uint64           `json:"new_blocked_clients_total"`
	SlowDrip               []SlowDripClient `json:"slow_drip_clients"`
}

// Totals are the report day's counters.
type Totals struct {
	Requests      uint64 `json:"requests"`
	UniqueClients uint64 `json:"unique_clients"`
	UniqueUsers   uint64 `json:"unique_users"`
	Status2xx     uint64 `json:"status_2xx"`
	Status3xx     uint64 `json:"status_3xx"`
	Status4xx     uint64 `json:"status_4xx"`
	Status5xx     uint64 `json:"status_5xx"`
	// Blocked counts requests smartlayer denied; ShadowBlocked those a
	// shadow-mode module would have denied.
	Blocked       uint64 `json:"blocked"`
	ShadowBlocked uint64 `json:"shadow_blocked"`
	// FailedOpen counts requests that passed unchecked: authz's fail mode
	// allowed them (decision failed_open) or Envoy served them without an
	// ext_authz answer (decision unchecked, status 1xx–3xx: Envoy's
	// failure_mode_allow). Unchecked is the second part alone.
	// FailedClosed counts the fail mode's 503s (decision failed_closed).
	FailedOpen    uint64  `json:"failed_open"`
	Unchecked     uint64  `json:"unchecked"`
	FailedClosed  uint64  `json:"failed_closed"`
	FailOpenRatio float64 `json:"fail_open_ratio"`
	// Errors are 4xx/5xx answers smartlayer did not cause; ServerErrors the 5xx among them.
	Errors          uint64  `json:"errors"`
	ServerErrors    uint64  `json:"server_errors"`
	ErrorRate       float64 `json:"error_rate"`
	ServerErrorRate float64 `json:"server_error_rate"`
	ClientErrorRate float64 `json:"client_error_rate"`
	BlockedRate     float64 `json:"blocked_rate"`
	P50Ms           float64 `json:"p50_ms"`
	P95Ms           float64 `json:"p95_ms"`
	P99Ms           float64 `json:"p99_ms"`
	BytesOut        uint64  `json:"bytes_out"`
}

// DaySummary is one day (or an average of days) for comparison.
type DaySummary struct {
	Requests        float64 `json:"requests"`
	UniqueClients   float64 `json:"unique_clients"`
	ErrorRate       float64 `json:"error_rate"`
	ServerErrorRate float64 `json:"server_error_rate"`
	BlockedRate     float64 `json:"blocked_rate"`
	P95Ms           float64 `json:"p95_ms"`
}

// BlockCount is one (module, reason) pair of denials.
type BlockCount struct {
	Module   string `json:"module"`
	Reason   string `json:"reason"`
	Shadow   bool   `json:"shadow"`
	Requests uint64 `json:"requests"`
	Clients  uint64 `json:"clients"`
}

// HourStats is one hour of the day.
type HourStats struct {
	Hour       int    `json:"hour"`
	Requests   uint64 `json:"requests"`
	Blocked    uint64 `json:"blocked"`
	Errors     uint64 `json:"errors"`
	FailedOpen uint64 `json:"failed_open"`
	Shadow     uint64 `json:"shadow"`
}

// FailOpenCount is requests that passed unchecked for one reason
// (failmode.* from authz, or "unchecked" when Envoy served them without an
// answer), in one hour (Hour -1 in FailOpenReasons: the whole day).
type FailOpenCount struct {
	Reason   string `json:"reason"`
	Hour     int    `json:"hour"`
	Requests uint64 `json:"requests"`
}

// BanTrigger is the rule that banned Clients on the day, and the requests
// they sent while banned (denied as behavior.banned).
type BanTrigger struct {
	Trigger         string `json:"trigger"`
	Clients         uint64 `json:"clients"`
	BannedRequests  uint64 `json:"banned_requests"`
	TriggerRequests uint64 `json:"trigger_requests"`
}

// RouteStats describes one route: Envoy's route name when it names one
// endpoint (By "route"), else the path template (By "path": numeric ids,
// UUIDs and hex hashes replaced by {id}, PathTemplateSQL).
type RouteStats struct {
	Route        string  `json:"route"`
	By           string  `json:"by"`
	Requests     uint64  `json:"requests"`
	Served       uint64  `json:"served"`
	Errors       uint64  `json:"errors"`
	ServerErrors uint64  `json:"server_errors"`
	Blocked      uint64  `json:"blocked"`
	Timeouts     uint64  `json:"upstream_timeouts"`
	ErrorRate    float64 `json:"error_rate"`
	P50Ms        float64 `json:"p50_ms"`
	P95Ms        float64 `json:"p95_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// LikelyCause is the deterministic reading of the numbers (see causeOf).
	LikelyCause string `json:"likely_cause,omitempty"`
}

// ClientStats is a client (user:ID, or ip:ADDR for anonymous requests).
// Every table of clients fills it with the same query, so one client has
// the same numbers wherever it appears.
type ClientStats struct {
	Client   string `json:"client"`
	Requests uint64 `json:"requests"`
	Blocked  uint64 `json:"blocked"`
	Paths    uint64 `json:"distinct_paths"`
	// Reasons are the most frequent block reasons; Trigger is the reason
	// of the client's first block of the day other than behavior.banned,
	// the rule that banned it ("" if it was banned before the day).
	Reasons []string `json:"top_reasons"`
	Trigger string   `json:"trigger"`
	// FirstSeen and LastSeen are the client's first and last request of
	// the day (HH:MM:SS in the report's timezone); HourlyBlocked its blocks
	// per hour.
	FirstSeen     string   `json:"first_seen"`
	LastSeen      string   `json:"last_seen"`
	HourlyBlocked []uint64 `json:"hourly_blocked"`
}

// SlowDripClient is a low-and-slow client (see SlowDripConfig).
type SlowDripClient struct {
	Client         string   `json:"client"`
	DaysActive     uint64   `json:"days_active"`
	Requests       uint64   `json:"requests"`
	MaxDaily       uint64   `json:"max_daily"`
	SensitiveHits  uint64   `json:"sensitive_hits"`
	Errors         uint64   `json:"errors"`
	ErrorRate      float64  `json:"error_rate"`
	SensitivePaths []string `json:"sensitive_paths"`
	SamplePaths    []string `json:"sample_paths"`
}
