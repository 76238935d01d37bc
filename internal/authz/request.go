package authz

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// Identity says how toRequest finds a request's client, user and plan.
type Identity struct {
	// FromXFF takes the client from x-forwarded-for (counting TrustedHops
	// from the right); otherwise the peer address is the client.
	FromXFF     bool
	TrustedHops int

	UserHeader    string
	PlanHeader    string
	AnonymousPlan string

	// JWTFilter/JWTPayloadKey locate the payload jwt_authn writes with
	// payload_in_metadata; UserClaim and PlanClaim name its claims.
	JWTFilter     string
	JWTPayloadKey string
	UserClaim     string
	PlanClaim     string

	// MaxBodyBytes caps the body kept for inspection.
	MaxBodyBytes int
}

// unknownClient keys requests whose client address cannot be found; they
// share one behaviour history, which is the safe direction.
const unknownClient = "unknown"

// partialBodyHeader is set by Envoy when with_request_body cut the body.
const partialBodyHeader = "x-envoy-auth-partial-body"

// toRequest translates Envoy's CheckRequest into the pipeline's Request. It
// never fails: a CheckRequest without attributes yields an empty Request,
// which ok=false marks as malformed so the caller can apply the fail mode.
func toRequest(req *authv3.CheckRequest, id *Identity, now time.Time) (r *scoring.Request, ok bool) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r = &scoring.Request{Time: now, Headers: headers(h)}
	ok = h != nil

	r.Method = h.GetMethod()
	if r.Method == "" {
		r.Method = r.Headers[":method"]
	}
	r.Host = h.GetHost()
	if r.Host == "" {
		r.Host = r.Headers[":authority"]
	}
	path := h.GetPath()
	if path == "" {
		path = r.Headers[":path"]
	}
	r.Path, r.RawQuery, _ = strings.Cut(path, "?")
	if i := strings.IndexByte(r.Path, '#'); i >= 0 {
		r.Path = r.Path[:i]
	}
	if r.RawQuery == "" {
		r.RawQuery = h.GetQuery()
	}

	r.ID = r.Headers["x-request-id"]
	if r.ID == "" {
		r.ID = h.GetId()
	}

	body := h.GetRawBody()
	if len(body) == 0 && h.GetBody() != "" {
		body = []byte(h.GetBody())
	}
	r.BodyTruncated = r.Headers[partialBodyHeader] == "true"
	if id.MaxBodyBytes >= 0 && len(body) > id.MaxBodyBytes {
		body, r.BodyTruncated = body[:id.MaxBodyBytes], true
	}
	r.Body = body

	peer := addr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	r.ClientIP = clientIP(peer, r.Headers["x-forwarded-for"], id)
	if r.ClientIP.IsValid() {
		r.ClientKey = r.ClientIP.String()
	} else {
		r.ClientKey = unknownClient
	}

	claims := jwtClaims(attrs.GetMetadataContext().GetFilterMetadata()[id.JWTFilter], id.JWTPayloadKey)
	r.User = firstNonEmpty(claim(claims, id.UserClaim), r.Headers[id.UserHeader])
	r.Plan = firstNonEmpty(claim(claims, id.PlanClaim), r.Headers[id.PlanHeader])
	if r.User == "" || r.Plan == "" {
		// Without a user there is no plan to trust: anonymous callers are
		// limited per client IP on the anonymous plan.
		r.Plan = id.AnonymousPlan
	}
	return r, ok
}

// headers returns lowercased request headers from either of Envoy's
// encodings: the headers map, or header_map (encode_raw_headers) whose raw
// values are bytes.
func headers(h *authv3.AttributeContext_HttpRequest) map[string]string {
	if m := h.GetHeaders(); len(m) > 0 {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[lowerASCII(k)] = v
		}
		return out
	}
	hm := h.GetHeaderMap().GetHeaders()
	out := make(map[string]string, len(hm))
	for _, hv := range hm {
		k := lowerASCII(hv.GetKey())
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		if prev, dup := out[k]; dup {
			v = prev + "," + v
		}
		out[k] = v
	}
	return out
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// clientIP picks the client address. With x-forwarded-for and TrustedHops n,
// Envoy's rule applies: the n-th address from the right is the client (the
// rightmost was appended by Envoy itself when use_remote_address is set).
// A missing, short or garbled header falls back to the peer address.
func clientIP(peer netip.Addr, xff string, id *Identity) netip.Addr {
	if !id.FromXFF || id.TrustedHops <= 0 || xff == "" {
		return peer
	}
	n := id.TrustedHops
	rest := xff
	for {
		i := strings.LastIndexByte(rest, ',')
		entry := rest[i+1:]
		n--
		if n == 0 || i < 0 {
			if a := addr(strings.TrimSpace(entry)); a.IsValid() {
				return a
			}
			return peer
		}
		rest = rest[:i]
	}
}

// addr parses an address as Envoy may print it: bare, bracketed IPv6 or
// with a port. IPv4-mapped IPv6 becomes IPv4 so one client has one key.
func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return addr(s[1 : len(s)-1])
	}
	return netip.Addr{}
}

func jwtClaims(ns *structpb.Struct, key string) map[string]*structpb.Value {
	if ns == nil {
		return nil
	}
	if key == "" {
		return ns.GetFields()
	}
	return ns.GetFields()[key].GetStructValue().GetFields()
}

func claim(claims map[string]*structpb.Value, name string) string {
	if name == "" {
		return ""
	}
	v := claims[name]
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	}
	return ""
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
