package scoring

import (
	"context"
	"time"
)

// State records what a client does and remembers bans. internal/scoring/state
// implements it twice: in process (memory) and in Redis, shared by replicas.
//
// Every method takes the time from the caller, so the windows move with the
// caller's clock (a fake one in tests) and never with the store's.
type State interface {
	// Check returns the client's active ban, if any, without recording
	// anything — a manual ban of a network holding the client's address
	// (or, for an IPv6 network key, all of it) counts; otherwise it records the request described by obs and returns
	// the client's windows including it. At most one round trip (the
	// Redis store answers a client it knows from its view and sends the
	// request behind the Check: store.redis.async).
	Check(ctx context.Context, obs Observation) (ClientState, error)
	// ObserveResponses counts upstream responses in their clients' error
	// windows. One round trip for the lot.
	ObserveResponses(ctx context.Context, rs []ObservedResponse, w Windows) error
	// Ban bans the client. With an escalating request and an active ban it
	// returns the active ban unchanged (so two replicas banning at once count
	// one offence).
	Ban(ctx context.Context, clientKey string, req BanRequest) (Ban, error)
	// Unban lifts the client's ban, forgets its offences and clears its
	// windows. It reports whether a ban was active.
	Unban(ctx context.Context, clientKey string, now time.Time) (bool, error)
	// Bans lists active bans, at most limit of them, manual bans first,
	// otherwise in no particular order. Every listed ban is one Check
	// honours.
	Bans(ctx context.Context, now time.Time, limit int) ([]Ban, error)
}

// ObservedResponse is one upstream response as the store counts it.
type ObservedResponse struct {
	ClientKey string
	IsError   bool
	At        time.Time
}

// Observation is one request as the store records it: hashes instead of
// strings so both backends keep a few bytes per endpoint.
type Observation struct {
	ClientKey string
	Now       time.Time
	// Endpoint is the hash of the normalized path.
	Endpoint uint64
	// Template is the hash of the route template (numeric segments replaced
	// by {id}); meaningful only when HasID.
	Template uint64
	// ID is the last numeric path segment.
	ID    int64
	HasID bool
	// Windows are the window sizes and caps, from the configuration.
	Windows Windows
}

// Windows are the sizes of the sliding windows the store keeps per client.
// Request and error windows are bucketed: RateWindow and ErrorWindow are
// split into WindowBuckets buckets, and a count covers the buckets that
// overlap the last window (so its true span is between 9/10 and 10/10 of it).
type Windows struct {
	Rate     time.Duration
	Errors   time.Duration
	Distinct time.Duration
	// Idle is how long an endpoint must rest before a return starts a burst.
	Idle time.Duration
	// Burst is how long a burst after idle lasts.
	Burst time.Duration
	// StateTTL is how long a silent client's state is kept.
	StateTTL time.Duration
	// MaxEndpoints and MaxTemplates cap the endpoints and route templates
	// remembered per client (least recently seen dropped first).
	MaxEndpoints int
	MaxTemplates int
}

// WindowBuckets is the number of buckets per request or error window.
const WindowBuckets = 10

// ClientState is what the store knows about a client after recording the
// current request.
type ClientState struct {
	// Ban is the client's active ban; when set, nothing was recorded and
	// the other fields are zero.
	Ban *Ban
	// Requests counts the client's requests while its state lived,
	// including this one.
	Requests int64
	// RecentRequests counts requests in the rate window, including this one.
	RecentRequests int
	// Responses and Errors count upstream responses in the error window.
	Responses int
	Errors    int
	// DistinctEndpoints counts endpoints seen in the distinct window,
	// including this one.
	DistinctEndpoints int
	// SequentialRun is how many requests on this request's route template
	// carried IDs ascending by one, ending with this one (0 without an ID).
	SequentialRun int
	// IdleBurst counts requests to this endpoint since it came back from
	// idle, while within the burst window; 0 otherwise.
	IdleBurst int
}

// Ban is an active ban of a client.
type Ban struct {
	ClientKey string    `json:"client"`
	Reason    string    `json:"reason"`
	Score     int       `json:"score"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	// Offence is the client's offence count when banned (0 for manual
	// bans, which do not escalate).
	Offence int `json:"offence"`
	// Manual marks an operator's ban: kept apart from automatic bans,
	// never evicted, and its client may be a network ("10.0.0.0/16",
	// "2001:db8::/32") banning every address inside it.
	Manual bool `json:"manual,omitempty"`
}

// BanRequest says how to ban.
type BanRequest struct {
	Reason string
	Score  int
	Now    time.Time
	// TTL is the ban length; with Escalate it is the first offence's length
	// and each repeat within OffenceMemory multiplies it by Factor, up to
	// MaxTTL.
	TTL           time.Duration
	Escalate      bool
	Factor        int
	MaxTTL        time.Duration
	OffenceMemory time.Duration
	// Manual is an operator's ban (see Ban.Manual); it never escalates.
	Manual bool
}

// EscalatedTTL is the ban length of the offence-th offence (1-based).
// Both stores use it so they agree.
func EscalatedTTL(base time.Duration, factor int, maxTTL time.Duration, offence int) time.Duration {
	ttl := base
	for i := 1; i < offence && ttl < maxTTL; i++ {
		ttl *= time.Duration(factor)
	}
	if maxTTL > 0 && ttl > maxTTL {
		ttl = maxTTL
	}
	return ttl
}
