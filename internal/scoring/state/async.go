package state

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/smartlayer/smartlayer/internal/prom"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/store"
)

// Asynchronous Checks (store.redis.async): a Check of a client this
// replica heard about from Redis within AsyncMaxAge is answered from the
// replica's own view, and its observation is sent to Redis behind it.
//
// Why: with a round trip per Check, the Redis store ran at 0.51 of a no-op
// server's calls/s (make bench, c=64, 2 cores) where the memory store ran at
// 1.07 — authz spent ~50 µs more CPU per Check on the round trip (the
// batcher's goroutines, syscalls, parked Checks) and the cores stood ~13 %
// idle while Checks waited. With views the same bench measured 0.83 (and
// async: false 0.61, after the cheaper script and decision records).
// Redis's own work per Check is unchanged: every observation still runs the
// check script, in order, in pipelines of up to asyncBatch that the Check
// does not wait for.
//
// The view is Redis's answer for the client's last observation that came
// back (global, which includes every replica's requests up to it) plus what
// this replica alone saw since: it keeps the client's windows in a memory
// store of its own (local) and adds local's change since that observation
// (localAt) to global. With one replica global equals localAt (the same
// arithmetic on the same observations), so the view is exactly what a
// synchronous Check would have answered; with several, a Check does not see
// other replicas' requests of the last round trip (a few ms under load) —
// they count from the next answer on.
//
// What still waits for Redis: the first Check of a client this replica has
// no fresh answer for (new, quiet for AsyncMaxAge, or only answered with
// errors since), so a ban another replica set is honoured on first contact;
// a client whose windows on this replica started afresh since its view
// (evicted, or past the state TTL); and every Check while the send queue
// is full (asyncQueueMax). A ban found
// in an answer goes to the ban cache; the Check it answered was already
// allowed (one request of the lag). Redis down: answers stop, views age out
// within AsyncMaxAge, and Checks wait for Redis again — the fail mode.
type asyncView struct {
	maxAge time.Duration
	local  *Memory
	seed   maphash.Seed
	views  *store.LRU[string, view]
	seq    atomic.Uint64

	mu      sync.Mutex
	queue   []*asyncRecord
	running bool
	idle    *sync.Cond // signalled when the sender stops
	pool    sync.Pool  // *asyncRecord

	answers    *prometheus.CounterVec // by path: view, redis
	sendErrors prometheus.Counter
	// byView and byRedis are answers' two children, resolved once: a
	// label lookup per Check is work the hot path need not do.
	byView, byRedis prometheus.Counter
}

// view is what Redis answered for one observation of a client, and this
// replica's windows right after the same observation.
type view struct {
	seq      uint64
	at       int64 // when the answer arrived (Unix ns, real time)
	global   scoring.ClientState
	localAt  scoring.ClientState
	endpoint uint64
	template uint64
}

// asyncRecord is one observation on its way to Redis.
type asyncRecord struct {
	seq   uint64
	obs   scoring.Observation
	local scoring.ClientState
	keys  [2]string
}

const (
	// asyncBatch bounds the script calls of one pipeline: enough to keep
	// one round trip ahead of ~10k Checks/s without holding a large reply.
	asyncBatch = 64
	// asyncQueueMax bounds observations waiting to be sent; past it Checks
	// wait for Redis (the queue never drops one).
	asyncQueueMax = 1024
)

func newAsyncView(maxAge time.Duration, maxClients int, reg prometheus.Registerer) (*asyncView, error) {
	// Shards of at least ~1,000 clients: a shard evicts its least recently
	// seen client when full, whatever the others hold.
	shards := max(1, min(64, maxClients/1024))
	local, err := NewMemory(MemoryOptions{MaxClients: maxClients, MaxBans: 1, Shards: shards})
	if err != nil {
		return nil, fmt.Errorf("store redis async view: %w", err)
	}
	a := &asyncView{maxAge: maxAge, local: local, seed: maphash.MakeSeed(),
		views: store.NewLRU[string, view](maxClients, shards, 1),
		answers: prom.CounterVec("smartlayer_store_redis_async_checks_total",
			"Behaviour Checks on the Redis store by how they were answered (store.redis.async): view (this replica's view, the observation sent to Redis behind it) or redis (waited for Redis: a client without a fresh answer, or a full send queue).",
			"path"),
		sendErrors: prom.Counter("smartlayer_store_redis_async_send_errors_total",
			"Observations sent to Redis behind an asynchronous Check that Redis did not take (error or timeout); the client's next Checks wait for Redis once its view is older than store.redis.async_max_age."),
	}
	a.byView, a.byRedis = a.answers.WithLabelValues("view"), a.answers.WithLabelValues("redis")
	a.idle = sync.NewCond(&a.mu)
	a.pool.New = func() any { return new(asyncRecord) }
	if reg != nil {
		if err := prom.Register(reg, a.answers, a.sendErrors); err != nil {
			return nil, fmt.Errorf("store redis async metrics: %w", err)
		}
	}
	return a, nil
}

// fresh returns the client's view when Redis answered for it within maxAge.
func (a *asyncView) fresh(client string, wall int64) (view, bool) {
	s := a.views.Shard(maphash.String(a.seed, client))
	s.Lock()
	defer s.Unlock()
	e := s.Get(client)
	if e == nil || wall-e.Val.at > int64(a.maxAge) {
		return view{}, false
	}
	return e.Val, true
}

// answered installs Redis's answer for observation seq unless a later one
// is in.
func (a *asyncView) answered(client string, v view) {
	s := a.views.Shard(maphash.String(a.seed, client))
	s.Lock()
	defer s.Unlock()
	e := s.Get(client)
	if e == nil {
		e, _ = s.Insert(strings.Clone(client), 0)
	} else if e.Val.seq > v.seq {
		return
	}
	s.Touch(e, 0)
	e.Val = v
}

// drop ages the client's view out: its next Check waits for Redis, and
// answers to observations sent before now are not installed.
func (a *asyncView) drop(client string) {
	a.answered(client, view{seq: a.seq.Add(1)})
}

// forget drops the client's view and local windows (an unban).
func (a *asyncView) forget(ctx context.Context, client string, now time.Time) {
	a.drop(client)
	_, _ = a.local.Unban(ctx, client, now)
}

// combine is the view of a client: Redis's answer for an earlier
// observation plus what this replica saw since. Counts add this replica's
// change; distinct endpoints take the lowest count they could be; the run
// and burst of the current request continue Redis's only when they
// continue the same template and endpoint.
func combine(v view, obs scoring.Observation, cur scoring.ClientState) scoring.ClientState {
	add := func(g, at, now int) int { return max(g+now-at, 0) }
	out := cur
	out.Requests = max(v.global.Requests+cur.Requests-v.localAt.Requests, 0)
	out.RecentRequests = add(v.global.RecentRequests, v.localAt.RecentRequests, cur.RecentRequests)
	out.Responses = add(v.global.Responses, v.localAt.Responses, cur.Responses)
	out.Errors = add(v.global.Errors, v.localAt.Errors, cur.Errors)
	// An endpoint new to this replica may be one another replica's
	// requests already counted: of the counts it could be, the view takes
	// the lowest (a scan spread over replicas is seen a round trip late,
	// a client is never counted an endpoint it did not visit).
	if d := cur.DistinctEndpoints - v.localAt.DistinctEndpoints; d > 0 {
		out.DistinctEndpoints = max(v.global.DistinctEndpoints, cur.DistinctEndpoints)
	} else {
		out.DistinctEndpoints = max(v.global.DistinctEndpoints+d, 0)
	}
	if obs.HasID && obs.Template == v.template && cur.SequentialRun > v.localAt.SequentialRun {
		out.SequentialRun = v.global.SequentialRun + cur.SequentialRun - v.localAt.SequentialRun
	}
	if obs.Endpoint == v.endpoint && cur.IdleBurst > v.localAt.IdleBurst && v.localAt.IdleBurst > 0 {
		out.IdleBurst = v.global.IdleBurst + cur.IdleBurst - v.localAt.IdleBurst
	}
	return out
}

// full reports whether the send queue is at asyncQueueMax.
func (a *asyncView) full() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue) >= asyncQueueMax
}

// enqueue queues rec for the sender (concurrent Checks that all found room
// may take the queue a little past asyncQueueMax).
func (a *asyncView) enqueue(r *Redis, rec *asyncRecord) {
	a.mu.Lock()
	a.queue = append(a.queue, rec)
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go a.send(r)
	}
}

// send sends the queue in pipelines, one at a time so a replica's
// observations reach Redis in the order they were made, until it is empty.
func (a *asyncView) send(r *Redis) {
	var batch []*asyncRecord
	for {
		a.mu.Lock()
		n := min(len(a.queue), asyncBatch)
		if n == 0 {
			a.running = false
			a.idle.Broadcast()
			a.mu.Unlock()
			return
		}
		batch = store.TakeFront(&a.queue, batch, n)
		a.mu.Unlock()
		a.sendBatch(r, batch)
		for _, rec := range batch {
			*rec = asyncRecord{}
			a.pool.Put(rec)
		}
		clear(batch)
	}
}

func (a *asyncView) sendBatch(r *Redis, batch []*asyncRecord) {
	// A batch gets the view's age to answer in: past it the views it would
	// refresh have aged out and their clients wait for Redis anyway.
	ctx, cancel := context.WithTimeout(context.Background(), a.maxAge)
	defer cancel()
	// Each record's script once: the pipeline sends it, and RunPipelined
	// needs the distinct ones (one unless the windows were reloaded
	// meanwhile) to answer NOSCRIPT with EVAL.
	scripts := make([]*store.Script, len(batch))
	var distinct []*store.Script
	for i, rec := range batch {
		scripts[i] = r.checkScript(rec.obs.Windows)
		if !slices.Contains(distinct, scripts[i]) {
			distinct = append(distinct, scripts[i])
		}
	}
	cmds := make([]*redis.Cmd, len(batch))
	_ = store.RunPipelined(ctx, r.c, func(p redis.Pipeliner) error {
		for i, rec := range batch {
			args := checkArgs(rec.obs)
			cmds[i] = scripts[i].EvalSha(ctx, p, rec.keys[:], args[:]...)
		}
		return nil
	}, distinct...)
	wall := time.Now().UnixNano()
	for i, rec := range batch {
		res, err := cmds[i].Slice()
		st, err := parseCheck(rec.obs.ClientKey, res, err)
		if err != nil {
			a.sendErrors.Inc()
			continue
		}
		if st.Ban != nil {
			// Banned by another replica: the next Check waits for Redis
			// (or the ban cache answers it).
			r.bans.Put(rec.obs.ClientKey, *st.Ban, rec.obs.Now, st.Ban.Expires)
			a.drop(rec.obs.ClientKey)
			continue
		}
		a.answered(rec.obs.ClientKey, view{seq: rec.seq, at: wall, global: st, localAt: rec.local,
			endpoint: rec.obs.Endpoint, template: rec.obs.Template})
	}
}

// drain waits until every queued observation was sent or ctx is done.
func (a *asyncView) drain(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		a.mu.Lock()
		a.idle.Broadcast()
		a.mu.Unlock()
	})
	defer stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.running && ctx.Err() == nil {
		a.idle.Wait()
	}
	if a.running {
		return fmt.Errorf("store redis: %d observations not sent: %w", len(a.queue), ctx.Err())
	}
	return nil
}

// checkAsync answers obs from the client's view and queues it for Redis.
// ok is false when the Check must wait for Redis instead; local is then
// this replica's windows with obs in them, when it recorded obs already.
func (r *Redis) checkAsync(ctx context.Context, obs scoring.Observation) (st scoring.ClientState, ok bool, local *scoring.ClientState, err error) {
	a := r.async
	v, ok := a.fresh(obs.ClientKey, time.Now().UnixNano())
	if !ok || a.full() {
		return scoring.ClientState{}, false, nil, nil
	}
	cur, err := a.local.Check(ctx, obs)
	if err != nil {
		return scoring.ClientState{}, true, nil, fmt.Errorf("store redis view: %w", err)
	}
	if cur.Requests <= v.localAt.Requests && v.localAt.Requests < 65535 {
		// This replica's windows started afresh since the view (the
		// client was evicted or went quiet past the state TTL): its change
		// since is unknown, so this Check waits for Redis.
		return scoring.ClientState{}, false, &cur, nil
	}
	rec := a.pool.Get().(*asyncRecord)
	// The observation outlives the Check: its client key may sit in the
	// request's arena.
	rec.seq, rec.obs, rec.local = a.seq.Add(1), obs, cur
	rec.obs.ClientKey = strings.Clone(obs.ClientKey)
	rec.keys = r.checkKeys(rec.obs.ClientKey)
	a.enqueue(r, rec)
	a.byView.Inc()
	return combine(v, obs, cur), true, nil, nil
}
