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
	// PreviousDay is the day before Date; zero when it has no traffic.
	PreviousDay DaySummary `json:"previous_day"`
	// SevenDayAverage averages the 7 days before Date that have traffic
	// (BaselineDays of them).
	SevenDayAverage DaySummary `json:"seven_day_average"`
	BaselineDays    int        `json:"baseline_days"`

	Blocks []BlockCount `json:"blocks"`

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

// RouteStats describes one route: route_name when Envoy set it, else the path.
type RouteStats struct {
	Route        string  `json:"route"`
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
type ClientStats struct {
	Client   string   `json:"client"`
	Requests uint64   `json:"requests"`
	Blocked  uint64   `json:"blocked"`
	Paths    uint64   `json:"distinct_paths"`
	Reasons  []string `json:"top_reasons"`
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
