package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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
}

// DefaultRedisOptions returns the defaults.
func DefaultRedisOptions() RedisOptions {
	return RedisOptions{Prefix: "sl:", ManualRefresh: time.Second}
}

// Redis is the State shared by replicas. Keys carry the client in a hash
// tag, so each script touches one cluster slot:
//
//	sl:ban:{ip}       hash  reason, score, created, expires, offence (ms)
//	sl:bh:{ip}:w      hash  n (requests), r<i> (rate buckets), t<i>/e<i>
//	                        (response/error buckets), s<tpl> (sequences),
//	                        b (burst after idle)
//	sl:bh:{ip}:ep     zset  endpoint hash → last seen (ms)
//	sl:bh:{ip}:off    hash  n (offences), exp (when they are forgotten, ms)
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
	// loaded is when the snapshot was last read (Unix ns, real time);
	// gen counts this replica's writes, so a read that raced one is not
	// installed.
	mu     sync.Mutex
	loaded int64
	gen    uint64
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
	return &Redis{c: c, scripts: scripts, bans: store.NewLocalCache[scoring.Ban](opts.LocalCacheTTL, opts.LocalCacheSize),
		prefix: opts.Prefix, refresh: opts.ManualRefresh, manual: newManualBans()}, nil
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
		_ = r.loadManual(ctx, gen, now)
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

// checkScript: KEYS ban, w, ep. ARGV now, rate bucket width, error bucket
// width, N, distinct ms, idle ms, burst ms, state ttl ms, endpoint, template
// ("" without ID), id, max endpoints, max templates.
// Reply {1, reason, score, created, expires, offence} for a banned client or
// {0, requests, recent, responses, errors, distinct, run, burst}.
var checkScript = store.NewScript(`
local now = tonumber(ARGV[1])
local ban = redis.call('HMGET', KEYS[1], 'reason', 'score', 'created', 'expires', 'offence')
if ban[4] and tonumber(ban[4]) > now then
  return {1, ban[1] or '', tonumber(ban[2]) or 0, tonumber(ban[3]) or 0, tonumber(ban[4]), tonumber(ban[5]) or 0}
end
local w, ep = KEYS[2], KEYS[3]
local rw, ew, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local dms, idle, bms, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local epid, tpl, id = ARGV[9], ARGV[10], ARGV[11]
local maxep, maxtpl = tonumber(ARGV[12]), tonumber(ARGV[13])

local h = {}
local flat = redis.call('HGETALL', w)
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
-- State of a client silent for the state TTL starts afresh, as in memory.
if h['l'] and now - tonumber(h['l']) >= ttl then
  redis.call('DEL', w, ep)
  h = {}
end

local ri = math.floor(now / rw)
local ei = math.floor(now / ew)
local rate, resp, errs = 1, 0, 0
local del = {}
local ntpl, oldtpl, oldseen = 0, nil, nil
for f, v in pairs(h) do
  local k = string.sub(f, 1, 1)
  if k == 'r' then
    local i = tonumber(string.sub(f, 2))
    if i <= ri - n then del[#del + 1] = f elseif i <= ri then rate = rate + tonumber(v) end
  elseif k == 't' or k == 'e' then
    local i = tonumber(string.sub(f, 2))
    if i <= ei - n then del[#del + 1] = f elseif i <= ei then
      if k == 't' then resp = resp + tonumber(v) else errs = errs + tonumber(v) end
    end
  elseif k == 's' then
    ntpl = ntpl + 1
    local seen = tonumber(string.match(v, ':([-%d]+)$'))
    if f ~= 's' .. tpl and (oldseen == nil or seen < oldseen) then oldtpl, oldseen = f, seen end
  end
end
if #del > 0 then redis.call('HDEL', w, unpack(del)) end
local total = redis.call('HINCRBY', w, 'n', 1)
redis.call('HINCRBY', w, 'r' .. ri, 1)
redis.call('HSET', w, 'l', now)

local prev = redis.call('ZSCORE', ep, epid)
redis.call('ZADD', ep, now, epid)
local card = redis.call('ZCARD', ep)
if card > maxep then redis.call('ZREMRANGEBYRANK', ep, 0, card - maxep - 1) end
local distinct = redis.call('ZCOUNT', ep, '(' .. (now - dms), '+inf')

local burst = 0
local b = h['b']
if prev and now - tonumber(prev) >= idle then
  redis.call('HSET', w, 'b', epid .. ':' .. now .. ':1')
  burst = 1
elseif b then
  local bep, bstart, bcount = string.match(b, '^(.-):([-%d]+):(%d+)$')
  bstart, bcount = tonumber(bstart), tonumber(bcount)
  if now - bstart >= bms then
    redis.call('HDEL', w, 'b')
  elseif bep == epid then
    burst = bcount + 1
    redis.call('HSET', w, 'b', bep .. ':' .. bstart .. ':' .. burst)
  end
end

local run = 0
if tpl ~= '' then
  local idn = tonumber(id)
  local f = 's' .. tpl
  local cur = h[f]
  run = 1
  if cur then
    local lid, lrun = string.match(cur, '^([-%d]+):(%d+):')
    lid, lrun = tonumber(lid), tonumber(lrun)
    if idn == lid + 1 then run = lrun + 1 elseif idn == lid then run = lrun end
  elseif ntpl >= maxtpl and oldtpl then
    redis.call('HDEL', w, oldtpl)
  end
  redis.call('HSET', w, f, id .. ':' .. run .. ':' .. now)
end

redis.call('PEXPIRE', w, ttl)
redis.call('PEXPIRE', ep, ttl)
return {0, total, rate, resp, errs, distinct, run, burst}
`)

// observeScript: KEYS w. ARGV now, error bucket width, N, is error, ttl.
var observeScript = store.NewScript(`
local now, ew, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ei = math.floor(now / ew)
local w = KEYS[1]
local l = redis.call('HGET', KEYS[1], 'l')
if l and now - tonumber(l) >= tonumber(ARGV[5]) then
  redis.call('DEL', w, KEYS[2])
  l = nil
end
redis.call('HINCRBY', w, 't' .. ei, 1)
if ARGV[4] == '1' then redis.call('HINCRBY', w, 'e' .. ei, 1) end
if not l then redis.call('HSET', w, 'l', now) end
-- A client seen only through responses never runs the check script's
-- cleanup: drop stale buckets here once they pile up.
if redis.call('HLEN', w) > 64 then
  local flat = redis.call('HKEYS', w)
  local del = {}
  for _, f in ipairs(flat) do
    local k = string.sub(f, 1, 1)
    if (k == 't' or k == 'e') and tonumber(string.sub(f, 2)) <= ei - n then del[#del + 1] = f end
  end
  if #del > 0 then redis.call('HDEL', w, unpack(del)) end
end
redis.call('PEXPIRE', w, ARGV[5])
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

// unbanScript: KEYS ban, off, w, ep. ARGV now. Reply 1 when a ban was active.
var unbanScript = store.NewScript(`
local exp = redis.call('HGET', KEYS[1], 'expires')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
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

func hexHash(h uint64) string { return strconv.FormatUint(h, 16) }

// Check implements scoring.State.
func (r *Redis) Check(ctx context.Context, obs scoring.Observation) (scoring.ClientState, error) {
	if ban, ok := r.manualBan(ctx, obs.ClientKey, obs.Now); ok {
		return scoring.ClientState{Ban: &ban}, nil
	}
	if ban, ok := r.bans.Get(obs.ClientKey, obs.Now); ok {
		return scoring.ClientState{Ban: &ban}, nil
	}
	w := obs.Windows
	tpl, id := "", ""
	if obs.HasID {
		tpl, id = hexHash(obs.Template), strconv.FormatInt(obs.ID, 10)
	}
	keys := []string{r.banKey(obs.ClientKey), r.bhKey(obs.ClientKey, "w"), r.bhKey(obs.ClientKey, "ep")}
	res, err := checkScript.Run(ctx, r.scripts, keys,
		obs.Now.UnixMilli(), bucketWidth(w.Rate), bucketWidth(w.Errors), scoring.WindowBuckets,
		w.Distinct.Milliseconds(), w.Idle.Milliseconds(), w.Burst.Milliseconds(), w.StateTTL.Milliseconds(),
		hexHash(obs.Endpoint), tpl, id, w.MaxEndpoints, w.MaxTemplates,
	).Slice()
	if err != nil {
		return scoring.ClientState{}, fmt.Errorf("store redis check: %w", err)
	}
	flag, err := replyInt(res, 0)
	if err != nil {
		return scoring.ClientState{}, err
	}
	if flag == 1 {
		ban, err := parseBan(obs.ClientKey, res[1:])
		if err != nil {
			return scoring.ClientState{}, err
		}
		r.bans.Put(obs.ClientKey, ban, obs.Now, ban.Expires)
		return scoring.ClientState{Ban: &ban}, nil
	}
	if len(res) != 8 {
		return scoring.ClientState{}, fmt.Errorf("store redis check: reply has %d elements, want 8", len(res))
	}
	v := make([]int64, 7)
	for i := range v {
		if v[i], err = replyInt(res, i+1); err != nil {
			return scoring.ClientState{}, err
		}
	}
	return scoring.ClientState{
		Requests: v[0], RecentRequests: int(v[1]), Responses: int(v[2]), Errors: int(v[3]),
		DistinctEndpoints: int(v[4]), SequentialRun: int(v[5]), IdleBurst: int(v[6]),
	}, nil
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
	width, ttl := bucketWidth(w.Errors), w.StateTTL.Milliseconds()
	// A server that lost its scripts (restart, SCRIPT FLUSH) gets the
	// script loaded and the batch sent again.
	err := store.RunPipelined(ctx, r.c, func(p redis.Pipeliner) error {
		for _, o := range rs {
			e := "0"
			if o.IsError {
				e = "1"
			}
			keys := []string{r.bhKey(o.ClientKey, "w"), r.bhKey(o.ClientKey, "ep")}
			observeScript.EvalSha(ctx, p, keys, o.At.UnixMilli(), width, scoring.WindowBuckets, e, ttl)
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
	keys := []string{r.banKey(clientKey), r.bhKey(clientKey, "off"), r.bhKey(clientKey, "w"), r.bhKey(clientKey, "ep")}
	v, err := unbanScript.Run(ctx, r.c, keys, now.UnixMilli()).Int64()
	// After the script: a Check racing the unban may have cached the ban
	// again from a reply read before it.
	r.bans.Delete(clientKey)
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
