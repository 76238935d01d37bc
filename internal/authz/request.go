package authz

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/setting"
)

// Identity says how toRequest finds a request's client, user and plan
// (identity.*).
type Identity struct {
	ClientIP ClientIPConfig `koanf:"client_ip"`
	// UserHeader and PlanHeader name request headers that carry the user
	// and plan when no verified JWT does. Empty (the default) means no
	// header identity: setting them is an opt-in for deployments whose
	// proxy writes them and strips client-sent copies first (the shipped
	// Envoy configs do); otherwise a client picks its own plan.
	UserHeader string `koanf:"user_header"`
	PlanHeader string `koanf:"plan_header"`
	// AnonymousPlan is the plan of requests without a user.
	AnonymousPlan string `koanf:"anonymous_plan"`
	// DefaultPlan is the plan of an identified user whose token (or plan
	// header) names none; empty means AnonymousPlan, counted per user.
	DefaultPlan string `koanf:"default_plan"`
	// JWT reads user and plan from the payload Envoy's jwt_authn filter
	// writes into metadata (payload_in_metadata), before the headers.
	JWT JWTConfig `koanf:"jwt"`

	// MaxBodyBytes caps the body kept for inspection. Not a key of its own:
	// the pipeline copies payload.max_body_bytes here.
	MaxBodyBytes int `koanf:"-"`
}

// ClientIPConfig selects the client address (identity.client_ip.*).
type ClientIPConfig struct {
	// Source is "xff" (x-forwarded-for, honouring TrustedHops) or "peer"
	// (attributes.source.address only).
	Source string `koanf:"source"`
	// TrustedHops has Envoy's xff_num_trusted_hops meaning counted from the
	// right of x-forwarded-for, where Envoy itself appended the peer: 1 takes
	// the last entry, 2 the one before it.
	TrustedHops int `koanf:"trusted_hops"`
}

// JWTConfig locates jwt_authn's payload in the CheckRequest
// metadata_context (identity.jwt.*).
type JWTConfig struct {
	Filter     string `koanf:"filter"`      // filter_metadata namespace
	PayloadKey string `koanf:"payload_key"` // jwt_authn payload_in_metadata
	UserClaim  string `koanf:"user_claim"`
	PlanClaim  string `koanf:"plan_claim"`
}

// DefaultIdentity returns the documented defaults: the client from the
// right-most x-forwarded-for entry, user and plan from jwt_authn's verified
// payload only.
func DefaultIdentity() Identity {
	return Identity{
		ClientIP:      ClientIPConfig{Source: "xff", TrustedHops: 1},
		AnonymousPlan: "anonymous",
		JWT: JWTConfig{Filter: "envoy.filters.http.jwt_authn", PayloadKey: "jwt_payload",
			UserClaim: "sub", PlanClaim: "plan"},
		MaxBodyBytes: 64 << 10,
	}
}

// Validate reports every problem at once, named by its YAML key
// (identity.*).
func (id Identity) Validate() error {
	p := setting.Section("identity")
	p.OneOf("client_ip.source", id.ClientIP.Source, "xff", "peer")
	p.NonNegative("client_ip.trusted_hops", id.ClientIP.TrustedHops)
	p.HeaderName("user_header", id.UserHeader, true)
	p.HeaderName("plan_header", id.PlanHeader, true)
	if id.AnonymousPlan == "" {
		p.Add("anonymous_plan", nil, "must be set")
	}
	return p.Err()
}

func (id *Identity) fromXFF() bool { return id.ClientIP.Source == "xff" }

// unknownClient keys requests whose client address cannot be found; they
// share one behaviour history, which is the safe direction.
const unknownClient = "unknown"

// partialBodyHeader is set by Envoy when with_request_body cut the body.
const partialBodyHeader = "x-envoy-auth-partial-body"

// toRequest translates Envoy's CheckRequest into the pipeline's Request. It
// never fails: a CheckRequest without attributes yields an empty Request,
// which ok=false marks as malformed so the caller can apply the fail mode.
func toRequest(req *authv3.CheckRequest, id *Identity, now time.Time) (r *scoring.Request, ok bool) {
	return toRequestNames(req, id, now, nameHints{})
}

// toRequestNames is toRequest told what the hand decoder found out about
// the header names (checkRequest.names): lowercase already, no walk over
// the map to check.
func toRequestNames(req *authv3.CheckRequest, id *Identity, now time.Time, names nameHints) (r *scoring.Request, ok bool) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r = &scoring.Request{Time: now, Headers: headers(h, names.lower)}
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

	r.User, r.Plan = id.userAndPlan(attrs.GetMetadataContext().GetFilterMetadata()[id.JWT.Filter], r.Headers)
	return r, ok
}

// userAndPlan picks the caller's user and plan from verified sources only.
// A token jwt_authn verified wins: its user claim, and its plan claim or
// DefaultPlan — never a header, which the client may have written. Headers
// count only when configured (UserHeader, PlanHeader: an explicit opt-in
// for deployments whose proxy sets them and strips client copies). Without
// a user there is no plan to trust: anonymous callers are limited per
// client IP on the anonymous plan.
func (id *Identity) userAndPlan(jwtNS *structpb.Struct, headers map[string]string) (user, plan string) {
	if claims := jwtClaims(jwtNS, id.JWT.PayloadKey); claims != nil {
		if user = claim(claims, id.JWT.UserClaim); user != "" {
			return user, firstNonEmpty(claim(claims, id.JWT.PlanClaim), id.defaultPlan())
		}
	}
	if id.UserHeader != "" {
		if user = headers[id.UserHeader]; user != "" {
			if id.PlanHeader != "" {
				plan = headers[id.PlanHeader]
			}
			return user, firstNonEmpty(plan, id.defaultPlan())
		}
	}
	return "", id.AnonymousPlan
}

// defaultPlan is the plan of an identified user whose token names none.
func (id *Identity) defaultPlan() string { return firstNonEmpty(id.DefaultPlan, id.AnonymousPlan) }

// headers returns lowercased request headers from either of Envoy's
// encodings: the headers map, or header_map (encode_raw_headers) whose raw
// values are bytes. namesLower: the map's names are known to be lowercase
// (no walk over the map to find out).
func headers(h *authv3.AttributeContext_HttpRequest, namesLower bool) map[string]string {
	if m := h.GetHeaders(); len(m) > 0 {
		if namesLower || allLower(m) {
			// Envoy sends HTTP/2-style lowercase names: the map is
			// the request's already (nothing writes to it).
			return m
		}
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

func allLower(m map[string]string) bool {
	for k := range m {
		if lowerASCII(k) != k {
			return false
		}
	}
	return true
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
	if !id.fromXFF() || id.ClientIP.TrustedHops <= 0 || xff == "" {
		return peer
	}
	n := id.ClientIP.TrustedHops
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

// ParseRequest is toRequest for tools (authz explain): the Request the
// pipeline would see for req, and false when req has no HTTP attributes.
func ParseRequest(req *authv3.CheckRequest, id Identity, now time.Time) (*scoring.Request, bool) {
	return toRequest(req, &id, now)
}
