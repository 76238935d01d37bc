package accesslog

import (
	"math"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Row is one access_log row. Field order follows accessLogColumns.
type Row struct {
	// Unix is the request start in whole seconds (timestamp), Millis the
	// millisecond part (timestamp_ms); date is derived from Unix in UTC.
	Unix   int64
	Millis uint16

	NodeID, Method, Scheme, Authority, Path, Query, RouteName string

	Status     uint16
	DurationMs uint32
	BytesIn    uint64
	BytesOut   uint64

	ClientIP, UserID, Plan, UserAgent, Referer, RequestID string
	UpstreamCluster, UpstreamHost, ResponseFlags          string

	Blocked     bool
	BlockModule string
	BlockReason string
	Score       uint16

	// Decision is what authz answered, one of the Decision* values.
	Decision string

	// Rule, Field and Excerpt explain a denial (or shadow denial): the
	// rule that fired, where, and a short redacted piece of the value.
	// BehaviorScore and PayloadScore are each module's own score (Score is
	// the deciding one).
	Rule, Field, Excerpt        string
	BehaviorScore, PayloadScore uint16
}

// The values of the decision column: what smartlayer answered for a request.
// Blocked (blocked = 1) is DecisionDenied or DecisionFailedClosed.
const (
	// DecisionAllowed: every module let the request through.
	DecisionAllowed = "allowed"
	// DecisionDenied: a module in enforce mode denied it.
	DecisionDenied = "denied"
	// DecisionShadow: a module in shadow mode would have denied it; it was
	// let through (block_module and block_reason name that module).
	DecisionShadow = "shadow"
	// DecisionFailedOpen: authz could not decide in time or at all (budget
	// overrun, stage error, bad request) and fail_mode allow let the request
	// through unchecked (block_module "failmode").
	DecisionFailedOpen = "failed_open"
	// DecisionFailedClosed: the same with fail_mode deny: a 503 that no
	// rule asked for.
	DecisionFailedClosed = "failed_closed"
	// DecisionUnchecked: the entry carries no ext_authz answer: Envoy let
	// the request through without one (failure_mode_allow while authz was
	// unreachable or slower than Envoy's timeout), ext_authz is disabled on
	// the route, or Envoy answered before ext_authz ran (jwt_authn 401,
	// no route).
	DecisionUnchecked = "unchecked"
)

// moduleFailMode is authz's module name for a fail-mode answer.
const moduleFailMode = "failmode"

// decisionOf derives the decision column from authz's metadata.
func decisionOf(blocked bool, module string, shadow bool) string {
	switch {
	case blocked && module == moduleFailMode:
		return DecisionFailedClosed
	case blocked:
		return DecisionDenied
	case module == moduleFailMode:
		return DecisionFailedOpen
	case shadow:
		return DecisionShadow
	}
	return DecisionAllowed
}

// extAuthzNamespace is where Envoy stores ext_authz dynamic metadata
// (CONTRACTS.md).
const extAuthzNamespace = "envoy.filters.http.ext_authz"

// reasonExtAuthzDenied is block_reason for a denial seen only through
// Envoy's UAEX flag, without our metadata (e.g. an older authz build).
const reasonExtAuthzDenied = "ext_authz.denied"

// Per-field caps keep a hostile or broken client from inflating rows; the
// limits are far above what real requests carry.
const (
	maxPathBytes  = 4096
	maxQueryBytes = 4096
	maxLongField  = 1024 // user agent, referer
	maxShortField = 256  // everything else
	// maxExcerptField: authz sends at most 64 bytes; a forged entry gets
	// no more room than that.
	maxExcerptField = 128
)

// DateTime and Date are unsigned on the server; starts outside that range
// (a zero or garbage start_time) fall back to the receive time.
const maxUnix = 65535 * 86400

// mapper turns ALS entries into rows. It is immutable after construction
// and safe for concurrent use.
type mapper struct {
	userHeader, planHeader string
	clientIP               ClientIPPolicy
}

func newMapper(cfg Config) mapper {
	return mapper{
		userHeader: strings.ToLower(cfg.UserHeader),
		planHeader: strings.ToLower(cfg.PlanHeader),
		clientIP:   cfg.StoreClientIP,
	}
}

func clampScore(f float64) uint16 {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= math.MaxUint16:
		return math.MaxUint16
	}
	return uint16(math.Round(f))
}

// capString truncates s to at most n bytes without splitting a UTF-8
// sequence.
func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-4 && s[i]&0xC0 == 0x80 { // continuation byte
		i--
	}
	return s[:i]
}

var methodNames = func() [16]string {
	var t [16]string
	for v, name := range corev3.RequestMethod_name {
		if v > 0 && int(v) < len(t) {
			t[v] = name
		}
	}
	return t
}()

func methodName(m corev3.RequestMethod) string {
	if m > 0 && int(m) < len(methodNames) {
		return methodNames[m]
	}
	return ""
}

// date is the UTC day of r, as the Date column stores it.
func (r *Row) date() time.Time {
	return time.Unix(r.Unix-r.Unix%86400, 0).UTC()
}
