package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/store"
)

// RedisOptions configures the Redis store.
type RedisOptions struct {
	// Prefix starts every key ("sl:"); tests use a unique one.
	Prefix string
	// ManualRefresh is how often a replica re-reads the manual bans
	// (sl:mban) on the request path; its own bans apply at once.
	ManualRefresh time.Duration
	// Scripts runs the request path's script (Check): a *store.Batcher
	// (store.redis.batch); nil sends it on the client.
	Scripts store.Scripter
	// LocalCacheTTL and LocalCacheSize bound the replica's cache of active
	// bans (store.redis.local_cache_ttl, local_cache_size); 0 is no cache.
	LocalCacheTTL  time.Duration
	LocalCacheSize int
	// AsyncMaxAge, when positive, answers a client's Checks from this
	// replica's view while Redis answered for the client within it, and
	// sends the observations behind them (store.redis.async; see
	// asyncView). AsyncMaxClients bounds the clients it keeps a view of.
	AsyncMaxAge     time.Duration
	AsyncMaxClients int
	// Registerer receives the asynchronous Checks' metrics (nil: none).
	Registerer prometheus.Registerer
	// CallTimeout bounds the calls that do not go through Scripts — a
	// ban, the manual bans' refresh — beyond the caller's context (0:
	// the context alone). internal/app sets it when Scripts is a Batcher,
	// which cuts the Check's own call itself: the behaviour stage then
	// builds no deadline of its own per Check (context.WithTimeout was
	// ~4.5 µs of a Check's CPU in authz's profile under checkload).
	CallTimeout time.Duration
}

// DefaultRedisOptions returns the defaults.
func DefaultRedisOptions() RedisOptions {
	return RedisOptions{Prefix: "sl:", ManualRefresh: time.Second}
}

// Redis is the State shared by replicas. Keys carry the client in a hash
// tag, so each script touches one cluster slot:
//
//	sl:ban:{ip}       hash  reason, score, created, expires, offence (ms)
//	sl:bh:{ip}:v2     string the client's windows, packed (stateLua): last
//	                        seen, requests, rate/response/error buckets,
//	                        burst after idle, endpoints, templates
//	sl:bh:{ip}:off    hash  n (offences), exp (when they are forgotten, ms)
//
// (:v2 is the packed layout's version: the keys of the one before, :w and
// :ep, are ignored and expire with the state TTL.)
//
//	sl:mban           hash  manual bans: client or network → reason, score,
//	                        created, expires (ms), '\x1f'-separated
//
// Manual bans are few and may cover networks, which no per-client key can:
// each replica keeps a snapshot of sl:mban, re-read at most every
// ManualRefresh on the request path, and Check consults it before the
// script (a snapshot that cannot be read is kept, and retried later).
//
// The caller's time drives the windows and ban expiry (stored as data);
// Redis TTLs, set relative to now, only reclaim memory.
// Per-call timeouts come from the caller's context (store.redis.timeout)
// and, through a Batcher, the adaptive timeout.
//
// A ban this replica set or saw in a Check's reply is kept in a local cache
// (RedisOptions.LocalCacheTTL) and answers that client's next Checks
// without a round trip until the earlier of its expiry and the TTL. A ban
// another replica sets is seen at once (nothing is cached for clients not
// banned); an unban through this replica clears its cache at once, and is
// seen by the others within the TTL.
type Redis struct {
	c       redis.UniversalClient
	scripts store.Scripter
	bans    *store.LocalCache[scoring.Ban]
	prefix  string
	refresh time.Duration

	manual *manualBans
	// wscript is the check script of the windows last seen.
	wscript atomic.Pointer[windowScript]
	// loaded is when the snapshot was last read (Unix ns, real time);
	// gen counts this replica's writes, so a read that raced one is not
	// installed.
	mu     sync.Mutex
	loaded int64
	gen    uint64

	// async is nil when every Check waits for Redis.
	async *asyncView
	// callTimeout is RedisOptions.CallTimeout.
	callTimeout time.Duration
}

// bound applies callTimeout to a call that does not go through scripts.
func (r *Redis) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.callTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.callTimeout)
}

// NewRedis returns a store on c. It does not contact Redis.
func NewRedis(c redis.UniversalClient, opts RedisOptions) (*Redis, error) {
	if c == nil {
		return nil, errors.New("store redis: nil client")
	}
	d := DefaultRedisOptions()
	if opts.Prefix == "" {
		opts.Prefix = d.Prefix
	}
	if opts.ManualRefresh <= 0 {
		opts.ManualRefresh = d.ManualRefresh
	}
	scripts := opts.Scripts
	if scripts == nil {
		scripts = c
	}
	r := &Redis{c: c, scripts: scripts, bans: store.NewLocalCache[scoring.Ban](opts.LocalCacheTTL, opts.LocalCacheSize),
		prefix: opts.Prefix, refresh: opts.ManualRefresh, manual: newManualBans(), callTimeout: opts.CallTimeout}
	if opts.AsyncMaxAge > 0 {
		a, err := newAsyncView(opts.AsyncMaxAge, max(opts.AsyncMaxClients, 1), opts.Registerer)
		if err != nil {
			return nil, err
		}
		r.async = a
	}
	return r, nil
}

// Close waits until the observations queued behind asynchronous Checks
// were sent, or ctx is done.
func (r *Redis) Close(ctx context.Context) error {
	if r.async == nil {
		return nil
	}
	return r.async.drain(ctx)
}

func (r *Redis) manualKey() string { return r.prefix + "mban" }

// manualBan returns the manual ban covering clientKey, re-reading the
// snapshot first when it is older than the refresh interval.
func (r *Redis) manualBan(ctx context.Context, clientKey string, now time.Time) (scoring.Ban, bool) {
	r.mu.Lock()
	stale := time.Now().UnixNano()-r.loaded >= int64(r.refresh)
	if stale {
		r.loaded = time.Now().UnixNano() // one reader per interval, even when it fails
	}
	gen := r.gen
	r.mu.Unlock()
	if stale {
		ctx, cancel := r.bound(ctx)
		_ = r.loadManual(ctx, gen, now)
		cancel()
	}
	return r.manual.match(clientKey, now)
}

// loadManual reads sl:mban into the snapshot unless this replica wrote
// since gen, and deletes entries expired at now.
func (r *Redis) loadManual(ctx context.Context, gen uint64, now time.Time) error {
	all, err := r.c.HGetAll(ctx, r.manualKey()).Result()
	if err != nil {
		return fmt.Errorf("store redis manual bans: %w", err)
	}
	bans := make(map[string]scoring.Ban, len(all))
	var expired []string
	for k, v := range all {
		b, ok := decodeManual(k, v)
		switch {
		case !ok:
			continue
		case !b.Expires.After(now):
			expired = append(expired, k)
		default:
			bans[k] = b
		}
	}
	r.mu.Lock()
	if r.gen == gen {
		r.manual.replace(bans)
	}
	r.mu.Unlock()
	if len(expired) > 0 {
		// Only bans expired by the caller's clock; best effort.
		_ = r.c.HDel(ctx, r.manualKey(), expired...).Err()
	}
	return nil
}

func encodeManual(b scoring.Ban) string {
	return strings.Join([]string{b.Reason, strconv.Itoa(b.Score),
		strconv.FormatInt(b.Created.UnixMilli(), 10), strconv.FormatInt(b.Expires.UnixMilli(), 10)}, "\x1f")
}

func decodeManual(key, v string) (scoring.Ban, bool) {
	f := strings.Split(v, "\x1f")
	if len(f) != 4 {
		return scoring.Ban{}, false
	}
	score, err1 := strconv.Atoi(f[1])
	created, err2 := strconv.ParseInt(f[2], 10, 64)
	expires, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return scoring.Ban{}, false
	}
	return scoring.Ban{ClientKey: key, Reason: f[0], Score: score, Manual: true,
		Created: time.UnixMilli(created), Expires: time.UnixMilli(expires)}, true
}

func (r *Redis) banKey(client string) string { return r.prefix + "ban:" + store.HashTag(client) }
func (r *Redis) bhKey(client, suffix string) string {
	return r.prefix + "bh:" + store.HashTag(client) + ":" + suffix
}

// stateLua is the Lua shared by the check script and observeScript: one
// client's windows as one packed value (sl:bh:{ip}:v2, Lua's struct
// library), read with one GET and written with one SET, and the same
// arithmetic as the memory store (advance, sum, the endpoint and template
// lists in the order they were added, least recently seen replaced first).
// It reads the value and unpacks its head; each script does the rest.
//
// Why packed: the layout before it (a hash of buckets read with HGETALL,
// an endpoint zset with ZSCORE/ZADD/ZCARD/ZCOUNT, two PEXPIREs; ~14 Redis
// calls a Check) cost redis-server 46–62 µs of CPU per Check in
// BenchmarkRedisCheckParallel/batch (redis-cpu-µs/op, 1,000 clients, 2
// shared cores), the packed one 36–41 µs, interleaved runs. Instructions
// per call (callgrind on redis-server, 1,000 clients, 1 endpoint each):
// EVALSHA of "return 1" 29k; packed with cmsgpack and 14 arguments 153k;
// with struct 145k (cmsgpack's pack+unpack was 44k of it, struct's 34k);
// with the windows as constants in the source (checkScriptFor) 123k;
// with the struct format a literal 120k; with HGET of the ban's expiry
// before the HMGET of its fields (only for a banned client) 113k.
//
// Then (callgrind on redis-server, 14,000 Checks after a warm-up from
// 1,000 clients on 7 endpoints each, no ids, counted in evalShaCommand:
// 117k per Check before): the observation as one packed argument (no
// tonumber) −7k; one packed string in the reply instead of 8 numbers
// −5k; SET's PX as a string constant −3k; the response and error rings
// kept as one packed string the Check unpacks only when some are in its
// window, the templates copied packed unless the request has an id (97k);
// no local functions (6 closures a call, 2.7k), % instead of math.floor
// (~600 each), no math.min/max, SET KEEPTTL within a period (stateExpiry;
// 8k less than PX): 83k; head and endpoints unpacked and packed with one
// format, a prefix of FMTS: 78.5k. With ids on 3 of the 7 endpoints
// 128.6k → 90.2k. observeScript (one response a call) 86.3k → 68.4k,
// 61.5k with its arguments packed too.
// Where the 83k went, measured by cutting the script short: EVALSHA of
// "return 1" with 1 argument 9.6k, reading the argument and the reply
// ~7k, HGET of the ban 3.3k, GET 6.5k, unpacking the head 7.6k, the rate
// window 6.2k, unpacking the endpoints 8k, their scan 4.2k, packing head
// and endpoints 18k (struct.pack costs ~400 instructions a value, a new
// string ~1.5k), SET KEEPTTL 6.6k. Left as it is: the HGET (a ban flag in
// the state would save 3.3k, but a ban set before the flag existed, or by
// a replica of the version before, would go unseen).
//
// Value layout: the endpoint count E and template count T (uint16 each),
// then [3] last seen (ms), [4] requests, [5] rate base bucket, [6..5+N]
// rate counts (ring, index mod N), [6+N] error base bucket, [7+N] the N
// response counts and N error counts (RINGS, one string of 4N bytes), then
// burst endpoint, burst start, burst count (the Lua array s of the head,
// 1-based, counts first), then E (hash, last seen) pairs, then T (hash,
// run, last id, last seen) quads. Times, bucket indices and ids are
// doubles (what Lua numbers are), hashes and runs uint32, counts uint16.
// Hashes are 32-bit folds (fold32), as in memory; counts saturate at
// 65535, as in memory. The bytes are those of v2 before the rings were
// read as one string: keys written by the version before read the same.
// N, HEAD, RINGS and ZERO are literals: built in Lua they cost every call.
var stateLua = "local N = " + strconv.Itoa(scoring.WindowBuckets) +
	"\nlocal HEAD = '" + headFormat + "'" +
	"\nlocal RINGS = '<" + strings.Repeat("H", 2*scoring.WindowBuckets) + "'" +
	"\nlocal ZERO = '" + strings.Repeat(`\0`, 4*scoring.WindowBuckets) + "'" + `
-- Positions in s, the head: endpoint and template counts, last seen,
-- requests, rate base bucket, rate counts (RC + bucket mod N), error base
-- bucket, the response and error counts (RINGS, packed), burst.
local REQ, RB, RC = 4, 5, 6
local EB = RC + N
local RS = EB + 1
local BU = RS + 1
local HN = BU + 2
-- The state's value and head, or '' and a fresh head when it has none or
-- it was silent for the state TTL (ttl).
-- With EPS (the check script), s holds the endpoints too, after the
-- head, and fmt is their format (one struct.unpack and one struct.pack
-- for both: 4k instructions fewer than two of each and a concatenation).
local raw = redis.call('GET', KEYS[STATE])
local s
local fmt = HEAD
if raw then
  if EPS then
    local n = struct.unpack('<H', raw)
    if n <= maxep then fmt = string.sub(FMTS, 1, HL + 4 * n) else fmt = HEAD .. string.rep('<I4d', n) end
  end
  s = {struct.unpack(fmt, raw)}
  if now - s[3] >= ttl then raw = nil end
end
if not raw then
  fmt, raw, s = HEAD, '', {0, 0, now, 0, 0` + strings.Repeat(", 0", scoring.WindowBuckets) + `, 0, ZERO, 0, 0, 0, 1}
end
-- pos: where what fmt read ends.
local pos = s[#s]
s[#s] = nil
`

// headFormat is the struct format of a state value's head (stateLua).
var headFormat = "<HHdHd" + strings.Repeat("H", scoring.WindowBuckets) + "dc" +
	strconv.Itoa(4*scoring.WindowBuckets) + "I4dH"

// stateExpiry returns the state key's Redis TTL (ms) for the windows'
// state TTL, and the period of caller time within which a write keeps the
// TTL it has (SET KEEPTTL, 8k instructions fewer than PX with the number
// as a string, callgrind on redis-server): a write with last seen L in
// the same period as the write that set the TTL is at most a period
// later, and the TTL (state TTL + 2 periods) outlasts L + state TTL, when
// the state is stale anyway, with a period to spare for clocks apart.
// Redis TTLs only reclaim memory (the data says when the state is stale).
// While replicas of the version before (PX of the state TTL on every
// write) share the keys, a key they wrote last may expire up to a period
// before its state goes stale: that client's windows start afresh.
func stateExpiry(ttl time.Duration) (px, period int64) {
	period = max(ttl.Milliseconds()/16, 1)
	return ttl.Milliseconds() + 2*period, period
}

// checkScriptFor returns the check script of windows w: their widths and
// caps are constants in its source, so a Check sends one argument, not 14,
// and Lua converts no strings to numbers — tonumber is strtod, ~1.6k
// instructions each, and 12% of the script's instructions went into them
// (callgrind on redis-server, 1,000 clients). The state key's TTL is a
// string constant too: a Lua number given to redis.call is formatted first
// (3.4k instructions). A configuration is one script (its own SHA1; loaded
// by the first Check after a reload, NOSCRIPT → EVAL).
//
// KEYS ban, state. ARGV[1] is checkArgs's packed observation. Reply {1,
// reason, score, created, expires, offence} for a banned client or {state}
// (checkReplyFormat); the memory store's Check step by step.
func checkScriptFor(w scoring.Windows) *store.Script {
	px, period := stateExpiry(w.StateTTL)
	// FMTS: the formats of a value with up to maxep endpoints, each a
	// prefix (string.sub is one new string, HEAD .. string.rep two).
	consts := fmt.Sprintf("local rw, ew, dms, idle, bms, ttl, maxep, maxtpl, period = %d, %d, %d, %d, %d, %d, %d, %d, %d\nlocal pxs = '%d'\nlocal FMTS, HL = '%s', %d\n",
		bucketWidth(w.Rate), bucketWidth(w.Errors), w.Distinct.Milliseconds(), w.Idle.Milliseconds(),
		w.Burst.Milliseconds(), w.StateTTL.Milliseconds(), w.MaxEndpoints, w.MaxTemplates, period, px,
		headFormat+strings.Repeat("<I4d", max(w.MaxEndpoints, 0)), len(headFormat))
	return store.NewScript(consts + checkLua)
}

// checkArgFormat is checkArgs's packing (Lua's struct): now (ms), endpoint,
// template (fold32), id, has id (1/0).
const checkArgFormat = "<dI4I4dB"

// checkReplyFormat packs the check script's answer: requests, recent,
// responses, errors, distinct, run, burst. One string in a one-element
// table: the reply of an 8-element table cost redis-server 5k instructions
// more (the asynchronous sender reads every reply as an array).
const checkReplyFormat = "<I4I4I4I4I4I4I4"

// checkLua is the check script after its constants. No local functions
// (a closure is made on every call, ~450 instructions each), bucket
// indices with % rather than math.floor (a C call, ~600 instructions; the
// quotient is exact, as the memory store's floorDiv), no math.min/max.
var checkLua = `
local now, ep, tpl, id, hasid = struct.unpack('` + checkArgFormat + `', ARGV[1])
-- The ban's expiry alone first: HGET costs 3k instructions where the
-- HMGET of every field costs 11k, and most clients are not banned.
local exp = redis.call('HGET', KEYS[1], 'expires')
if exp and tonumber(exp) > now then
  local ban = redis.call('HMGET', KEYS[1], 'reason', 'score', 'created', 'expires', 'offence')
  if ban[4] and tonumber(ban[4]) > now then
    return {1, ban[1] or '', tonumber(ban[2]) or 0, tonumber(ban[3]) or 0, tonumber(ban[4]), tonumber(ban[5]) or 0}
  end
end
local STATE, EPS = 2, true
` + stateLua + `
-- The key keeps its TTL when it has one and the last write was in this
-- period (stateExpiry).
local keep = raw ~= '' and now - now % period == s[3] - s[3] % period
local ne, nt = s[1], s[2]
s[3] = now
if s[REQ] < 65535 then s[REQ] = s[REQ] + 1 end
-- Requests: advance the ring to bucket ri, count, sum the window.
local ri = (now - now % rw) / rw
local base = s[RB]
if ri > base then
  local k = ri - base
  if k > N then k = N end
  for i = 1, k do s[RC + (base + i) % N] = 0 end
  s[RB], base = ri, ri
end
if ri > base - N then
  local i = RC + ri % N
  if s[i] < 65535 then s[i] = s[i] + 1 end
end
local rate = 0
for i = base - N + 1, ri do rate = rate + s[RC + i % N] end
-- Responses and errors are only read here: they stay packed unless some
-- are in the window.
local ei = (now - now % ew) / ew
local eb = s[EB]
local resp, errs = 0, 0
if ei - eb < N and s[RS] ~= ZERO then
  local r = {struct.unpack(RINGS, s[RS])}
  local lo, hi = ei - N + 1, ei
  if eb > ei then lo = eb - N + 1 else hi = eb end
  for i = lo, hi do
    local m = 1 + i % N
    resp, errs = resp + r[m], errs + r[m + N]
  end
end

-- Endpoints (s[EP..], pairs): distinct count and burst after idle.
local EP = HN + 1
local prev
for i = EP, EP + 2 * ne - 2, 2 do
  if s[i] == ep then
    prev = s[i + 1]
    s[i + 1] = now
    break
  end
end
if not prev then
  if ne >= maxep then
    local o
    for i = EP, EP + 2 * ne - 2, 2 do
      if not o or s[i + 1] < s[o + 1] then o = i end
    end
    s[o], s[o + 1] = ep, now
  else
    s[EP + 2 * ne], s[EP + 2 * ne + 1] = ep, now
    ne = ne + 1
    s[1] = ne
    fmt = string.sub(FMTS, 1, HL + 4 * ne)
  end
end
local distinct = 0
for i = EP + 1, EP + 2 * ne - 1, 2 do
  if s[i] > now - dms then distinct = distinct + 1 end
end
local burst = 0
if prev and now - prev >= idle then
  s[BU], s[BU + 1], s[BU + 2] = ep, now, 1
  burst = 1
elseif s[BU + 2] > 0 and now - s[BU + 1] >= bms then
  s[BU], s[BU + 1], s[BU + 2] = 0, 0, 0
elseif s[BU + 2] > 0 and s[BU] == ep then
  if s[BU + 2] < 65535 then s[BU + 2] = s[BU + 2] + 1 end
  burst = s[BU + 2]
end

-- Templates: unpacked only for a request with an id; the others copy
-- them as they are.
local run = 0
local tail = ''
if hasid == 1 then
  local t = {struct.unpack(string.rep('<I4I4dd', nt), raw, pos)}
  t[4 * nt + 1] = nil
  for i = 1, 4 * nt - 3, 4 do
    if t[i] == tpl then
      if id == t[i + 2] + 1 then t[i + 1] = t[i + 1] + 1
      elseif id ~= t[i + 2] then t[i + 1] = 1 end
      t[i + 2], t[i + 3] = id, now
      run = t[i + 1]
      break
    end
  end
  if run == 0 then
    run = 1
    local o
    if nt >= maxtpl then
      for i = 1, 4 * nt - 3, 4 do
        if not o or t[i + 3] < t[o + 3] then o = i end
      end
    else
      o = 4 * nt + 1
      nt = nt + 1
      s[2] = nt
    end
    t[o], t[o + 1], t[o + 2], t[o + 3] = tpl, 1, id, now
  end
  tail = struct.pack(string.rep('<I4I4dd', nt), unpack(t))
elseif nt > 0 then
  tail = string.sub(raw, pos)
end

local v = struct.pack(fmt, unpack(s)) .. tail
if keep then
  redis.call('SET', KEYS[2], v, 'KEEPTTL')
else
  redis.call('SET', KEYS[2], v, 'PX', pxs)
end
return {struct.pack('` + checkReplyFormat + `', s[REQ], rate, resp, errs, distinct, run, burst)}
`

// observeScript: KEYS state. ARGV[1] packed as observeArgFormat: now,
// error bucket width, state TTL (ms), is error (1/0) — one struct.unpack,
// not three tonumber — and ARGV[2] the key's TTL (stateExpiry) for SET's
// PX, a string; the memory store's observeResponse. A client this replica never checked is tracked too, so
// its next request sees its error rate. The endpoints and templates are
// copied as they are, and the key keeps its TTL unless the state is fresh:
// the TTL outlasts the last seen time, which only Checks set.
const observeArgFormat = "<dddB"

var observeScript = store.NewScript(`
local now, ew, ttl, iserr = struct.unpack('` + observeArgFormat + `', ARGV[1])
local STATE, EPS = 1, false
` + stateLua + `
local keep = raw ~= ''
local ei = (now - now % ew) / ew
local r = {struct.unpack(RINGS, s[RS])}
r[2 * N + 1] = nil
local base = s[EB]
if ei > base then
  local k = ei - base
  if k > N then k = N end
  for i = 1, k do
    local m = 1 + (base + i) % N
    r[m], r[m + N] = 0, 0
  end
  s[EB], base = ei, ei
end
if ei > base - N then
  local m = 1 + ei % N
  if r[m] < 65535 then r[m] = r[m] + 1 end
  if iserr == 1 and r[m + N] < 65535 then r[m + N] = r[m + N] + 1 end
end
s[RS] = struct.pack(RINGS, unpack(r))
local v = struct.pack(HEAD, unpack(s)) .. string.sub(raw, pos)
if keep then
  redis.call('SET', KEYS[1], v, 'KEEPTTL')
else
  redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
end
return 1
`)

// banScript: KEYS ban, off. ARGV now, reason, score, ttl, escalate (1/0),
// factor, max ttl, offence memory. Reply {reason, score, created, expires,
// offence}.
var banScript = store.NewScript(`
local now = tonumber(ARGV[1])
local esc = ARGV[5] == '1'
if esc then
  local cur = redis.call('HMGET', KEYS[1], 'reason', 'score', 'created', 'expires', 'offence')
  if cur[4] and tonumber(cur[4]) > now then
    return {cur[1] or '', tonumber(cur[2]) or 0, tonumber(cur[3]) or 0, tonumber(cur[4]), tonumber(cur[5]) or 0}
  end
end
local ttl = tonumber(ARGV[4])
local off = 0
if esc then
  -- Offences are forgotten by the caller's clock (exp), like the ban.
  local o = redis.call('HMGET', KEYS[2], 'n', 'exp')
  off = 1
  if o[2] and tonumber(o[2]) > now then off = (tonumber(o[1]) or 0) + 1 end
  redis.call('HSET', KEYS[2], 'n', off, 'exp', now + tonumber(ARGV[8]))
  redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[8]), 1))
  local factor, maxttl = tonumber(ARGV[6]), tonumber(ARGV[7])
  for i = 2, off do
    if ttl >= maxttl then break end
    ttl = ttl * factor
  end
  if ttl > maxttl then ttl = maxttl end
end
local expires = now + ttl
redis.call('HSET', KEYS[1], 'reason', ARGV[2], 'score', ARGV[3], 'created', now, 'expires', expires, 'offence', off)
redis.call('PEXPIRE', KEYS[1], ttl)
return {ARGV[2], tonumber(ARGV[3]), now, expires, off}
`)

// unbanScript: KEYS ban, off, state. ARGV now. Reply 1 when a ban was active.
var unbanScript = store.NewScript(`
local exp = redis.call('HGET', KEYS[1], 'expires')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if exp and tonumber(exp) > tonumber(ARGV[1]) then return 1 end
return 0
`)

func bucketWidth(w time.Duration) int64 {
	width := w.Milliseconds() / scoring.WindowBuckets
	if width < 1 {
		width = 1
	}
	return width
}

// Check implements scoring.State.
func (r *Redis) Check(ctx context.Context, obs scoring.Observation) (scoring.ClientState, error) {
	if ban, ok := r.manualBan(ctx, obs.ClientKey, obs.Now); ok {
		return scoring.ClientState{Ban: &ban}, nil
	}
	if ban, ok := r.bans.Get(obs.ClientKey, obs.Now); ok {
		return scoring.ClientState{Ban: &ban}, nil
	}
	if r.async == nil {
		return r.checkRedis(ctx, obs)
	}
	st, ok, local, err := r.checkAsync(ctx, obs)
	if ok {
		return st, err
	}
	// No usable view of this client: wait for Redis, and keep the answer
	// as the client's view for the Checks after it. The local windows
	// record the request only when Redis did (not for a ban), once.
	seq := r.async.seq.Add(1)
	r.async.byRedis.Inc()
	if st, err = r.checkRedis(ctx, obs); err != nil || st.Ban != nil {
		return st, err
	}
	if local == nil {
		cur, err := r.async.local.Check(ctx, obs)
		if err != nil {
			return scoring.ClientState{}, fmt.Errorf("store redis view: %w", err)
		}
		local = &cur
	}
	r.async.answered(obs.ClientKey, view{seq: seq, at: time.Now().UnixNano(), global: st, localAt: *local,
		endpoint: obs.Endpoint, template: obs.Template})
	return st, nil
}

// checkRedis runs the check script for obs and waits for its answer.
func (r *Redis) checkRedis(ctx context.Context, obs scoring.Observation) (scoring.ClientState, error) {
	keys := r.checkKeys(obs.ClientKey)
	args := checkArgs(obs)
	res, err := r.checkScript(obs.Windows).Run(ctx, r.scripts, keys[:], args[:]...).Slice()
	if err != nil {
		return scoring.ClientState{}, fmt.Errorf("store redis check: %w", err)
	}
	st, err := parseCheck(obs.ClientKey, res, nil)
	if err != nil {
		return scoring.ClientState{}, err
	}
	if st.Ban != nil {
		r.bans.Put(obs.ClientKey, *st.Ban, obs.Now, st.Ban.Expires)
	}
	return st, nil
}

// checkArgs are the check script's arguments for obs: one string, packed
// as checkArgFormat (little-endian), which the script reads with one
// struct.unpack instead of five tonumber (7k instructions fewer per Check,
// callgrind on redis-server). The id goes as a double, what tonumber made
// of its decimal form (both round to nearest).
func checkArgs(obs scoring.Observation) [1]any {
	var b [25]byte
	binary.LittleEndian.PutUint64(b[0:], math.Float64bits(float64(obs.Now.UnixMilli())))
	binary.LittleEndian.PutUint32(b[8:], fold32(obs.Endpoint))
	binary.LittleEndian.PutUint32(b[12:], fold32(obs.Template))
	binary.LittleEndian.PutUint64(b[16:], math.Float64bits(float64(obs.ID)))
	if obs.HasID {
		b[24] = 1
	}
	return [...]any{string(b[:])}
}

// parseCheck decodes the check script's reply (or err, the call's error).
func parseCheck(client string, res []any, err error) (scoring.ClientState, error) {
	if err != nil {
		return scoring.ClientState{}, fmt.Errorf("store redis check: %w", err)
	}
	if len(res) == 1 {
		p, ok := res[0].(string)
		if !ok || len(p) != 7*4 {
			return scoring.ClientState{}, fmt.Errorf("store redis check: reply is %T of %d bytes, want 28 bytes", res[0], len(p))
		}
		var v [7]int
		for i := range v {
			j := 4 * i
			v[i] = int(uint32(p[j]) | uint32(p[j+1])<<8 | uint32(p[j+2])<<16 | uint32(p[j+3])<<24)
		}
		return scoring.ClientState{
			Requests: int64(v[0]), RecentRequests: v[1], Responses: v[2], Errors: v[3],
			DistinctEndpoints: v[4], SequentialRun: v[5], IdleBurst: v[6],
		}, nil
	}
	flag, err := replyInt(res, 0)
	if err != nil {
		return scoring.ClientState{}, err
	}
	if flag != 1 {
		return scoring.ClientState{}, fmt.Errorf("store redis check: reply flag %d, want 1 (banned)", flag)
	}
	ban, err := parseBan(client, res[1:])
	if err != nil {
		return scoring.ClientState{}, err
	}
	return scoring.ClientState{Ban: &ban}, nil
}

// checkKeys builds the ban and state keys of client in one string:
// sl:ban:{client} and sl:bh:{client}:v2.
func (r *Redis) checkKeys(client string) [2]string {
	tag := store.HashTag(client)
	var b strings.Builder
	b.Grow(2*len(r.prefix) + 2*len(tag) + len("ban:bh::v2"))
	b.WriteString(r.prefix)
	b.WriteString("ban:")
	b.WriteString(tag)
	n := b.Len()
	b.WriteString(r.prefix)
	b.WriteString("bh:")
	b.WriteString(tag)
	b.WriteString(":v2")
	all := b.String()
	return [2]string{all[:n], all[n:]}
}

// windowScript is the check script of the windows last seen.
type windowScript struct {
	w      scoring.Windows
	script *store.Script
}

func (r *Redis) checkScript(w scoring.Windows) *store.Script {
	if a := r.wscript.Load(); a != nil && a.w == w {
		return a.script
	}
	a := &windowScript{w: w, script: checkScriptFor(w)}
	r.wscript.Store(a)
	return a.script
}

func replyInt(res []any, i int) (int64, error) {
	if i >= len(res) {
		return 0, fmt.Errorf("store redis: reply has %d elements, want more than %d", len(res), i)
	}
	v, ok := res[i].(int64)
	if !ok {
		return 0, fmt.Errorf("store redis: reply element %d is %T, want integer", i, res[i])
	}
	return v, nil
}

// parseBan decodes {reason, score, created, expires, offence}.
func parseBan(client string, res []any) (scoring.Ban, error) {
	if len(res) != 5 {
		return scoring.Ban{}, fmt.Errorf("store redis: ban reply has %d elements, want 5", len(res))
	}
	reason, ok := res[0].(string)
	if !ok {
		return scoring.Ban{}, fmt.Errorf("store redis: ban reason is %T, want string", res[0])
	}
	var v [4]int64
	for i := range v {
		var err error
		if v[i], err = replyInt(res, i+1); err != nil {
			return scoring.Ban{}, err
		}
	}
	return scoring.Ban{ClientKey: client, Reason: reason, Score: int(v[0]),
		Created: time.UnixMilli(v[1]), Expires: time.UnixMilli(v[2]), Offence: int(v[3])}, nil
}

// ObserveResponses implements scoring.State: one pipeline of script calls.
func (r *Redis) ObserveResponses(ctx context.Context, rs []scoring.ObservedResponse, w scoring.Windows) error {
	if len(rs) == 0 {
		return nil
	}
	if r.async != nil {
		// The view adds this replica's change since Redis's last answer:
		// its own windows count the responses too.
		_ = r.async.local.ObserveResponses(ctx, rs, w)
	}
	width, ttl := bucketWidth(w.Errors), w.StateTTL.Milliseconds()
	px, _ := stateExpiry(w.StateTTL)
	// A server that lost its scripts (restart, SCRIPT FLUSH) gets the
	// script loaded and the batch sent again.
	err := store.RunPipelined(ctx, r.c, func(p redis.Pipeliner) error {
		for _, o := range rs {
			var arg [25]byte
			binary.LittleEndian.PutUint64(arg[0:], math.Float64bits(float64(o.At.UnixMilli())))
			binary.LittleEndian.PutUint64(arg[8:], math.Float64bits(float64(width)))
			binary.LittleEndian.PutUint64(arg[16:], math.Float64bits(float64(ttl)))
			if o.IsError {
				arg[24] = 1
			}
			keys := []string{r.bhKey(o.ClientKey, "v2")}
			observeScript.EvalSha(ctx, p, keys, string(arg[:]), px)
		}
		return nil
	}, observeScript)
	if err != nil {
		return fmt.Errorf("store redis observe %d responses: %w", len(rs), err)
	}
	return nil
}

// Ban implements scoring.State.
func (r *Redis) Ban(ctx context.Context, clientKey string, req scoring.BanRequest) (scoring.Ban, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if req.Manual {
		now := req.Now.UnixMilli()
		ban := scoring.Ban{ClientKey: clientKey, Reason: req.Reason, Score: req.Score, Manual: true,
			Created: time.UnixMilli(now), Expires: time.UnixMilli(now + req.TTL.Milliseconds())}
		if err := r.c.HSet(ctx, r.manualKey(), clientKey, encodeManual(ban)).Err(); err != nil {
			return scoring.Ban{}, fmt.Errorf("store redis manual ban: %w", err)
		}
		r.mu.Lock()
		r.gen++
		r.manual.put(clientKey, ban)
		r.mu.Unlock()
		return ban, nil
	}
	esc := "0"
	if req.Escalate {
		esc = "1"
	}
	keys := []string{r.banKey(clientKey), r.bhKey(clientKey, "off")}
	res, err := banScript.Run(ctx, r.c, keys, req.Now.UnixMilli(), req.Reason, req.Score,
		req.TTL.Milliseconds(), esc, req.Factor, req.MaxTTL.Milliseconds(), req.OffenceMemory.Milliseconds()).Slice()
	if err != nil {
		return scoring.Ban{}, fmt.Errorf("store redis ban: %w", err)
	}
	ban, err := parseBan(clientKey, res)
	if err != nil {
		return scoring.Ban{}, err
	}
	r.bans.Put(clientKey, ban, req.Now, ban.Expires)
	if r.async != nil {
		// Its next Check waits for Redis, which answers with the ban
		// (the ban cache may be off).
		r.async.drop(clientKey)
	}
	return ban, nil
}

// Unban implements scoring.State.
func (r *Redis) Unban(ctx context.Context, clientKey string, now time.Time) (bool, error) {
	raw, err := r.c.HGet(ctx, r.manualKey(), clientKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("store redis unban: %w", err)
	}
	manual := false
	if err == nil {
		if err := r.c.HDel(ctx, r.manualKey(), clientKey).Err(); err != nil {
			return false, fmt.Errorf("store redis unban: %w", err)
		}
		b, ok := decodeManual(clientKey, raw)
		manual = ok && b.Expires.After(now)
	}
	r.mu.Lock()
	r.gen++
	r.manual.remove(clientKey, now)
	r.mu.Unlock()
	keys := []string{r.banKey(clientKey), r.bhKey(clientKey, "off"), r.bhKey(clientKey, "v2")}
	v, err := unbanScript.Run(ctx, r.c, keys, now.UnixMilli()).Int64()
	// After the script: a Check racing the unban may have cached the ban
	// again from a reply read before it.
	r.bans.Delete(clientKey)
	if r.async != nil {
		r.async.forget(ctx, clientKey, now)
	}
	if err != nil {
		return false, fmt.Errorf("store redis unban: %w", err)
	}
	return v == 1 || manual, nil
}

// Bans implements scoring.State. It scans every master of a cluster.
func (r *Redis) Bans(ctx context.Context, now time.Time, limit int) ([]scoring.Ban, error) {
	r.mu.Lock()
	gen := r.gen
	r.loaded = time.Now().UnixNano()
	r.mu.Unlock()
	if err := r.loadManual(ctx, gen, now); err != nil {
		return nil, err
	}
	out := r.manual.list(now, limit)
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, r.prefix+"ban:*", 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return it.Err()
	}
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		var mu = make(chan struct{}, 1)
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu <- struct{}{}
			defer func() { <-mu }()
			return scan(ctx, c)
		})
	} else {
		err = scan(ctx, r.c)
	}
	if err != nil {
		return nil, fmt.Errorf("store redis list bans: %w", err)
	}
	ms := now.UnixMilli()
	for start := 0; start < len(keys) && len(out) < limit; start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		cmds := make([]*redis.MapStringStringCmd, len(batch))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.HGetAll(ctx, k)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store redis list bans: %w", err)
		}
		for i, cmd := range cmds {
			f := cmd.Val()
			exp, err := strconv.ParseInt(f["expires"], 10, 64)
			if err != nil || exp <= ms {
				continue // expired or vanished since the scan
			}
			score, _ := strconv.Atoi(f["score"])
			created, _ := strconv.ParseInt(f["created"], 10, 64)
			off, _ := strconv.Atoi(f["offence"])
			out = append(out, scoring.Ban{
				ClientKey: r.clientOf(batch[i]), Reason: f["reason"], Score: score,
				Created: time.UnixMilli(created), Expires: time.UnixMilli(exp), Offence: off,
			})
			if len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}

// clientOf extracts the client from sl:ban:{client}.
func (r *Redis) clientOf(key string) string {
	k := strings.TrimPrefix(key, r.prefix+"ban:")
	return store.UnescapeKey(strings.TrimSuffix(strings.TrimPrefix(k, "{"), "}"))
}

var _ scoring.State = (*Redis)(nil)
