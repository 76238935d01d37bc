package scoring

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
)

// Reasons for denials: a closed set, used as metric labels, in the
// x-smartlayer-reason header and in the access log.
const (
	ReasonBanned         = "behavior.banned"
	ReasonEmptyUserAgent = "behavior.empty_user_agent"
	ReasonRequestBurst   = "behavior.request_burst"
	ReasonErrorRate      = "behavior.error_rate"
	ReasonScore          = "behavior.score"
)

// Signals that add to a client's score: a closed set.
const (
	SignalSuspiciousUA  = "suspicious_user_agent"
	SignalElevatedRate  = "elevated_rate"
	SignalErrorRate     = "moderate_error_rate"
	SignalSensitivePath = "sensitive_path"
	SignalEndpointScan  = "endpoint_scan"
	SignalSequentialIDs = "sequential_ids"
	SignalIdleBurst     = "idle_burst"
	// SignalLLMBlock marks a denial because of a cached BLOCK verdict.
	SignalLLMBlock = "llm_block"
)

// Outcome is the behaviour verdict on one request.
type Outcome struct {
	// Deny says the request must be denied (403). Unless the client was
	// already banned, Check has banned it.
	Deny bool
	// Reason is one of the Reason* constants when Deny, else "".
	Reason string
	// Score is the suspicion score (0 within the grace period or on an
	// instant rule; the ban's score for banned clients).
	Score int
	// Signals lists the scoring signals that fired, in a fixed order.
	Signals []string
	// Grey says the score is in the grey zone: the LLM is asked.
	Grey bool
	// Ban is the client's ban when Deny (the existing one or the new one).
	Ban *Ban
}

// Decide is the behaviour rules as a pure function: the request, the
// client's windows after recording it, and the time. It reads no clock and
// touches no store.
func Decide(cfg BehaviorConfig, req *Request, st ClientState, now time.Time) Outcome {
	if st.Ban != nil && st.Ban.Expires.After(now) {
		return Outcome{Deny: true, Reason: ReasonBanned, Score: st.Ban.Score, Ban: st.Ban}
	}
	ua := req.UserAgent()
	if cfg.BlockEmptyUserAgent && strings.TrimSpace(ua) == "" {
		return Outcome{Deny: true, Reason: ReasonEmptyUserAgent}
	}
	if cfg.RateBlock > 0 && st.RecentRequests >= cfg.RateBlock {
		return Outcome{Deny: true, Reason: ReasonRequestBurst}
	}
	errRatio := 0.0
	sampled := st.Responses >= cfg.ErrorMinSample && st.Responses > 0
	if sampled {
		errRatio = float64(st.Errors) / float64(st.Responses)
	}
	if sampled && cfg.ErrorBlockRatio > 0 && errRatio >= cfg.ErrorBlockRatio {
		return Outcome{Deny: true, Reason: ReasonErrorRate}
	}
	if st.Requests <= int64(cfg.GraceRequests) {
		return Outcome{}
	}

	var out Outcome
	add := func(weight int, signal string) {
		if weight > 0 {
			out.Score += weight
			out.Signals = append(out.Signals, signal)
		}
	}
	if matchUserAgent(cfg.SuspiciousUserAgents, ua) {
		add(cfg.SuspiciousUAWeight, SignalSuspiciousUA)
	}
	if cfg.RateSuspect > 0 && st.RecentRequests >= cfg.RateSuspect {
		add(cfg.RateWeight, SignalElevatedRate)
	}
	if sampled && cfg.ErrorSuspectRatio > 0 && errRatio >= cfg.ErrorSuspectRatio {
		add(cfg.ErrorWeight, SignalErrorRate)
	}
	if matchSensitive(cfg.SensitivePaths, CleanPath(req.Path)) {
		add(cfg.SensitiveWeight, SignalSensitivePath)
	}
	if cfg.DistinctEndpoints > 0 && st.DistinctEndpoints >= cfg.DistinctEndpoints {
		add(cfg.DistinctWeight, SignalEndpointScan)
	}
	if cfg.SequentialRun > 0 && st.SequentialRun >= cfg.SequentialRun {
		add(cfg.SequentialWeight, SignalSequentialIDs)
	}
	if cfg.BurstCount > 0 && st.IdleBurst >= cfg.BurstCount {
		add(cfg.BurstWeight, SignalIdleBurst)
	}
	switch {
	case out.Score >= cfg.BlockThreshold:
		out.Deny, out.Reason = true, ReasonScore
	case out.Score >= cfg.GreyThreshold:
		out.Grey = true
	}
	return out
}

func matchUserAgent(patterns []string, ua string) bool {
	if ua == "" {
		return false
	}
	// Lowercase into a stack buffer: strings.ToLower would allocate for
	// every browser (they all say "Mozilla").
	var buf [512]byte
	var lower []byte
	if len(ua) <= len(buf) {
		lower = buf[:len(ua)]
		for i := 0; i < len(ua); i++ {
			lower[i] = lowerASCII(ua[i])
		}
	} else {
		lower = []byte(strings.ToLower(ua))
	}
	for _, p := range patterns {
		if p != "" && bytes.Contains(lower, []byte(strings.ToLower(p))) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func matchSensitive(prefixes []string, cleaned string) bool {
	for _, p := range prefixes {
		if len(cleaned) >= len(p) && strings.EqualFold(cleaned[:len(p)], p) {
			return true
		}
	}
	return false
}

// CleanPath is the path the rules look at: internal/pathnorm's canonical
// form (unreserved and '/' escapes decoded, so /%61dmin is /admin; ;params,
// dot segments, repeated and trailing slashes removed), case kept, so
// sensitive paths, distinct endpoints and ID templates see what quotas see.
func CleanPath(p string) string { return pathnorm.Normalize(p, cleanOptions) }

// cleanOptions keep case (sensitive paths match case-insensitively on
// their own; endpoints differing in case count apart) and ignore a trailing
// slash.
var cleanOptions = pathnorm.Options{CaseSensitive: true, TrailingSlash: pathnorm.Ignore}

// maxIDDigits keeps IDs exact in Redis Lua's doubles.
const maxIDDigits = 15

// RouteTemplate replaces numeric segments of a cleaned path by {id} and
// returns the last numeric segment's value. /users/42/posts/7 gives
// "/users/{id}/posts/{id}", 7, true. Segments longer than 15 digits count as
// numeric for the template but carry no ID. The ID is the last numeric
// segment's even when other segments follow (/users/7/profile).
func RouteTemplate(cleaned string) (template string, id int64, hasID bool) {
	var b strings.Builder
	start := 0
	numeric := false
	for i := 0; i <= len(cleaned); i++ {
		if i < len(cleaned) && cleaned[i] != '/' {
			continue
		}
		seg := cleaned[start:i]
		if isDigits(seg) {
			if !numeric {
				b.Grow(len(cleaned))
				b.WriteString(cleaned[:start])
				numeric = true
			}
			b.WriteString("{id}")
			hasID = false
			if len(seg) <= maxIDDigits {
				id, _ = strconv.ParseInt(seg, 10, 64)
				hasID = true
			}
		} else if numeric {
			b.WriteString(seg)
		}
		if i < len(cleaned) && numeric {
			b.WriteByte('/')
		}
		start = i + 1
	}
	if !numeric {
		return cleaned, 0, false
	}
	if !hasID {
		id = 0
	}
	return b.String(), id, hasID
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const fnvOffset, fnvPrime = 14695981039346656037, 1099511628211

// hashString is FNV-1a, inlined to stay allocation-free.
func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// templateHash is hashString(RouteTemplate(cleaned)) without building the
// template.
func templateHash(cleaned string) (h uint64, id int64, hasID bool) {
	h = fnvOffset
	write := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= fnvPrime
		}
	}
	start := 0
	numeric := false
	for i := 0; i <= len(cleaned); i++ {
		if i < len(cleaned) && cleaned[i] != '/' {
			continue
		}
		seg := cleaned[start:i]
		if isDigits(seg) {
			numeric = true
			write("{id}")
			hasID = false
			if len(seg) <= maxIDDigits {
				id, _ = strconv.ParseInt(seg, 10, 64)
				hasID = true
			}
		} else {
			write(seg)
		}
		if i < len(cleaned) {
			write("/")
		}
		start = i + 1
	}
	if !numeric || !hasID {
		return h, 0, false
	}
	return h, id, true
}

// Observe describes the request for the store. Pure.
func Observe(cfg BehaviorConfig, clientKey string, req *Request, now time.Time) Observation {
	cleaned := CleanPath(req.Path)
	obs := Observation{
		ClientKey: clientKey,
		Now:       now,
		Endpoint:  hashString(cleaned),
		Windows:   cfg.windows(),
	}
	if h, id, ok := templateHash(cleaned); ok {
		obs.Template, obs.ID, obs.HasID = h, id, true
	}
	return obs
}

// ClientKey is the key behaviour state is kept under: the address in
// canonical form, IPv4-mapped IPv6 as IPv4, IPv6 reduced to its
// ipv6Prefix network ("2001:db8::/64") unless ipv6Prefix is 128. A key that
// is not an address (or network) is kept as is, minus characters that would
// break a Redis hash tag.
func ClientKey(key string, ipv6Prefix int) string {
	if a, err := netip.ParseAddr(key); err == nil {
		return AddrKey(a, ipv6Prefix)
	}
	if p, err := netip.ParsePrefix(key); err == nil {
		a := p.Addr()
		switch {
		case a.Is4() && p.Bits() == 32, a.Is4In6() && p.Bits() == 128:
			return a.Unmap().String()
		case a.Is6() && !a.Is4In6() && p.Bits() >= ipv6Prefix:
			return AddrKey(a, ipv6Prefix)
		}
	}
	if strings.ContainsAny(key, "{}") {
		key = strings.NewReplacer("{", "_", "}", "_").Replace(key)
	}
	if key == "" {
		return "unknown"
	}
	return key
}

// ErrBanTooWide refuses a network wider than behavior.min_ban_prefix_v4/v6.
var ErrBanTooWide = errors.New("network too wide to ban")

// BanKey is the key an operator's ban of s — an address or a network — is
// kept under. An address, or an IPv6 network at least as long as
// ipv6Prefix, is ClientKey's (the ban covers that client's whole group, as
// listed). A wider network is kept masked ("10.0.0.0/16",
// "2001:db8::/32") and bans every address inside it; an IPv4-mapped
// network is unmapped first ("::ffff:10.0.0.0/112" is "10.0.0.0/16"). A
// network shorter than /minV4 (IPv4) or /minV6 (IPv6) is refused with
// ErrBanTooWide.
func BanKey(s string, ipv6Prefix, minV4, minV6 int) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return AddrKey(a, ipv6Prefix), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return ClientKey(s, ipv6Prefix), nil
	}
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	p = netip.PrefixFrom(a, bits).Masked()
	if a.Is4() {
		switch {
		case bits < minV4:
			return "", fmt.Errorf("%w: %s is wider than /%d (behavior.min_ban_prefix_v4)", ErrBanTooWide, p, minV4)
		case bits == 32:
			return a.String(), nil
		}
		return p.String(), nil
	}
	switch {
	case bits < minV6:
		return "", fmt.Errorf("%w: %s is wider than /%d (behavior.min_ban_prefix_v6)", ErrBanTooWide, p, minV6)
	case bits >= ipv6Prefix || bits == 128:
		return AddrKey(a, ipv6Prefix), nil
	}
	return p.String(), nil
}

// AddrKey is ClientKey for a parsed address.
func AddrKey(a netip.Addr, ipv6Prefix int) string { return addrKey(a, ipv6Prefix, "") }

// addrKey returns hint instead of a new string when they are equal, so the
// common case (authz's ClientKey is already canonical) does not allocate.
func addrKey(a netip.Addr, ipv6Prefix int, hint string) string {
	a = a.Unmap().WithZone("")
	var buf [64]byte
	var k []byte
	if a.Is6() && ipv6Prefix > 0 && ipv6Prefix < 128 {
		k = netip.PrefixFrom(a, ipv6Prefix).Masked().AppendTo(buf[:0])
	} else {
		k = a.AppendTo(buf[:0])
	}
	if string(k) == hint {
		return hint
	}
	return string(k)
}
