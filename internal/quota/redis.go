package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/smartlayer/smartlayer/internal/store"
)

// RedisClient is what the Redis backend needs from a client; *redis.Client,
// *redis.ClusterClient and *redis.Ring satisfy it.
//
// Configure the client with ContextTimeoutEnabled (so the caller's deadline
// bounds the socket wait), a small ReadTimeout/WriteTimeout, and MaxRetries
// -1: a retried script after a lost reply would count the request twice.
type RedisClient = store.Scripter

// takeLua checks every window of one request and counts it in all of them
// only when all admit it. Keep the admission test identical to slide.admits.
//
// KEYS: per timed window i (0-based) KEYS[2i+1] is the current bucket and
// KEYS[2i+2] the previous one; the lifetime key follows when ARGV[1] ≥ 0.
// ARGV[1] is the lifetime limit or -1; then per timed window: length (ms),
// elapsed time in the current bucket (ms), limit.
// Returns {allowed, prev_1, curr_1, …, prev_n, curr_n [, lifetime]}, the counts
// before this request.
const takeLua = `
local life = tonumber(ARGV[1])
local n = (#ARGV - 1) / 3
local vals = redis.call('MGET', unpack(KEYS))
local out = {1}
local ok = true
for i = 0, n - 1 do
  local w = tonumber(ARGV[2 + 3*i])
  local e = tonumber(ARGV[3 + 3*i])
  local l = tonumber(ARGV[4 + 3*i])
  local c = tonumber(vals[2*i + 1]) or 0
  local p = tonumber(vals[2*i + 2]) or 0
  if p * (w - e) + (c + 1) * w > l * w then ok = false end
  out[#out + 1] = p
  out[#out + 1] = c
end
if life >= 0 then
  local c = tonumber(vals[2*n + 1]) or 0
  if c + 1 > life then ok = false end
  out[#out + 1] = c
end
if not ok then
  out[1] = 0
  return out
end
for i = 0, n - 1 do
  if redis.call('INCR', KEYS[2*i + 1]) == 1 then
    -- The bucket is read as "previous" during the next bucket, then dropped.
    local w = tonumber(ARGV[2 + 3*i])
    local e = tonumber(ARGV[3 + 3*i])
    redis.call('PEXPIRE', KEYS[2*i + 1], 2*w - e)
  end
end
if life >= 0 then
  redis.call('INCR', KEYS[2*n + 1])
end
return out
`

// takeScript is sent with EVALSHA; EVAL only after NOSCRIPT (a restarted or
// flushed Redis), which also caches it again.
var takeScript = store.NewScript(takeLua)

// keyPrefix starts every quota key (DESIGN.md section 4).
const keyPrefix = "sl:q:"

// NewRedis returns a Limiter whose counters live in Redis, shared by every
// replica: one EVALSHA round trip per Take (client may be a
// *store.Batcher, which shares it with concurrent Takes). With
// cfg.LocalCacheTTL an exhausted window is answered from memory until its
// RetryAfter, at most for the TTL: a client hammering a spent quota costs
// no round trips. The cached denial is what Redis would answer (counts on
// other replicas only grow) unless counters were deleted in Redis
// meanwhile, which applies within the TTL; SetTable (a reload) clears it.
func NewRedis(client RedisClient, t *Table, cfg Config) (*Limiter, error) {
	if client == nil {
		return nil, errors.New("quota: NewRedis: nil client")
	}
	l := newLimiter(t, cfg, nil)
	l.backend = &redisBackend{c: client}
	l.denied = store.NewLocalCache[cachedDenial](cfg.LocalCacheTTL, cfg.LocalCacheSize)
	return l, nil
}

type redisBackend struct{ c RedisClient }

func (b *redisBackend) take(ctx context.Context, subject string, pr *planRoute, nowMs int64) (c counts, allowed bool, err error) {
	n := len(pr.timed)
	nkeys := 2 * n
	if pr.life >= 0 {
		nkeys++
	}
	keys := redisKeys(subject, pr, nowMs, nkeys)
	// The constant arguments were boxed once by Compile; only the elapsed
	// times are new.
	args := make([]any, len(pr.args))
	copy(args, pr.args)
	for i, tl := range pr.timed {
		w := windowMillis[tl.win]
		_, el := bucketOf(nowMs, w)
		args[2+3*i] = el
		c.slides[i] = slide{w: w, e: el}
	}

	vals, err := takeScript.Run(ctx, b.c, keys, args...).Int64Slice()
	if err != nil {
		return c, false, &BackendError{Backend: "redis", Err: fmt.Errorf("run quota script: %w", err)}
	}
	want := 1 + 2*n
	if pr.life >= 0 {
		want++
	}
	if len(vals) != want || vals[0] < 0 || vals[0] > 1 {
		return c, false, &BackendError{Backend: "redis", Err: fmt.Errorf("run quota script: unexpected reply %v", vals)}
	}
	for i := range n {
		c.slides[i].prev, c.slides[i].curr = vals[1+2*i], vals[2+2*i]
	}
	if pr.life >= 0 {
		c.life = vals[1+2*n]
	}
	return c, vals[0] == 1, nil
}

// redisKeys builds every key of one request in one buffer:
// sl:q:{subject}:plan:route:WINDOW:BUCKET (current, then previous bucket, per
// timed window) and sl:q:{subject}:plan:route:life.
func redisKeys(subject string, pr *planRoute, nowMs int64, nkeys int) []string {
	// '{', '}' and '%' are percent-encoded so a subject cannot end the hash
	// tag early or make two subjects' keys collide.
	subject = store.EscapeKey(subject)
	baseLen := len(keyPrefix) + len(subject) + 3 + len(pr.part)
	buf := make([]byte, 0, nkeys*(baseLen+16))
	var endsBuf [2*numTimed + 1]int
	ends := endsBuf[:0]
	base := func() {
		buf = append(buf, keyPrefix...)
		buf = append(buf, '{')
		buf = append(buf, subject...)
		buf = append(buf, '}', ':')
		buf = append(buf, pr.part...)
	}
	for _, tl := range pr.timed {
		bk, _ := bucketOf(nowMs, windowMillis[tl.win])
		for _, b := range [2]int64{bk, bk - 1} {
			base()
			buf = append(buf, windowKey[tl.win]...)
			buf = append(buf, ':')
			buf = strconv.AppendInt(buf, b, 10)
			ends = append(ends, len(buf))
		}
	}
	if pr.life >= 0 {
		base()
		buf = append(buf, windowKey[Lifetime]...)
		ends = append(ends, len(buf))
	}
	all := string(buf)
	keys := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		keys[i] = all[start:end]
		start = end
	}
	return keys
}
