package accesslog

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
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

// toRow maps one HTTP entry. received stands in for a missing start_time.
// peerIP is the client IP whatever the storage policy says (for feedback).
func (m mapper) toRow(nodeID string, e *datav3.HTTPAccessLogEntry, received time.Time) (r Row, peerIP string) {
	c := e.GetCommonProperties()
	req := e.GetRequest()
	resp := e.GetResponse()

	r.Unix, r.Millis = received.Unix(), uint16(received.Nanosecond()/1e6)
	if st := c.GetStartTime(); st != nil && st.GetSeconds() > 0 && st.GetSeconds() < maxUnix {
		r.Unix = st.GetSeconds()
		if n := st.GetNanos(); n > 0 && n < 1e9 {
			r.Millis = uint16(n / 1e6)
		} else {
			r.Millis = 0
		}
	}

	r.NodeID = capString(nodeID, maxShortField)
	r.Method = methodName(req.GetRequestMethod())
	r.Scheme = capString(req.GetScheme(), maxShortField)
	r.Authority = capString(req.GetAuthority(), maxShortField)
	path, query, _ := strings.Cut(req.GetPath(), "?")
	r.Path, r.Query = capString(path, maxPathBytes), capString(query, maxQueryBytes)
	r.RouteName = capString(c.GetRouteName(), maxShortField)

	if rc := resp.GetResponseCode(); rc != nil {
		r.Status = uint16(min(rc.GetValue(), math.MaxUint16))
	}
	d := c.GetTimeToLastDownstreamTxByte()
	if d == nil {
		d = c.GetDuration()
	}
	if d != nil {
		if ms := d.AsDuration().Milliseconds(); ms > 0 {
			r.DurationMs = uint32(min(ms, math.MaxUint32))
		}
	}
	r.BytesIn = req.GetRequestHeadersBytes() + req.GetRequestBodyBytes()
	r.BytesOut = resp.GetResponseHeadersBytes() + resp.GetResponseBodyBytes()

	peerIP = addressIP(c.GetDownstreamRemoteAddress())
	if peerIP == "" {
		peerIP = addressIP(c.GetDownstreamDirectRemoteAddress())
	}
	headers := req.GetRequestHeaders()
	r.UserID = capString(headers[m.userHeader], maxShortField)
	r.Plan = capString(headers[m.planHeader], maxShortField)
	switch m.clientIP {
	case ClientIPAlways:
		r.ClientIP = peerIP
	case ClientIPAnonymous:
		if r.UserID == "" {
			r.ClientIP = peerIP
		}
	}
	r.UserAgent = capString(req.GetUserAgent(), maxLongField)
	r.Referer = capString(req.GetReferer(), maxLongField)
	r.RequestID = capString(req.GetRequestId(), maxShortField)
	r.UpstreamCluster = capString(c.GetUpstreamCluster(), maxShortField)
	r.UpstreamHost = addressHostPort(c.GetUpstreamRemoteAddress())

	uaex := false
	r.ResponseFlags, uaex = responseFlags(c.GetResponseFlags())

	fields := c.GetMetadata().GetFilterMetadata()[extAuthzNamespace].GetFields()
	if decision := fields["decision"].GetStringValue(); decision != "" {
		r.Blocked = decision == "deny"
		r.BlockModule = capString(fields["module"].GetStringValue(), maxShortField)
		r.BlockReason = capString(fields["reason"].GetStringValue(), maxShortField)
		r.Score = clampScore(fields["score"].GetNumberValue())
	} else if uaex && (r.Status == 403 || r.Status == 429) {
		r.Blocked = true
		r.BlockReason = reasonExtAuthzDenied
	}
	return r, peerIP
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

// addressIP returns the canonical IP of a socket address ("" for pipes and
// garbage). IPv4-mapped IPv6 is unmapped so that feedback keys match the IP
// authz sees; zones are dropped.
func addressIP(a *corev3.Address) string {
	s := a.GetSocketAddress().GetAddress()
	if s == "" {
		return ""
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	switch {
	case ip.Is4In6():
		return ip.Unmap().String()
	case ip.Zone() != "":
		return ip.WithZone("").String()
	case ip.Is4():
		return s // ParseAddr accepts only the canonical dotted form
	}
	return ip.String()
}

// addressHostPort renders a socket address as host:port ("" when absent).
func addressHostPort(a *corev3.Address) string {
	sa := a.GetSocketAddress()
	host := capString(sa.GetAddress(), maxShortField)
	if host == "" {
		return ""
	}
	port := sa.GetPortValue()
	if port == 0 {
		return host
	}
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + strconv.FormatUint(uint64(port), 10)
	}
	return host + ":" + strconv.FormatUint(uint64(port), 10)
}

// responseFlags renders Envoy's short flag names (%RESPONSE_FLAGS%),
// comma-joined in Envoy's order, and reports whether UAEX is set.
func responseFlags(f *datav3.ResponseFlags) (string, bool) {
	if f == nil {
		return "", false
	}
	set := [...]struct {
		on   bool
		name string
	}{
		{f.GetFailedLocalHealthcheck(), "LH"},
		{f.GetNoHealthyUpstream(), "UH"},
		{f.GetUpstreamRequestTimeout(), "UT"},
		{f.GetLocalReset(), "LR"},
		{f.GetUpstreamRemoteReset(), "UR"},
		{f.GetUpstreamConnectionFailure(), "UF"},
		{f.GetUpstreamConnectionTermination(), "UC"},
		{f.GetUpstreamOverflow(), "UO"},
		{f.GetNoRouteFound(), "NR"},
		{f.GetDelayInjected(), "DI"},
		{f.GetFaultInjected(), "FI"},
		{f.GetRateLimited(), "RL"},
		{f.GetUnauthorizedDetails() != nil, "UAEX"},
		{f.GetRateLimitServiceError(), "RLSE"},
		{f.GetDownstreamConnectionTermination(), "DC"},
		{f.GetUpstreamRetryLimitExceeded(), "URX"},
		{f.GetStreamIdleTimeout(), "SI"},
		{f.GetInvalidEnvoyRequestHeaders(), "IH"},
		{f.GetDownstreamProtocolError(), "DPE"},
		{f.GetUpstreamMaxStreamDurationReached(), "UMSDR"},
		{f.GetResponseFromCacheFilter(), "RFCF"},
		{f.GetNoFilterConfigFound(), "NFCF"},
		{f.GetDurationTimeout(), "DT"},
		{f.GetUpstreamProtocolError(), "UPE"},
		{f.GetNoClusterFound(), "NC"},
		{f.GetOverloadManager(), "OM"},
		{f.GetDnsResolutionFailure(), "DF"},
		{f.GetDownstreamRemoteReset(), "DR"},
	}
	var b strings.Builder
	uaex := false
	for _, s := range set {
		if !s.on {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.name)
		uaex = uaex || s.name == "UAEX"
	}
	return b.String(), uaex
}

// date is the UTC day of r, as the Date column stores it.
func (r *Row) date() time.Time {
	return time.Unix(r.Unix-r.Unix%86400, 0).UTC()
}
