// Command demo plays Envoy in front of a running authz for `make demo`:
// normal users browse while a scraper, an ID prober, a curl scanner, a bot
// without a user agent, injection attempts, a free-plan user over quota and a
// client collecting 404s attack. It prints a progress line every second with
// the requests allowed and denied by reason, and streams the access log so
// the reporter has something to say.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/smartlayer/smartlayer/test/e2e/envoysim"
)

const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"

// counts is what the clients saw, by outcome.
type counts struct {
	mu      sync.Mutex
	allowed int
	denied  map[string]int
	errors  int
	// usersDenied counts denials of the normal users: false positives.
	usersDenied int
}

func (c *counts) add(normal bool, res envoysim.Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if normal && err == nil && !res.Allowed {
		c.usersDenied++
	}
	switch {
	case err != nil:
		c.errors++
	case res.Allowed:
		c.allowed++
	default:
		c.denied[res.Reason]++
	}
}

func (c *counts) line() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var reasons []string
	total := 0
	for r, n := range c.denied {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		total += n
	}
	sort.Strings(reasons)
	s := fmt.Sprintf("allowed %5d  denied %4d", c.allowed, total)
	s += fmt.Sprintf("  normal users denied %d", c.usersDenied)
	if c.errors > 0 {
		s += fmt.Sprintf("  errors %d", c.errors)
	}
	if len(reasons) > 0 {
		s += "  (" + strings.Join(reasons, ", ") + ")"
	}
	return s
}

// upstream plays the application: /reports/slow is slow, /missing is missing.
var upstream = envoysim.App(1200 * time.Millisecond)

func get(client, path, ua string) *envoysim.Request {
	h := map[string]string{"accept": "text/html"}
	if ua != "" {
		h["user-agent"] = ua
	}
	return &envoysim.Request{Client: client, Method: "GET", Path: path, Headers: h}
}

// actor is one simulated client: it is called with i = 0, 1, 2, … and
// returns the request to send and the pause after it (nil: done).
type actor struct {
	name string
	next func(i int) (*envoysim.Request, time.Duration)
}

func actors() []actor {
	var as []actor
	pages := []string{"/", "/products", "/products/shoes", "/products/shoes/42", "/cart",
		"/about", "/search?q=running+shoes", "/products/hats", "/reports/slow", "/faq"}
	for u := range 6 {
		as = append(as, actor{fmt.Sprintf("user-%d", u), func(i int) (*envoysim.Request, time.Duration) {
			return get(fmt.Sprintf("198.51.100.%d", 10+u), pages[(i*7+u)%len(pages)], browserUA), 600 * time.Millisecond
		}})
	}
	as = append(as,
		actor{"scraper", func(i int) (*envoysim.Request, time.Duration) {
			return get("192.0.2.20", fmt.Sprintf("/products/item-%d", i%9), browserUA), 30 * time.Millisecond
		}},
		actor{"id-prober", func(i int) (*envoysim.Request, time.Duration) {
			return get("192.0.2.30", fmt.Sprintf("/api/users/%d", i+1), browserUA), 250 * time.Millisecond
		}},
		actor{"curl-scanner", func(i int) (*envoysim.Request, time.Duration) {
			paths := []string{"/admin", "/.env", "/api/token", "/admin/login", "/.env.bak", "/api/token/refresh"}
			return get("192.0.2.40", paths[i%len(paths)], "curl/8.5.0"), 150 * time.Millisecond
		}},
		actor{"no-user-agent-bot", func(i int) (*envoysim.Request, time.Duration) {
			return get("192.0.2.10", "/products", ""), time.Second
		}},
		actor{"injections", func(i int) (*envoysim.Request, time.Duration) {
			switch i % 3 {
			case 0:
				return get(fmt.Sprintf("192.0.2.%d", 50+i%5), "/search?q=1%27%20OR%20%271%27%3D%271", browserUA), time.Second
			case 1:
				r := get(fmt.Sprintf("192.0.2.%d", 50+i%5), "/api/comments", browserUA)
				r.Method, r.Body = "POST", []byte(`{"post": 7, "comment": {"text": "<script>alert(document.cookie)</script>"}}`)
				r.Headers["content-type"] = "application/json"
				return r, time.Second
			default:
				return get(fmt.Sprintf("192.0.2.%d", 50+i%5), "/static/..%2f..%2f..%2fetc%2fpasswd", browserUA), time.Second
			}
		}},
		actor{"free-plan-user", func(i int) (*envoysim.Request, time.Duration) {
			r := get("192.0.2.60", "/api/generate/", browserUA)
			r.Method = "POST"
			r.Claims = map[string]any{"sub": "alice", "plan": "free"}
			return r, 2 * time.Second
		}},
		actor{"404-collector", func(i int) (*envoysim.Request, time.Duration) {
			return get("192.0.2.70", fmt.Sprintf("/missing/page-%d", i%3), browserUA), 500 * time.Millisecond
		}},
	)
	return as
}

func main() {
	authzAddr := flag.String("authz", "127.0.0.1:9001", "authz ext_authz gRPC address")
	alsAddr := flag.String("als", "127.0.0.1:9002", "authz access-log gRPC address (empty: no access log)")
	duration := flag.Duration("duration", 30*time.Second, "how long to play")
	flag.Parse()
	if err := run(*authzAddr, *alsAddr, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(authzAddr, alsAddr string, duration time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()

	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	authzConn, err := grpc.NewClient(authzAddr, creds)
	if err != nil {
		return fmt.Errorf("authz %s: %w", authzAddr, err)
	}
	defer authzConn.Close()
	var alsConn *grpc.ClientConn
	if alsAddr != "" {
		if alsConn, err = grpc.NewClient(alsAddr, creds); err != nil {
			return fmt.Errorf("access log %s: %w", alsAddr, err)
		}
		defer alsConn.Close()
	}

	c := &counts{denied: map[string]int{}}
	var wg sync.WaitGroup
	var envoys []*envoysim.Envoy
	for n, a := range actors() {
		var env *envoysim.Envoy
		if alsConn != nil {
			env = envoysim.New(authzConn, alsConn, upstream, fmt.Sprintf("edge-%d", n))
		} else {
			env = envoysim.New(authzConn, nil, upstream, fmt.Sprintf("edge-%d", n))
		}
		envoys = append(envoys, env)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				r, pause := a.next(i)
				rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := env.Do(rctx, r)
				rcancel()
				c.add(strings.HasPrefix(a.name, "user-"), res, err)
				// Envoy flushes its access-log buffer about once a second.
				if env.Pending() >= 50 || i%4 == 0 {
					fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
					_ = env.Flush(fctx)
					fcancel()
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			fmt.Printf("[%3.0fs] %s\n", time.Since(start).Seconds(), c.line())
		}
	}
	wg.Wait()
	var flushErr error
	for _, env := range envoys {
		fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := env.Flush(fctx); err != nil && flushErr == nil {
			flushErr = err
		}
		fcancel()
		_ = env.Close()
	}
	fmt.Printf("done after %.0fs: %s\n", time.Since(start).Seconds(), c.line())
	if flushErr != nil {
		return fmt.Errorf("flush access log: %w", flushErr)
	}
	return nil
}
