package accesslog

import (
	"bytes"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// row maps a decoded entry (toRow's rules in row_ref_test.go are the
// reference; wire_test.go holds the two together).
func (f *frame) row(e *wireEntry) (r Row, peerIP string) {
	s := &f.strs
	r.Unix, r.Millis = f.received.Unix(), uint16(f.received.Nanosecond()/1e6)
	if st := e.start; st.sec > 0 && st.sec < maxUnix {
		r.Unix = st.sec
		if n := st.nanos; n > 0 && n < 1e9 {
			r.Millis = uint16(n / 1e6)
		} else {
			r.Millis = 0
		}
	}

	r.Method = methodName(corev3.RequestMethod(e.method))
	r.Scheme = s.get(e.scheme, maxShortField)
	r.Authority = s.get(e.authority, maxShortField)
	path, query, _ := bytes.Cut(e.path, []byte{'?'})
	r.Path, r.Query = toString(path, maxPathBytes), toString(query, maxQueryBytes)
	r.RouteName = s.get(e.route, maxShortField)

	r.Status = uint16(min(e.status, math.MaxUint16))
	d := e.lastTx
	if !d.set {
		d = e.duration
	}
	if d.set {
		if ms := (&durationpb.Duration{Seconds: d.sec, Nanos: d.nanos}).AsDuration().Milliseconds(); ms > 0 {
			r.DurationMs = uint32(min(ms, math.MaxUint32))
		}
	}
	r.BytesIn = e.reqHeaderBytes + e.reqBodyBytes
	r.BytesOut = e.respHeaderBytes + e.respBodyBytes

	peerIP = e.downstream.ip()
	if peerIP == "" {
		peerIP = e.direct.ip()
	}
	user, plan := e.user, e.plan
	if len(e.authz.decision.stringValue()) > 0 {
		// authz decided this request: the identity it decided with (from
		// verified sources) is the row's, not headers a client may write.
		user, plan = e.authz.user.stringValue(), nil
		if len(user) > 0 {
			plan = e.authz.plan.stringValue()
		}
	}
	r.UserID = toString(user, maxShortField)
	r.Plan = s.get(plan, maxShortField)
	switch f.mp.clientIP {
	case ClientIPAlways:
		r.ClientIP = peerIP
	case ClientIPAnonymous:
		if r.UserID == "" {
			r.ClientIP = peerIP
		}
	}
	r.UserAgent = s.get(e.userAgent, maxLongField)
	r.Referer = s.get(e.referer, maxLongField)
	r.RequestID = toString(e.requestID, maxShortField)
	r.UpstreamCluster = s.get(e.upstreamCluster, maxShortField)
	r.UpstreamHost = e.upst.hostPort(s)

	r.ResponseFlags = flagString(e.flags, e.uaex)
	if decision := e.authz.decision.stringValue(); len(decision) > 0 {
		r.Blocked = string(decision) == "deny"
		r.BlockModule = s.get(e.authz.module.stringValue(), maxShortField)
		r.BlockReason = s.get(e.authz.reason.stringValue(), maxShortField)
		r.Score = clampScore(e.authz.score.numberValue())
		r.Decision = decisionOf(r.Blocked, r.BlockModule, e.authz.shadow.boolValue())
		r.Rule = s.get(e.authz.rule.stringValue(), maxShortField)
		r.Field = toString(e.authz.field.stringValue(), maxShortField)
		r.Excerpt = toString(e.authz.excerpt.stringValue(), maxExcerptField)
		r.BehaviorScore = clampScore(e.authz.behaviorScore.numberValue())
		r.PayloadScore = clampScore(e.authz.payloadScore.numberValue())
	} else if e.uaex && (r.Status == 403 || r.Status == 429) {
		r.Blocked = true
		r.BlockReason = reasonExtAuthzDenied
		r.Decision = DecisionDenied
	} else {
		r.Decision = DecisionUnchecked
	}
	return r, peerIP
}

// ip is the canonical client IP of a socket address ("" otherwise).
func (a *wireAddr) ip() string {
	if a.kind != numAddrSocket || len(a.host) == 0 {
		return ""
	}
	return canonicalIP(string(a.host))
}

func (a *wireAddr) hostPort(s *interner) string {
	if a.kind != numAddrSocket || len(a.host) == 0 {
		return ""
	}
	port := uint32(0)
	if a.portKind == numSockPortValue {
		port = a.port
	}
	return s.hostPort(capBytes(a.host, maxShortField), port)
}

// canonicalIP returns s as the canonical IP text ("" when s is no IP).
// IPv4-mapped IPv6 is unmapped so that feedback keys match the IP authz
// sees; zones are dropped.
func canonicalIP(s string) string {
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

// hostPortString renders host:port, bracketing IPv6 hosts; port 0 is left
// out.
func hostPortString(host string, port uint32) string {
	if host == "" || port == 0 {
		return host
	}
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + strconv.FormatUint(uint64(port), 10)
	}
	return host + ":" + strconv.FormatUint(uint64(port), 10)
}

// flagNames are Envoy's short response flag names (%RESPONSE_FLAGS%) by
// ResponseFlags field number; Envoy prints them in field order.
var flagNames = [...]string{
	1: "LH", 2: "UH", 3: "UT", 4: "LR", 5: "UR", 6: "UF", 7: "UC", 8: "UO", 9: "NR", 10: "DI",
	11: "FI", 12: "RL", numFlagsUnauthorized: "UAEX", 14: "RLSE", 15: "DC", 16: "URX", 17: "SI", 18: "IH",
	19: "DPE", 20: "UMSDR", 21: "RFCF", 22: "NFCF", 23: "DT", 24: "UPE", 25: "NC", 26: "OM", 27: "DF", 28: "DR",
}

// flagString renders set flags comma-joined in Envoy's order.
func flagString(flags uint32, uaex bool) string {
	if uaex {
		flags |= 1 << numFlagsUnauthorized
	}
	if flags == 0 {
		return ""
	}
	if flags&(flags-1) == 0 { // one flag, the common case: no allocation
		for n, name := range flagNames {
			if flags == 1<<n {
				return name
			}
		}
	}
	var sb strings.Builder
	for n, name := range flagNames {
		if flags&(1<<n) == 0 || name == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(name)
	}
	return sb.String()
}

// capBytes truncates b to at most n bytes without splitting a UTF-8
// sequence (capString's rule).
func capBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	i := n
	for i > 0 && i > n-4 && b[i]&0xC0 == 0x80 {
		i--
	}
	return b[:i]
}

// toString copies b, capped at n bytes, into valid UTF-8.
func toString(b []byte, n int) string {
	b = capBytes(b, n)
	if utf8.Valid(b) {
		return string(b)
	}
	return capString(strings.ToValidUTF8(string(b), "\uFFFD"), n)
}

// interner shares the strings of low-cardinality fields (scheme, authority,
// route, user agent, plan, cluster, upstream host, ...) across the rows of a
// stream: fewer allocations, and batches waiting for ClickHouse hold each
// value once.
type interner struct {
	m         map[string]string
	hostPorts map[string]hostPort // by host
}

type hostPort struct {
	port uint32
	s    string
}

// internMax bounds each cache; a full cache starts over, so a stream of
// ever-new values costs one map clear per internMax values. With
// internMaxLen that is at most about 1 MiB of strings per stream.
const (
	internMax    = 4096
	internMaxLen = 256 // longer values (rare repeats) are copied, not kept
)

// get returns b capped at n bytes as valid UTF-8, shared when seen before.
func (s *interner) get(b []byte, n int) string {
	if len(b) == 0 {
		return ""
	}
	b = capBytes(b, n)
	if len(b) > internMaxLen {
		return toString(b, n)
	}
	if v, ok := s.m[string(b)]; ok { // no allocation for the lookup
		return v
	}
	v := toString(b, n)
	if s.m == nil || len(s.m) >= internMax {
		s.m = make(map[string]string, 256)
	}
	s.m[string(b)] = v
	return v
}

// hostPort renders host (capped) and port as hostPortString does.
func (s *interner) hostPort(host []byte, port uint32) string {
	if v, ok := s.hostPorts[string(host)]; ok && v.port == port {
		return v.s
	}
	h := toString(host, maxShortField)
	v := hostPortString(h, port)
	if s.hostPorts == nil || len(s.hostPorts) >= internMax {
		s.hostPorts = make(map[string]hostPort, 64)
	}
	s.hostPorts[string(host)] = hostPort{port, v}
	return v
}
