package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

// holdProxy forwards TCP connections to a server. On the first connection
// whose client sends more than pass bytes, everything past those bytes
// reaches the server only after hold, even when the client has given up and
// closed meanwhile: the kernel delivers what a closed socket had sent, so a
// server can receive (and commit) an insert its client already gave up on.
// With cut, those bytes are dropped instead and both sides closed: the
// connection broke in the middle of what the client sent.
type holdProxy struct {
	ln      net.Listener
	target  string
	pass    int
	hold    time.Duration
	cut     bool
	used    atomic.Bool  // the hold (or cut) was spent on one connection
	maxSent atomic.Int64 // most bytes one connection sent to the server
	wg      sync.WaitGroup
}

func startHoldProxy(t *testing.T, target string, pass int, hold time.Duration, cut bool) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, pass: pass, hold: hold, cut: cut}
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *holdProxy) addr() string { return p.ln.Addr().String() }

func (p *holdProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { // server → client, as it comes
			defer p.wg.Done()
			_, _ = io.Copy(c, s)
			_ = c.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.forward(s, c)
		}()
	}
}

// forward copies client → server, holding the bytes past pass on the first
// connection that sends that many.
func (p *holdProxy) forward(s, c net.Conn) {
	buf := make([]byte, 64<<10)
	sent := 0
	defer func() { _ = s.(*net.TCPConn).CloseWrite() }()
	var held []byte
	var since time.Time
	for {
		n, err := c.Read(buf)
		chunk := buf[:n]
		if held == nil && sent+n > p.pass && p.used.CompareAndSwap(false, true) {
			cut := max(p.pass-sent, 0)
			if _, werr := s.Write(chunk[:cut]); werr != nil {
				return
			}
			sent += cut
			if p.cut {
				_, _ = s.Close(), c.Close()
				return
			}
			held, since = append([]byte{}, chunk[cut:]...), time.Now()
		} else if held != nil {
			held = append(held, chunk...)
		} else if n > 0 {
			if _, werr := s.Write(chunk); werr != nil {
				return
			}
			sent += n
			for m := p.maxSent.Load(); int64(sent) > m && !p.maxSent.CompareAndSwap(m, int64(sent)); m = p.maxSent.Load() {
			}
		}
		if err != nil {
			break
		}
	}
	if held != nil {
		time.Sleep(time.Until(since.Add(p.hold)))
		_, _ = s.Write(held)
	}
}

// TestLateCommitAfterTimeout: an insert times out on our side while its
// rows are still on their way; the server receives and commits them after
// the writer gave up. The retry must not insert the batch a second time
// (it did: the probe ran before the late commit and found nothing).
func TestLateCommitAfterTimeout(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	direct := openPrivateCH(t, addr)
	db := schemaDB(t, direct)
	const hold = 2 * time.Second
	// The handshake and the INSERT query pass; the block's data is held.
	p := startHoldProxy(t, addr, 8<<10, hold, false)
	w := mustCHWriter(t, openPrivateCH(t, p.addr()), db)

	var rows []Row
	for i := range 3000 {
		rows = append(rows, Row{Unix: 1_764_000_000 + int64(i), RequestID: fmt.Sprintf("late-%d", i),
			Path: fmt.Sprintf("/orders/%d/items?page=%d", i, i%7), UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"})
	}
	b := batchOf(rows)
	start := time.Now()
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	err := w.insert(ctx, b)
	cancel()
	var ie *InsertError
	if !errors.As(err, &ie) || !ie.Ambiguous {
		t.Fatalf("first insert: %v, want an ambiguous failure (the proxy holds its data)", err)
	}
	b.maybeCommitted = true
	// Retry as the delivery loop does, until the writer reports success.
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 1; ; attempt++ {
		err := w.insert(testCtx(t), b)
		if err == nil {
			t.Logf("settled after %d attempt(s)", attempt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry never settled: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The held data reaches the server hold after the first try; give its
	// insert time to land, watching for a second copy.
	until := start.Add(hold + 3*time.Second)
	for {
		total, distinct := countRows(t, direct, db)
		if total > uint64(len(rows)) {
			t.Fatalf("count %d distinct %d, want %d: the batch was stored twice", total, distinct, len(rows))
		}
		if time.Now().After(until) {
			if total != uint64(len(rows)) || distinct != total {
				t.Fatalf("count %d distinct %d, want %d", total, distinct, len(rows))
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBrokenInsertStoresNothing: the connection breaks part way through a
// batch's data; the server must keep none of it (the probe decides a day
// all in or all out), and the retry stores the batch exactly once.
func TestBrokenInsertStoresNothing(t *testing.T) {
	addr := testenv.ClickHouseAddr(t)
	direct := openPrivateCH(t, addr)
	ctx := testCtx(t)
	rows := make([]Row, 3*columnChunk+100)
	for i := range rows {
		rows[i] = Row{Unix: 1_764_000_000 + int64(i), RequestID: fmt.Sprintf("cut-%d", i),
			Path: fmt.Sprintf("/orders/%d", i*7919), UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"}
	}
	// Measure how many bytes the whole insert takes.
	whole := startHoldProxy(t, addr, 1<<40, 0, false)
	if err := mustCHWriter(t, openPrivateCH(t, whole.addr()), schemaDB(t, direct)).insert(ctx, batchOf(rows)); err != nil {
		t.Fatal(err)
	}
	size := int(whole.maxSent.Load())
	for _, frac := range []int{30, 60, 90} {
		t.Run(fmt.Sprintf("cut at %d%%", frac), func(t *testing.T) {
			db := schemaDB(t, direct)
			p := startHoldProxy(t, addr, size*frac/100, 0, true)
			w := mustCHWriter(t, openPrivateCH(t, p.addr()), db)
			b := batchOf(rows)
			err := w.insert(ctx, b)
			var ie *InsertError
			if !errors.As(err, &ie) {
				t.Fatalf("insert over a broken connection: %v, want an InsertError", err)
			}
			if ie.Ambiguous {
				b.maybeCommitted = true
			}
			time.Sleep(500 * time.Millisecond) // whatever the server does with the rest
			if total, _ := countRows(t, direct, db); total != 0 && total != uint64(len(rows)) {
				t.Fatalf("%d of %d rows stored from a broken insert: a day must be all in or all out", total, len(rows))
			}
			w = mustCHWriter(t, direct, db)
			if err := w.insert(ctx, b); err != nil {
				t.Fatal(err)
			}
			if total, distinct := countRows(t, direct, db); total != uint64(len(rows)) || distinct != total {
				t.Fatalf("count %d distinct %d, want %d", total, distinct, len(rows))
			}
		})
	}
}
