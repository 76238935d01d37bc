package state

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/scoring"
)

// BenchmarkMemoryClients fills a memory store (default options) with
// tracked clients and reports what each costs: the heap in use after a
// collection (B/client, and heap-MiB for all of them), and the process's
// resident memory once they are in (rss-MiB: VmRSS of the benchmark
// process — its runtime, the store, and whatever garbage the fill left —
// starting from a heap returned to the OS). Goal (issue 20): 1 M typical
// clients ≤ 300 MiB RSS.
//
//	typical:  1 M clients, each a few pages (3 endpoints, one ID route) and
//	          their responses — what fits in a client's record.
//	browsing: 100 k clients, each 12 pages over 3 ID routes: endpoints and
//	          templates beyond the record's inline ones.
func BenchmarkMemoryClients(b *testing.B) {
	for _, tc := range []struct {
		name            string
		clients, visits int
		templates       int
	}{
		{"typical", 1_000_000, 3, 1},
		{"browsing", 100_000, 12, 3},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var heap, rss float64
			for b.Loop() {
				heap, rss = fillClients(b, tc.clients, tc.visits, tc.templates)
			}
			b.ReportMetric(heap/float64(tc.clients), "B/client")
			b.ReportMetric(heap/(1<<20), "heap-MiB")
			b.ReportMetric(rss/(1<<20), "rss-MiB")
		})
	}
}

// fillClients tracks clients, each visiting visits pages (the last of
// every round of templates+1 pages an ID route), and returns the heap
// they hold after a collection and the process's RSS, in bytes.
func fillClients(b *testing.B, clients, visits, templates int) (heap, rss float64) {
	// Start from a heap returned to the OS, so that rss-MiB is this fill's.
	debug.FreeOSMemory()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// Shards fill unevenly; leave room so none evicts.
	opts := DefaultMemoryOptions()
	opts.MaxClients = max(opts.MaxClients, clients*11/10)
	m, err := NewMemory(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	w := windows()
	key := make([]byte, 0, 16)
	for i := range clients {
		key = strconv.AppendInt(append(key[:0], "10."...), int64(i>>16&255), 10)
		key = strconv.AppendInt(append(key, '.'), int64(i>>8&255), 10)
		key = strconv.AppendInt(append(key, '.'), int64(i&255), 10)
		k := string(key)
		for j := range visits {
			obs := scoring.Observation{ClientKey: k, Now: t0.Add(time.Duration(j) * time.Second), Windows: w, Endpoint: uint64(i + j)}
			if j%(templates+1) == templates {
				obs.HasID, obs.Template, obs.ID = true, uint64(j%templates), int64(i)
			}
			if _, err := m.Check(ctx, obs); err != nil {
				b.Fatal(err)
			}
			if err := m.ObserveResponses(ctx, []scoring.ObservedResponse{{ClientKey: k, At: obs.Now}}, w); err != nil {
				b.Fatal(err)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := m.Len(); n != clients {
		b.Fatalf("tracked %d clients, want %d", n, clients)
	}
	rss = vmRSS(b)
	runtime.KeepAlive(m)
	return float64(after.HeapInuse) - float64(before.HeapInuse), rss
}

// vmRSS returns the process's resident set size in bytes.
func vmRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseFloat(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
