package payload

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testUA   = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	testXSS  = "<script>alert(1)</script>"
	testRFI  = "http://evil.example/shell.txt"
	testSQLi = "%27%20UNION%20SELECT%20password%20FROM%20users--"
)

// step is one request of a sequence and what it must get.
type step struct {
	path    string
	query   string
	headers map[string]string
	block   bool
	any     bool // the verdict is not checked (only the later steps)
	hits    int  // header cache hits this request
}

func TestHeaderCacheSequences(t *testing.T) {
	tests := map[string]struct {
		excl  []Exclusion
		steps []step
	}{
		"repeat is a hit": {steps: []step{
			{headers: map[string]string{"user-agent": testUA, "cookie": "session=abc123; theme=dark"}},
			{headers: map[string]string{"user-agent": testUA, "cookie": "session=abc123; theme=dark"}, hits: 2},
		}},
		"clean cached, then a malicious value under the same name": {steps: []step{
			{headers: map[string]string{"user-agent": testUA}},
			{headers: map[string]string{"user-agent": testXSS}, block: true},
			{headers: map[string]string{"user-agent": testXSS}, block: true},
			{headers: map[string]string{"user-agent": testUA}, hits: 1},
		}},
		"same value under a name inspected differently": {steps: []step{
			{headers: map[string]string{"x-link": testRFI}},
			{headers: map[string]string{"x-link": testRFI}, hits: 1},
			{headers: map[string]string{"x_include": testRFI}, block: true},
		}},
		"cookie value is not the header value": {steps: []step{
			{headers: map[string]string{"cookie": "a=" + testRFI}},
			{headers: map[string]string{"cookie": "mosconfig_absolute_path=" + testRFI}, block: true},
		}},
		// The per-request memo ignores the location; a header it spared
		// was not inspected under its own name, so it is not cached.
		// ("cookie" sorts first; query values are memoised apart, '+'
		// being a space there.)
		"memo from another header does not cache the header": {steps: []step{
			{headers: map[string]string{"cookie": "a=" + testRFI, "x_include": testRFI}, block: true},
			{headers: map[string]string{"x_include": testRFI}, block: true},
		}},
		"memo within the header is its own": {steps: []step{
			{headers: map[string]string{"cookie": "a=1; b=1"}},
			{headers: map[string]string{"cookie": "a=1; b=1"}, hits: 1},
		}},
		"finding elsewhere keeps the headers out": {steps: []step{
			{query: "q=" + testSQLi, headers: map[string]string{"user-agent": testUA}, block: true},
			{headers: map[string]string{"user-agent": testUA}},
			{headers: map[string]string{"user-agent": testUA}, hits: 1},
		}},
		"waived by an exclusion is not cached": {
			excl: []Exclusion{{Route: "/cms/*", Fields: []string{"header:x-html"}, Rules: []string{"xss"}}},
			steps: []step{
				{path: "/cms/p", headers: map[string]string{"x-html": testXSS}},
				{path: "/api", headers: map[string]string{"x-html": testXSS}, block: true},
				{path: "/cms/p", headers: map[string]string{"x-html": testXSS}},
			}},
		"clean without a waiver is cached on an excluded path": {
			excl: []Exclusion{{Route: "/cms/*", Fields: []string{"header:x-html"}, Rules: []string{"xss"}}},
			steps: []step{
				{path: "/cms/p", headers: map[string]string{"x-html": "<b>plain</b> words"}},
				{path: "/api", headers: map[string]string{"x-html": "<b>plain</b> words"}, hits: 1},
			}},
		"long values are not cached": {steps: []step{
			{headers: map[string]string{"x-long": strings.Repeat("a", maxCachedHeaderLen+1)}},
			{headers: map[string]string{"x-long": strings.Repeat("a", maxCachedHeaderLen+1)}},
		}},
	}
	for name, tc := range tests {
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/direct=%v", name, direct), func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Exclusions = tc.excl
				v := newTestValidator(t, cfg)
				v.direct = direct
				for i, st := range tc.steps {
					path := st.path
					if path == "" {
						path = "/"
					}
					h0 := testutil.ToFloat64(v.m.hdrHits)
					res := v.Inspect(context.Background(), &Input{Path: path, RawQuery: st.query, Headers: st.headers})
					if !st.any && (res.Action == Block) != st.block {
						t.Errorf("step %d: block = %v, want %v: %+v", i, res.Action == Block, st.block, res.Findings)
					}
					if hits := int(testutil.ToFloat64(v.m.hdrHits) - h0); hits != st.hits {
						t.Errorf("step %d: %d cache hits, want %d", i, hits, st.hits)
					}
				}
			})
		}
	}
}

// A reload must not keep the old configuration's verdicts: a cookie
// header cached under generous limits exceeds payload.limits.max_values
// after the reload and must be found too complex, not served as clean.
func TestHeaderCacheReload(t *testing.T) {
	cookie := "a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8"
	in := &Input{Path: "/", Headers: map[string]string{"cookie": cookie}}
	tests := map[string]struct {
		change func(*Config)
		check  func(*testing.T, Result, int)
	}{
		"limits": {change: func(c *Config) { c.Limits.MaxValues = 4 }, check: func(t *testing.T, r Result, hits int) {
			if r.TooComplex == "" || hits != 0 {
				t.Errorf("after reload: too complex %q, %d hits; want a limit and no hit", r.TooComplex, hits)
			}
		}},
		"same settings": {change: func(*Config) {}, check: func(t *testing.T, r Result, hits int) {
			if r.Action == Block || hits != 0 {
				t.Errorf("after reload: %+v, %d hits; want allowed and inspected again", r, hits)
			}
		}},
		"off": {change: func(c *Config) { c.HeaderCacheSize = 0 }, check: func(t *testing.T, r Result, hits int) {
			if r.Action == Block || hits != 0 {
				t.Errorf("after reload: %+v, %d hits; want allowed, no cache", r, hits)
			}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := newTestValidator(t, DefaultConfig())
			ctx := context.Background()
			v.Inspect(ctx, in)
			if r := v.Inspect(ctx, in); r.Action == Block || testutil.ToFloat64(v.m.hdrHits) != 1 {
				t.Fatalf("before reload: %+v, %v hits; want a hit", r, testutil.ToFloat64(v.m.hdrHits))
			}
			cfg := DefaultConfig()
			tc.change(&cfg)
			if err := v.SetConfig(cfg); err != nil {
				t.Fatal(err)
			}
			h0 := testutil.ToFloat64(v.m.hdrHits)
			r := v.Inspect(ctx, in)
			tc.check(t, r, int(testutil.ToFloat64(v.m.hdrHits)-h0))
		})
	}
}

func TestHeaderCacheTable(t *testing.T) {
	for size, want := range map[int]int{1: 1, 2: 2, 3: 4, 4096: 4096, 5000: 8192} {
		if n := len(newHeaderCache(size).slots); n != want {
			t.Errorf("size %d: %d slots, want %d", size, n, want)
		}
	}
	if newHeaderCache(0) != nil {
		t.Error("size 0 must turn the cache off")
	}
	// One slot: every pair collides; only the full key matches.
	c := newHeaderCache(1)
	c.add("a", "v1")
	for _, k := range []headerPair{{"a", "v2"}, {"b", "v1"}, {"a", "v"}, {"av", "1"}, {"", "av1"}} {
		if c.clean(k.name, k.value) {
			t.Errorf("%q: %q served from the cache holding a: v1", k.name, k.value)
		}
	}
	if !c.clean("a", "v1") {
		t.Error("a: v1 not cached")
	}
	c.add("b", "v2")
	if c.clean("a", "v1") || !c.clean("b", "v2") {
		t.Error("a collision must overwrite")
	}
	// The request's strings are reused after Inspect: the cache copies,
	// names and values, empty ones included.
	long := strings.Repeat("v", 64)
	for _, k := range []headerPair{{"cookie", "session=" + long}, {"x-" + long, ""}, {"", long}} {
		// Over 32 bytes, so on the heap like the arena: a string on the
		// stack would be copied by the runtime's concatenation anyway.
		name, value := []byte(k.name), []byte(k.value)
		c.add(unsafe.String(unsafe.SliceData(name), len(name)), unsafe.String(unsafe.SliceData(value), len(value)))
		for i := range name {
			name[i] = 'z'
		}
		for i := range value {
			value[i] = 'z'
		}
		if !c.clean(k.name, k.value) {
			t.Errorf("%q: %q: the cache kept the caller's bytes", k.name, k.value)
		}
	}
}

func TestHeaderCacheConfig(t *testing.T) {
	for size, ok := range map[int]bool{0: true, 4096: true, 1 << 20: true, -1: false, 1<<20 + 1: false} {
		cfg := DefaultConfig()
		cfg.HeaderCacheSize = size
		err := cfg.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "payload.header_cache_size") {
			t.Errorf("size %d: %v", size, err)
		}
	}
}

// Concurrent requests share the cache: clean headers get cached while
// malicious ones, under the same names, are always blocked (run with
// -race).
func TestHeaderCacheConcurrent(t *testing.T) {
	v := newTestValidator(t, DefaultConfig())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				clean := map[string]string{"user-agent": fmt.Sprintf("%s %d", testUA, i%7), "cookie": fmt.Sprintf("s=%d", i%5)}
				bad := map[string]string{"user-agent": fmt.Sprintf("%s %d", testXSS, i%7), "cookie": fmt.Sprintf("s=%d", i%5)}
				if r := v.Inspect(context.Background(), &Input{Path: "/", Headers: clean}); r.Action == Block {
					t.Errorf("goroutine %d: clean blocked: %+v", g, r.Findings)
				}
				if r := v.Inspect(context.Background(), &Input{Path: "/", Headers: bad}); r.Action != Block {
					t.Errorf("goroutine %d: malicious allowed", g)
				}
			}
		})
	}
	wg.Wait()
	if testutil.ToFloat64(v.m.hdrHits) == 0 {
		t.Error("no cache hits")
	}
}
