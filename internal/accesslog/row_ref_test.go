package accesslog

import (
	"math"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
)

// The reference mapping: an entry decoded by proto.Unmarshal into the
// generated types, mapped field by field. The receiver decodes the wire
// directly (wire.go); wire_test.go and FuzzWireDecode hold it to this.

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
	fields := c.GetMetadata().GetFilterMetadata()[extAuthzNamespace].GetFields()
	if fields["decision"].GetStringValue() != "" {
		r.UserID, r.Plan = capString(fields["user"].GetStringValue(), maxShortField), ""
		if r.UserID != "" {
			r.Plan = capString(fields["plan"].GetStringValue(), maxShortField)
		}
	}
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

	if decision := fields["decision"].GetStringValue(); decision != "" {
		r.Blocked = decision == "deny"
		r.BlockModule = capString(fields["module"].GetStringValue(), maxShortField)
		r.BlockReason = capString(fields["reason"].GetStringValue(), maxShortField)
		r.Score = clampScore(fields["score"].GetNumberValue())
		r.Rule = capString(fields["rule"].GetStringValue(), maxShortField)
		r.Field = capString(fields["field"].GetStringValue(), maxShortField)
		r.Excerpt = capString(fields["excerpt"].GetStringValue(), maxExcerptField)
		r.BehaviorScore = clampScore(fields["behavior_score"].GetNumberValue())
		r.PayloadScore = clampScore(fields["payload_score"].GetNumberValue())
		// Spelled out here rather than through decisionOf, so that the
		// reference does not share the code it checks.
		switch {
		case r.Blocked && r.BlockModule == "failmode":
			r.Decision = "failed_closed"
		case r.Blocked:
			r.Decision = "denied"
		case r.BlockModule == "failmode":
			r.Decision = "failed_open"
		case fields["shadow"].GetBoolValue():
			r.Decision = "shadow"
		default:
			r.Decision = "allowed"
		}
	} else if uaex && (r.Status == 403 || r.Status == 429) {
		r.Blocked = true
		r.BlockReason = reasonExtAuthzDenied
		r.Decision = "denied"
	} else {
		r.Decision = "unchecked"
	}
	return r, peerIP
}

// addressIP returns the canonical IP of a socket address ("" for pipes and
// garbage).
func addressIP(a *corev3.Address) string {
	s := a.GetSocketAddress().GetAddress()
	if s == "" {
		return ""
	}
	return canonicalIP(s)
}

// addressHostPort renders a socket address as host:port ("" when absent).
func addressHostPort(a *corev3.Address) string {
	sa := a.GetSocketAddress()
	return hostPortString(capString(sa.GetAddress(), maxShortField), sa.GetPortValue())
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
