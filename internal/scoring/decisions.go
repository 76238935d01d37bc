package scoring

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartlayer/smartlayer/internal/prom"
)

// Decided is one request authz let through: its request id (Envoy's
// x-request-id) and the client key it was scored as.
type Decided struct {
	RequestID string
	Client    string
}

// DecisionStore keeps decided request ids for a bounded window; the memory
// and Redis implementations live in scoring/state (Redis shares the record
// between replicas, so any replica's access-log entry matches any
// replica's decision).
type DecisionStore interface {
	Remember(ctx context.Context, ds []Decided, ttl time.Duration) error
	// Clients returns, for each id, the client it was decided for as
	// Key spells it, or "" when the id is unknown (never decided here, or
	// expired).
	Clients(ctx context.Context, requestIDs []string) ([]string, error)
	Key(client string) string
}

// Decisions binds access-log feedback to decisions. The access-log port is
// reachable by whoever can reach it: without this, a forged entry (any
// client IP, status 500) bans anyone, shields an attacker's own IP, or
// dilutes its error ratio. A response counts only when authz decided a
// request with the entry's id for the entry's client; anything else is
// stored in ClickHouse but never scored, and counted.
//
// Recording is off the request path: Record queues, a goroutine writes
// batches. A full queue drops the record (counted); that request's
// response then counts as unmatched, which errs on the side of not
// punishing anyone.
type Decisions struct {
	store  DecisionStore
	ttl    time.Duration
	logger *slog.Logger
	queue  chan Decided
	sync   chan chan struct{} // asks the writer to write now
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	unmatched *prometheus.CounterVec
	dropped   prometheus.Counter
}

const (
	decisionBatch = 512
	decisionFlush = 5 * time.Millisecond
)

// NewDecisions starts the writer. ttl is how long a decision can be
// matched at least (behavior.feedback_window; the stores keep generations
// of it, so at most about twice as long); queueSize bounds records waiting to
// be written.
func NewDecisions(st DecisionStore, ttl time.Duration, queueSize int, logger *slog.Logger, reg prometheus.Registerer) *Decisions {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Decisions{
		store: st, ttl: ttl, logger: logger,
		queue: make(chan Decided, queueSize),
		sync:  make(chan chan struct{}),
		done:  make(chan struct{}),
		unmatched: prom.CounterVec("smartlayer_feedback_unmatched_total",
			"Access-log responses not fed to behaviour scoring because no decision of this deployment matches them, by reason (unknown_id, other_client, no_id, lookup_error).", "reason"),
		dropped: prom.Counter("smartlayer_feedback_records_dropped_total",
			"Decisions not recorded for feedback matching because the record queue was full."),
	}
	if reg != nil {
		reg.MustRegister(d.unmatched, d.dropped)
	}
	d.wg.Add(1)
	go d.write()
	return d
}

// Record queues a decided request; it never blocks.
func (d *Decisions) Record(requestID, client string) {
	if requestID == "" {
		return
	}
	select {
	case d.queue <- Decided{RequestID: requestID, Client: client}:
	default:
		d.dropped.Inc()
	}
}

func (d *Decisions) write() {
	defer d.wg.Done()
	batch := make([]Decided, 0, decisionBatch)
	timer := time.NewTimer(decisionFlush)
	defer timer.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := d.store.Remember(ctx, batch, d.ttl); err != nil {
			d.logger.Debug("recording decisions for feedback failed", "decisions", len(batch), "err", err)
		}
		cancel()
		batch = batch[:0]
	}
	add := func(r Decided) {
		batch = append(batch, r)
		if len(batch) == decisionBatch {
			flush()
		}
	}
	// drain writes everything queued now.
	drain := func() {
		for {
			select {
			case r := <-d.queue:
				add(r)
			default:
				flush()
				return
			}
		}
	}
	for {
		select {
		case r := <-d.queue:
			add(r)
		case <-timer.C:
			flush()
			timer.Reset(decisionFlush)
		case ack := <-d.sync:
			drain()
			close(ack)
		case <-d.done:
			drain()
			return
		}
	}
}

// writeNow makes the writer store what is queued, and waits for it (or
// ctx): an access-log entry can arrive before its decision was written.
func (d *Decisions) writeNow(ctx context.Context) {
	ack := make(chan struct{})
	select {
	case d.sync <- ack:
	case <-d.done:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-ack:
	case <-ctx.Done():
	}
}

// Close writes what is queued and stops the writer.
func (d *Decisions) Close() {
	d.once.Do(func() { close(d.done) })
	d.wg.Wait()
}

// match keeps the responses whose request id this deployment decided for
// the same client (the entry's IP in authz's canonical form); the rest are
// counted by reason.
func (d *Decisions) match(ctx context.Context, rs []UpstreamResponse) []UpstreamResponse {
	// Our own denials are not the upstream's answers: scoring leaves them
	// out anyway, and authz records only what it let through.
	kept := rs[:0]
	for _, r := range rs {
		if !r.OwnDenial {
			kept = append(kept, r)
		}
	}
	rs = kept
	ids := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.RequestID != "" {
			ids = append(ids, r.RequestID)
		}
	}
	clients, err := d.lookup(ctx, ids)
	if err != nil {
		d.unmatched.WithLabelValues("lookup_error").Add(float64(len(rs)))
		d.logger.Debug("feedback decision lookup failed", "responses", len(rs), "err", err)
		return nil
	}
	out := rs[:0]
	j := 0
	for _, r := range rs {
		if r.RequestID == "" {
			d.unmatched.WithLabelValues("no_id").Inc()
			continue
		}
		decided := clients[j]
		j++
		switch {
		case decided == "":
			d.unmatched.WithLabelValues("unknown_id").Inc()
		case decided != d.store.Key(canonicalClient(r.ClientIP)):
			d.unmatched.WithLabelValues("other_client").Inc()
		default:
			out = append(out, r)
		}
	}
	return out
}

// lookup returns the decided client of each id. Ids not found are looked
// up once more after the writer stored what it had queued: the entry may
// have overtaken its own decision.
func (d *Decisions) lookup(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	clients, err := d.store.Clients(ctx, ids)
	if err != nil || len(clients) != len(ids) {
		return nil, fmt.Errorf("look up %d request ids: %w", len(ids), err)
	}
	var missing []int
	for i, c := range clients {
		if c == "" {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return clients, nil
	}
	d.writeNow(ctx)
	again := make([]string, len(missing))
	for k, i := range missing {
		again[k] = ids[i]
	}
	found, err := d.store.Clients(ctx, again)
	if err != nil || len(found) != len(again) {
		return clients, nil // the first answer stands
	}
	for k, i := range missing {
		clients[i] = found[k]
	}
	return clients, nil
}

// canonicalClient is the client key authz scores a request under: the
// address's canonical form (IPv4-mapped IPv6 unmapped).
func canonicalClient(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return a.Unmap().String()
}
