// Package scoring decides whether a client's behaviour is abusive. Its
// decisions are pure functions of a Request, the client's recent history and
// a time; the history comes from a store (memory or Redis) through the
// interfaces declared here.
package scoring

import (
	"net/netip"
	"time"
)

// Request is one HTTP request as Envoy's ext_authz filter describes it,
// reduced to what the pipeline stages need. internal/authz builds it from a
// CheckRequest; every stage reads it and none modifies it.
type Request struct {
	// ID is Envoy's x-request-id (or the CheckRequest id when absent).
	ID string
	// Time is when the request was seen (the Check time).
	Time time.Time

	// ClientIP is the client address after x-forwarded-for processing.
	// It is the zero Addr when neither the peer nor the header gave one.
	ClientIP netip.Addr
	// ClientKey identifies the client for behaviour state: the textual
	// ClientIP, or "unknown" when there is none.
	ClientKey string

	// User is the authenticated user id, empty for anonymous callers.
	User string
	// Plan is the caller's plan; anonymous callers get the anonymous plan.
	Plan string

	Method string
	Host   string
	// Path is the request path without the query string, still URL-encoded
	// as received.
	Path string
	// RawQuery is the query string without '?', still URL-encoded.
	RawQuery string
	// Headers holds request headers with lowercased names. Repeated headers
	// are joined with ",", as Envoy does.
	Headers map[string]string
	// Body is the request body when Envoy sends it (with_request_body), maybe
	// truncated by Envoy; BodyTruncated says so.
	Body          []byte
	BodyTruncated bool
}

// UserAgent returns the user-agent header.
func (r *Request) UserAgent() string { return r.Headers["user-agent"] }

// ContentType returns the content-type header.
func (r *Request) ContentType() string { return r.Headers["content-type"] }

// QuotaKey is the identity quotas are counted under: the user id, or for
// anonymous callers the client grouped as behaviour groups it (an IPv6
// client by its ipv6Prefix network, behavior.ipv6_prefix), so rotating
// addresses inside one /64 does not buy a fresh quota. The prefixes keep a
// user named like an IP address from sharing that address's counters.
func (r *Request) QuotaKey(ipv6Prefix int) string {
	if r.User != "" {
		return "u:" + r.User
	}
	if r.ClientIP.IsValid() {
		return "ip:" + addrKey(r.ClientIP, ipv6Prefix, r.ClientKey)
	}
	return "ip:" + ClientKey(r.ClientKey, ipv6Prefix)
}
