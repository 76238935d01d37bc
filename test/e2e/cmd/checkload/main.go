// Command checkload is the Check load generator of scripts/bench.sh: an
// Envoy-shaped ext_authz v3 client that sends pre-encoded CheckRequests to
// several servers in turn — interleaved rounds, so a busy machine slows
// them alike — and prints each server's calls per second next to the first
// server's (the no-op baseline), its CPU per Check and its fail-mode
// answers:
//
//	checkload -c 32 -n 40000 -rounds 3 \
//	    -server noop=127.0.0.1:9101,pid=123 \
//	    -server memory=127.0.0.1:9102,pid=456,metrics=http://127.0.0.1:9103/metrics
//
// Why not ghz: ghz templates and marshals every request and decodes every
// answer through reflection, which on a 2-core machine costs more CPU than
// the servers under test, so every server looked as fast as the no-op. Here
// the requests are marshalled before the round starts and the answers are
// read with protowire (the status code only): the client's own cost is the
// gRPC transport, the same for every server.
//
// The requests look like Envoy's for a browser GET at an edge listener
// (use_remote_address), each from one of -clients addresses, each with its
// own x-request-id; -body adds an 8 KiB JSON order (with_request_body,
// pack_as_bytes).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

type serverFlags []target

func (s *serverFlags) String() string { return fmt.Sprint(*s) }

func (s *serverFlags) Set(v string) error {
	t, err := parseTarget(v)
	if err != nil {
		return err
	}
	*s = append(*s, t)
	return nil
}

func main() {
	var servers serverFlags
	flag.Var(&servers, "server", "NAME=ADDR[,pid=PID][,metrics=URL][,token=T]; repeat; the first is the baseline")
	conc := flag.Int("c", 32, "concurrent callers (Envoy workers' in-flight Checks)")
	n := flag.Int("n", 40000, "Checks per server per round")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	clients := flag.Int("clients", 1000, "distinct client addresses")
	body := flag.Bool("body", false, "POST an 8 KiB JSON body instead of a GET")
	conns := flag.Int("conns", 1, "connections per server (Envoy: one per worker thread)")
	warm := flag.Int("warmup", 2000, "Checks per server before the first round")
	out := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("checkload: ")
	if len(servers) == 0 {
		log.Fatal("no -server given")
	}

	res := make([]result, len(servers))
	for i := range servers {
		res[i].Name = servers[i].name
		if err := servers[i].dial(*conns); err != nil {
			log.Fatal(err)
		}
		defer servers[i].close()
		reqs := build(*warm, *clients, *body, "w"+servers[i].name)
		if _, err := servers[i].run(reqs, *conc); err != nil {
			log.Fatalf("%s: warm-up: %v", servers[i].name, err)
		}
	}
	for r := range *rounds {
		reqs := build(*n, *clients, *body, fmt.Sprintf("r%d", r))
		for i := range servers {
			rr, err := servers[i].measure(reqs, *conc)
			if err != nil {
				log.Fatalf("%s: round %d: %v", servers[i].name, r, err)
			}
			res[i].Rounds = append(res[i].Rounds, rr)
			log.Printf("round %d %-12s %8.0f calls/s  cpu %6.1f µs/Check  p99 %6.2f ms  fail-mode %d  errors %d",
				r+1, servers[i].name, rr.CallsPerSec, rr.CPUMicros, rr.P99ms, rr.FailMode, rr.Errors)
		}
		for i := range servers {
			base := res[0].Rounds[r].CallsPerSec
			res[i].Rounds[r].Ratio = res[i].Rounds[r].CallsPerSec / base
		}
	}
	for i := range res {
		res[i].summarise()
		fmt.Println(res[i].line())
	}
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// target is one server under test.
type target struct {
	name, addr, metrics, token string
	pid                        int
	conns                      []*grpc.ClientConn
}

func parseTarget(v string) (target, error) {
	var t target
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return t, fmt.Errorf("server %q: want NAME=ADDR[,pid=PID][,metrics=URL]", v)
	}
	parts := strings.Split(rest, ",")
	t.name, t.addr = name, parts[0]
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		switch k {
		case "pid":
			if _, err := fmt.Sscan(val, &t.pid); err != nil {
				return t, fmt.Errorf("server %s: pid %q: %w", name, val, err)
			}
		case "metrics":
			t.metrics = val
		case "token":
			t.token = val
		default:
			return t, fmt.Errorf("server %s: unknown option %q", name, k)
		}
	}
	return t, nil
}

func (t *target) dial(n int) error {
	for range n {
		c, err := grpc.NewClient(t.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		t.conns = append(t.conns, c)
	}
	return nil
}

func (t *target) close() {
	for _, c := range t.conns {
		_ = c.Close()
	}
}

// roundResult is one server's figures in one round.
type roundResult struct {
	CallsPerSec float64 `json:"calls_per_sec"`
	Ratio       float64 `json:"ratio"`
	CPUMicros   float64 `json:"cpu_us_per_check"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Errors      int64   `json:"errors"`
	Denied      int64   `json:"denied"`
	FailMode    int64   `json:"fail_mode"`
	Calls       int64   `json:"calls"`
}

func (t *target) measure(reqs [][]byte, conc int) (roundResult, error) {
	var rr roundResult
	fm0, err := t.failMode()
	if err != nil {
		return rr, err
	}
	cpu0 := cpuTicks(t.pid)
	start := time.Now()
	st, err := t.run(reqs, conc)
	if err != nil {
		return rr, err
	}
	took := time.Since(start)
	cpu1 := cpuTicks(t.pid)
	fm1, err := t.failMode()
	if err != nil {
		return rr, err
	}
	rr.Calls = int64(len(reqs))
	rr.CallsPerSec = float64(len(reqs)) / took.Seconds()
	if t.pid > 0 {
		rr.CPUMicros = float64(cpu1-cpu0) * (1e6 / clockTicks) / float64(len(reqs))
	}
	sort.Slice(st.lat, func(i, j int) bool { return st.lat[i] < st.lat[j] })
	rr.P50ms = float64(st.lat[len(st.lat)/2]) / 1e6
	rr.P99ms = float64(st.lat[len(st.lat)*99/100]) / 1e6
	rr.Errors, rr.Denied, rr.FailMode = st.errors.Load(), st.denied.Load(), fm1-fm0
	return rr, nil
}

type runStats struct {
	lat            []time.Duration
	errors, denied atomic.Int64
}

// run sends every request once over conc callers; the connections are
// shared round robin, like Envoy's workers each on their own.
func (t *target) run(reqs [][]byte, conc int) (*runStats, error) {
	st := &runStats{lat: make([]time.Duration, len(reqs))}
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	if t.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.token)
	}
	var firstErr atomic.Value
	for w := range conc {
		conn := t.conns[w%len(t.conns)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp []byte
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				t0 := time.Now()
				err := conn.Invoke(ctx, "/envoy.service.auth.v3.Authorization/Check", reqs[i], &resp)
				st.lat[i] = time.Since(t0)
				if err != nil {
					if st.errors.Add(1) == 1 {
						firstErr.Store(err)
					}
					continue
				}
				if code, ok := statusCode(resp); !ok {
					firstErr.CompareAndSwap(nil, errors.New("unreadable CheckResponse"))
					st.errors.Add(1)
				} else if code != 0 {
					st.denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if e, _ := firstErr.Load().(error); e != nil && st.errors.Load() == int64(len(reqs)) {
		return nil, fmt.Errorf("every call failed: %w", e)
	}
	return st, nil
}

// build marshals n CheckRequests from clients addresses, ids prefixed
// with tag so that no two rounds share one.
func build(n, clients int, body bool, tag string) [][]byte {
	reqs := make([][]byte, n)
	for i := range n {
		b, err := proto.Marshal(testenv.BrowserCheck(i, clients, body, tag))
		if err != nil {
			log.Fatal(err)
		}
		reqs[i] = b
	}
	return reqs
}

// result is one server's figures over all rounds; the summary is the
// median round.
type result struct {
	Name   string        `json:"name"`
	Rounds []roundResult `json:"rounds"`
	Median roundResult   `json:"median"`
}

func (r *result) summarise() {
	med := func(get func(roundResult) float64) float64 {
		v := make([]float64, len(r.Rounds))
		for i, x := range r.Rounds {
			v[i] = get(x)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	r.Median = roundResult{
		CallsPerSec: med(func(x roundResult) float64 { return x.CallsPerSec }),
		Ratio:       med(func(x roundResult) float64 { return x.Ratio }),
		CPUMicros:   med(func(x roundResult) float64 { return x.CPUMicros }),
		P50ms:       med(func(x roundResult) float64 { return x.P50ms }),
		P99ms:       med(func(x roundResult) float64 { return x.P99ms }),
	}
	for _, x := range r.Rounds {
		r.Median.Calls += x.Calls
		r.Median.Errors += x.Errors
		r.Median.Denied += x.Denied
		r.Median.FailMode += x.FailMode
	}
}

// line is the result as a tab-separated line for scripts: name, median
// calls/s, lowest and highest ratio, median ratio, CPU µs/Check, p50 ms,
// p99 ms, calls, errors, denied, fail-mode answers.
func (r *result) line() string {
	lo, hi := r.Rounds[0].Ratio, r.Rounds[0].Ratio
	for _, x := range r.Rounds {
		lo, hi = min(lo, x.Ratio), max(hi, x.Ratio)
	}
	m := r.Median
	return fmt.Sprintf("%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.1f\t%.3f\t%.3f\t%d\t%d\t%d\t%d",
		r.Name, m.CallsPerSec, lo, hi, m.Ratio, m.CPUMicros, m.P50ms, m.P99ms, m.Calls, m.Errors, m.Denied, m.FailMode)
}
