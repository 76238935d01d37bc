// Package quota enforces per-plan, per-route request quotas: django-smart-layer's
// RateLimiter, shared by every authz replica through Redis (or kept in process
// memory for `make run`).
//
// # Plans and routes
//
// A Table maps plan → route → limits (per_minute, per_hour, per_day, lifetime).
// Routes are resolved from the request path alone, over the union of every
// plan's routes; the plan then decides:
//
//   - no route matches → not limited (NoRoute);
//   - the route exists but not in the caller's plan → Forbidden (403
//     quota.plan_forbidden), as django-smart-layer answers for premium-only
//     routes; an unknown plan is forbidden on every configured route;
//   - otherwise every configured window of that plan's route is checked.
//
// Route keys come in three kinds:
//
//   - exact:    "/api/generate/" matches that path only (and, with
//     quota.trailing_slash: ignore, the default, "/api/generate");
//   - template: "/users/{id}/export" — a placeholder matches exactly one
//     non-empty path segment;
//   - prefix:   "/api/export/*" matches every path starting with "/api/export/".
//
// The most specific match wins: exact beats template beats prefix. Among
// templates, the one with more literal segments wins, then the one whose first
// literal comes earlier ("/users/me/{x}" beats "/users/{id}/export" for
// "/users/me/export"). Among prefixes the longer prefix wins. Two templates that
// differ only in placeholder names are rejected by Compile as ambiguous.
//
// Counters belong to the route key, not the path: every path a template or
// prefix route matches spends the same budget. Before matching, route keys
// and request paths are normalized alike by internal/pathnorm, the form
// behaviour scoring uses too: query dropped, escapes of unreserved
// characters and of '/' decoded, ;params stripped, dot segments and repeated
// slashes removed, case folded unless quota.case_sensitive, a trailing slash
// dropped unless quota.trailing_slash is strict. "/API/./generate;x=1//" is
// "/api/generate/"; "/api/generate%20/" (a space is not unreserved) is not.
// Anonymous callers are counted per client, IPv6 grouped by
// behavior.ipv6_prefix as behaviour groups them.
//
// # Window algorithm: sliding-window counter
//
// Each timed window keeps two fixed buckets, the current one and the previous
// one, and estimates the count over the last window as
//
//	prev × (W − elapsed)/W + curr
//
// A request is admitted when that estimate plus one stays within the limit.
// Fixed windows let a client spend its limit at the end of one bucket and again
// at the start of the next (2× bursts); GCRA with a burst of one full limit is a
// token bucket with the same 2× problem, and with a smaller burst it would refuse
// "100 at once" for per_day: 100. The sliding counter needs two integers per
// window, keeps plain counts (so a hot reload that changes a limit applies to
// the requests already counted), and its check-and-count is atomic, so
// concurrent requests never overshoot the estimate. The estimate assumes the
// previous bucket's requests were spread evenly: a client that bunches them at
// its very end can exceed the limit over some true window-length span, by less
// than fixed windows allow. All arithmetic is integer milliseconds, so Redis (Lua doubles, exact below
// 2^53 thanks to the limit caps) and memory decide identically.
//
// Lifetime counters never reset: a Redis key without TTL (Redis needs
// persistence, AOF or RDB, to keep them across restarts).
//
// # Denials consume nothing
//
// All windows are checked first and incremented only if all pass, in one atomic
// step. A request that passes per_minute but fails per_day consumes nothing, so
// a client hammering an exhausted day quota does not also burn its minute and
// lifetime budgets.
//
// # Results and headers
//
// An allowed Result reports the tightest window (fewest remaining; ties go to
// the longer window); a denied one the window the client must wait longest
// for (a spent lifetime or a zero limit first: retrying never helps, and
// RetryAfter is 0). Reset is the time until the window has forgotten every
// counted request — up to two window lengths with the sliding counter.
// Result.AppendHeaders renders Retry-After, RateLimit-Limit/-Remaining/-Reset
// and X-RateLimit-Limit/-Remaining/-Reset, in delta seconds rounded up.
//
// # Clock
//
// Take receives now from the caller instead of reading Redis TIME: tests control
// window roll-over with a fake clock, the memory backend runs the same bucket
// arithmetic, and replicas already agree on time within NTP skew — a few
// milliseconds of skew only moves a bucket boundary by as much, which is
// negligible against minute-or-longer windows. Bucket numbers are epoch-aligned
// (now / W), so replicas compute the same keys.
//
// # Redis layout
//
// One Lua script (EVALSHA, EVAL on NOSCRIPT) per Take reads, checks and
// increments every window of one request in a single round trip. Keys carry the
// subject as a hash tag, so one script touches one cluster slot:
//
//	sl:q:{subject}:plan:route:m:BUCKET   per_minute bucket, expires 2 minutes after its start
//	sl:q:{subject}:plan:route:h:BUCKET   per_hour
//	sl:q:{subject}:plan:route:d:BUCKET   per_day
//	sl:q:{subject}:plan:route:life       lifetime, no TTL
//
// The plan is part of every key: upgrading starts with fresh counters. '{',
// '}' and '%' in a subject are percent-encoded, so a subject can neither end
// the hash tag early nor collide with another; plan names cannot contain ':'
// and routes start with '/', so "plan:route" reads one way only.
//
// Redis errors and timeouts come back as *BackendError; the caller applies its
// fail mode. See RedisClient for the client options that keep a Take within
// the caller's deadline.
package quota
