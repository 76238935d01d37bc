package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

// hostileBodies returns issue 17's attack body (a SQL injection, then
// ~64 KiB of distinct short strings that each pass a detector's
// pre-filter) and its padding alone, which the helper addresses sent.
func hostileBodies() (attack, padding []byte) {
	var b strings.Builder
	for i := 0; b.Len() < 65000; i++ {
		fmt.Fprintf(&b, `,"<a%d"`, i)
	}
	pad := b.String()[1:]
	return []byte(`["'1' OR '1'='1' -- -",` + pad + `]`), []byte(`[` + pad + `]`)
}

// TestHostileBodyAttack: 16 concurrent callers send the hostile body for
// 10 s from 16 attacker addresses, and its clean padding from 120 helper
// addresses, against the binary with its defaults (server.fail_mode:
// allow). None of those requests may be allowed: inspection cost ends in
// payload.too_complex, never in the fail mode. Every too_complex denial
// still took quota. No timing is asserted.
func TestHostileBodyAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary under load for 10 s")
	}
	p := startAuthz(t, `log: {level: warn}
quota:
  plans:
    anonymous: {"/api/*": {per_minute: 10000000}}
`)
	env := envoysim.New(p.authzConn, nil, func(*envoysim.Request) (int, time.Duration) { return 200, 0 }, "e2e-cost")
	defer env.Close()
	attack, padding := hostileBodies()

	const callers, attackers, helpers = 16, 16, 120
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		n       atomic.Int64
		mu      sync.Mutex
		reasons = map[string]int{}
		allowed []string
		errs    int
		wg      sync.WaitGroup
	)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(n.Add(1)) % (attackers + helpers)
				body := padding
				if i < attackers {
					body = attack
				}
				r := &envoysim.Request{Client: fmt.Sprintf("198.51.%d.%d", i/200, 1+i%200), Method: "POST",
					Path: "/api/import", Headers: map[string]string{"content-type": "application/json",
						"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
					Body: body}
				// Each Check has Envoy's own timeout; the attack's deadline
				// is no answer.
				cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
				res, err := env.Do(cctx, r)
				ccancel()
				mu.Lock()
				switch {
				case err != nil:
					errs++
				case res.Allowed:
					allowed = append(allowed, fmt.Sprintf("%s: %v", r.Client, res.Metadata))
				default:
					reasons[res.Reason]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	total := 0
	for _, c := range reasons {
		total += c
	}
	t.Logf("%d requests denied by reason %v; %d allowed; %d errors", total, reasons, len(allowed), errs)
	if len(allowed) > 0 {
		t.Errorf("%d hostile requests allowed, e.g. %s", len(allowed), allowed[0])
	}
	if total == 0 {
		t.Fatal("no request answered")
	}
	if reasons["payload.too_complex"] == 0 {
		t.Errorf("no payload.too_complex denial: %v", reasons)
	}
	for r := range reasons {
		if strings.HasPrefix(r, "failmode.") {
			t.Errorf("%d requests answered by the fail mode (%s)", reasons[r], r)
		}
	}
	// Every too_complex denial the pipeline decided took quota (quota
	// counts nothing else here: none was allowed). Those answered when
	// the decision budget ran out (kind budget_stage) may have been
	// answered before their quota was taken.
	q, tc := metric(t, p, "smartlayer_quota_decisions_total"), float64(reasons["payload.too_complex"])
	early := metric(t, p, "smartlayer_check_errors_total", `kind="budget_stage"`)
	t.Logf("quota decisions %v, too_complex denials %v, answered at the budget %v", q, tc, early)
	if q < tc-early {
		t.Errorf("quota decisions %v < %v too_complex denials - %v at the budget: not every one was counted", q, tc, early)
	}
	t.Logf("payload limits hit: %v (shed %v)", metric(t, p, "smartlayer_payload_limits_hit_total"),
		metric(t, p, "smartlayer_payload_heavy_shed_total"))
}
