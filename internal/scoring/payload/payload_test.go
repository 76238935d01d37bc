package payload

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func hasFinding(res Result, detector, loc string) bool {
	for _, f := range res.Findings {
		if f.Detector == detector && f.Location == loc {
			return true
		}
	}
	return false
}

func TestInspectLocations(t *testing.T) {
	attack := "<script>alert(1)</script>"
	tests := map[string]struct {
		in  Input
		loc string
	}{
		"path":       {in: Input{Path: "/files/..%2f..%2f..%2fetc/passwd"}, loc: "path"},
		"query":      {in: Input{Path: "/", RawQuery: "a=1&q=%3Cscript%3Ealert(1)%3C/script%3E"}, loc: "query:q"},
		"query key":  {in: Input{Path: "/", RawQuery: "%3Cscript%3Ealert(1)%3C/script%3E=1"}, loc: "query-key:" + attack},
		"referer":    {in: Input{Path: "/", Headers: map[string]string{"referer": "https://x.example/?q=" + attack}}, loc: "header:referer"},
		"user agent": {in: Input{Path: "/", Headers: map[string]string{"user-agent": attack}}, loc: "header:user-agent"},
		"custom x":   {in: Input{Path: "/", Headers: map[string]string{"x-note": attack}}, loc: "header:x-note"},
		"cookie":     {in: Input{Path: "/", Headers: map[string]string{"cookie": "a=1; session=" + attack}}, loc: "cookie:session"},
		"json leaf": {in: Input{Path: "/", ContentType: "application/json",
			Body: []byte(`{"a":{"list":[1,"ok",{"b":"` + attack + `"}]}}`)}, loc: "body:$.a.list[2].b"},
		"json key": {in: Input{Path: "/", ContentType: "application/vnd.api+json",
			Body: []byte(`{"a":{"` + attack + `":1}}`)}, loc: "body-key:$.a." + attack},
		"json escaped": {in: Input{Path: "/", ContentType: "application/json",
			Body: []byte(`{"a":"\u003cscript\u003ealert(1)\u003c/script\u003e"}`)}, loc: "body:$.a"},
		"form": {in: Input{Path: "/", ContentType: "application/x-www-form-urlencoded",
			Body: []byte("name=x&comment=%3Cscript%3Ealert(1)%3C%2Fscript%3E")}, loc: "body:comment"},
		"raw text": {in: Input{Path: "/", ContentType: "text/plain", Body: []byte("hello\n" + attack)}, loc: "body"},
		"content type from headers": {in: Input{Path: "/", Headers: map[string]string{"content-type": "application/json"},
			Body: []byte(`{"z":"` + attack + `"}`)}, loc: "body:$.z"},
		"url in json split": {in: Input{Path: "/", ContentType: "application/json",
			Body: []byte(`{"next":"https://shop.example.com/p/1?ref=home&id=1%27%20OR%20%271%27%3D%271--"}`)}, loc: "body:$.next"},
		"url in referer split": {in: Input{Path: "/", Headers: map[string]string{"referer": "https://x.example/a/../../../etc/passwd?q=1"}}, loc: "header:referer"},
		"invalid json as text": {in: Input{Path: "/", ContentType: "application/json", Body: []byte("oops " + attack)}, loc: "body"},
	}
	v := newTestValidator(t, DefaultConfig())
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := v.Inspect(context.Background(), &tc.in)
			if res.Action != Block {
				t.Errorf("action = %v, want block (findings %+v)", res.Action, res.Findings)
			}
			found := false
			for _, f := range res.Findings {
				found = found || f.Location == tc.loc
			}
			if !found {
				t.Errorf("no finding at %q: %+v", tc.loc, res.Findings)
			}
		})
	}
}

func TestInspectHeaderSelection(t *testing.T) {
	attack := "' OR '1'='1"
	tests := map[string]struct {
		cfg     func(*Config)
		headers map[string]string
		flagged bool
	}{
		"request id skipped": {headers: map[string]string{"x-request-id": attack}},
		"xff entries":        {headers: map[string]string{"x-forwarded-for": "203.0.113.9, " + attack}, flagged: true},
		"xff addresses":      {headers: map[string]string{"x-forwarded-for": "203.0.113.9, [2001:db8::1]:443, 10.0.0.1"}},
		"envoy skipped":      {headers: map[string]string{"x-envoy-original-path": attack}},
		"authorization":      {headers: map[string]string{"authorization": attack}, flagged: true},
		"accept-language":    {headers: map[string]string{"accept-language": attack}, flagged: true},
		"custom x inspected": {headers: map[string]string{"x-search": attack}, flagged: true},
		"configured header":  {cfg: func(c *Config) { c.Headers = []string{"accept-language"} }, headers: map[string]string{"accept-language": attack}, flagged: true},
		"not configured":     {cfg: func(c *Config) { c.Headers = []string{"user-agent"} }, headers: map[string]string{"accept-language": attack}},
		"configured skip":    {cfg: func(c *Config) { c.SkipHeaders = []string{"x-search"} }, headers: map[string]string{"x-search": attack}},
		"no headers":         {cfg: func(c *Config) { c.Headers = nil }, headers: map[string]string{"user-agent": attack}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v := newTestValidator(t, cfg)
			res := v.Inspect(context.Background(), &Input{Path: "/", Headers: tc.headers})
			if got := res.Score > 0; got != tc.flagged {
				t.Errorf("flagged = %v, want %v (%+v)", got, tc.flagged, res.Findings)
			}
		})
	}
}

func TestInspectBodies(t *testing.T) {
	attack := "' OR '1'='1"
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 64
	pad := strings.Repeat("a", 80)
	tests := map[string]struct {
		in        Input
		block     bool
		truncated bool
		skipped   string
	}{
		"multipart inspected": {in: Input{ContentType: "multipart/form-data; boundary=x", Body: []byte("--x\r\n\r\n" + attack)}, block: true},
		"image skipped":       {in: Input{ContentType: "image/png", Body: []byte("\x89PNG\r\n\x1a\n\x00\x00" + attack)}, skipped: "binary"},
		"text labelled image": {in: Input{ContentType: "image/png", Body: []byte(attack)}, block: true},
		"attack before cap":   {in: Input{ContentType: "text/plain", Body: []byte(attack + " " + pad)}, block: true, truncated: true},
		"attack after cap":    {in: Input{ContentType: "text/plain", Body: []byte(pad + " " + attack)}, truncated: true},
		"json cut at cap":     {in: Input{ContentType: "application/json", Body: []byte(`{"q":"` + attack + `","pad":"` + pad + `"}`)}, block: true, truncated: true},
		"within cap":          {in: Input{ContentType: "text/plain", Body: []byte(attack)}, block: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := newTestValidator(t, cfg)
			res := v.Inspect(context.Background(), &tc.in)
			if (res.Action == Block) != tc.block || res.BodyTruncated != tc.truncated || res.BodySkipped != tc.skipped {
				t.Errorf("block=%v truncated=%v skipped=%q, want %v %v %q", res.Action == Block, res.BodyTruncated, res.BodySkipped, tc.block, tc.truncated, tc.skipped)
			}
		})
	}
}

func TestScoring(t *testing.T) {
	tests := map[string]struct {
		query      string
		action     Action
		borderline bool
		reason     string
		score      int
	}{
		"clean":               {query: "q=shoes", action: Allow},
		"borderline shell":    {query: "q=foo%20%7C%20cat", action: Allow, borderline: true, score: 2},
		"borderline probe":    {query: "q=select", action: Allow, borderline: true, score: 1},
		"block sqli":          {query: "q=%27%20OR%20%271%27%3D%271", action: Block, reason: ReasonSQLi, score: 3},
		"block prompt":        {query: "q=ignore+previous+instructions", action: Block, reason: ReasonPromptInjection, score: 3},
		"borderlines add up":  {query: "a=foo%20%7C%20cat&b=javascript:void(0)", action: Block, reason: ReasonXSS, score: 4}, // tie: xss ranks first
		"same detector twice": {query: "a=foo%20%7C%20cat&b=bar%20%7C%20head", action: Allow, borderline: true, score: 2},
		"strongest names it":  {query: "a=..%2F..%2F..%2Fetc%2Fpasswd%2500", action: Block, reason: ReasonPathTraversal},
	}
	v := newTestValidator(t, DefaultConfig())
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := v.Inspect(context.Background(), &Input{Path: "/", RawQuery: tc.query})
			if res.Action != tc.action || res.Borderline != tc.borderline || res.Reason != tc.reason {
				t.Errorf("got action=%v borderline=%v reason=%q score=%d, want %v %v %q (%+v)", res.Action, res.Borderline, res.Reason, res.Score, tc.action, tc.borderline, tc.reason, res.Findings)
			}
			if tc.score != 0 && res.Score != tc.score {
				t.Errorf("score = %d, want %d", res.Score, tc.score)
			}
			if (res.Score > 0) != (res.Hash != "") || (res.Score > 0) != (res.Excerpt != "") {
				t.Errorf("hash %q / excerpt %q must be set exactly when score > 0 (score %d)", res.Hash, res.Excerpt, res.Score)
			}
		})
	}
}

func TestBlockScoreConfigurable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BlockScore = 2
	v := newTestValidator(t, cfg)
	res := v.Inspect(context.Background(), &Input{Path: "/", RawQuery: "q=foo%20%7C%20cat"})
	if res.Action != Block || res.Reason != ReasonShellInjection {
		t.Fatalf("block_score 2: got %v %q", res.Action, res.Reason)
	}
}

func TestHashStable(t *testing.T) {
	v := newTestValidator(t, DefaultConfig())
	mk := func(q string, hdr map[string]string) Result {
		return v.Inspect(context.Background(), &Input{Path: "/", RawQuery: q, Headers: hdr})
	}
	h := map[string]string{"x-a": "foo | cat", "x-b": "javascript:alert(1)", "user-agent": "Mozilla/5.0"}
	a := mk("q=select", h)
	for range 20 { // map order varies between runs
		if b := mk("q=select", h); b.Hash != a.Hash || b.Excerpt != a.Excerpt {
			t.Fatalf("hash or excerpt not stable: %q vs %q", a.Hash, b.Hash)
		}
	}
	// Encodings that normalise to the same payload share the hash.
	if b, c := mk("q=foo+%7C+cat", nil), mk("q=foo%20%257C%20cat", nil); b.Hash == "" {
		t.Fatal("no hash")
	} else if b2 := mk("q=foo%20|%20cat", nil); b2.Hash != b.Hash {
		t.Errorf("same normalised payload, different hash: %q %q", b.Hash, b2.Hash)
	} else if c.Hash != b.Hash || c.Score <= b.Score {
		// The hash covers the normalised payload, so the LLM verdict holds
		// however it was encoded; the encoding itself adds to the score.
		t.Errorf("double-encoded: hash %q score %d; plain: hash %q score %d", c.Hash, c.Score, b.Hash, b.Score)
	}
	if d := mk("q=foo+%7C+whoami", nil); d.Hash == mk("q=foo+%7C+cat", nil).Hash {
		t.Error("different payloads share a hash")
	}
}

func TestExcerptBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LLM.MaxExcerpt = 100
	v := newTestValidator(t, cfg)
	long := strings.Repeat("x", 500)
	res := v.Inspect(context.Background(), &Input{Path: "/", RawQuery: "a=%27+OR+%271%27%3D%271+" + long + "&b=" + long + "+%7C+id"})
	if res.Score == 0 || len(res.Excerpt) > 100 {
		t.Fatalf("excerpt %d bytes (score %d), want 1..100", len(res.Excerpt), res.Score)
	}
	for _, f := range res.Findings {
		if len(f.Excerpt) > excerptLen {
			t.Errorf("finding excerpt %d bytes", len(f.Excerpt))
		}
	}
}

func TestFindingsCapped(t *testing.T) {
	v := newTestValidator(t, DefaultConfig())
	var q []string
	for i := range 100 {
		q = append(q, "p"+strings.Repeat("x", i)+"=%27%20OR%20%271%27%3D%271")
	}
	res := v.Inspect(context.Background(), &Input{Path: "/", RawQuery: strings.Join(q, "&")})
	if len(res.Findings) != maxFindings || res.Action != Block {
		t.Fatalf("findings %d action %v, want %d block", len(res.Findings), res.Action, maxFindings)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mut func(*Config)
		key string
	}{
		"block score": {func(c *Config) { c.BlockScore = 0 }, "payload.block_score"},
		"body bytes":  {func(c *Config) { c.MaxBodyBytes = -1 }, "payload.max_body_bytes"},
		"depth":       {func(c *Config) { c.MaxJSONDepth = 0 }, "payload.max_json_depth"},
		"mode":        {func(c *Config) { c.LLM.Mode = 9 }, "payload.llm.mode"},
		"confidence":  {func(c *Config) { c.LLM.MinConfidence = 1.5 }, "payload.llm.min_confidence"},
		"excerpt":     {func(c *Config) { c.LLM.MaxExcerpt = 10 }, "payload.llm.max_excerpt"},
		"queue":       {func(c *Config) { c.LLM.QueueSize = 0 }, "payload.llm.queue_size"},
		"workers":     {func(c *Config) { c.LLM.Workers = 0 }, "payload.llm.workers"},
		"cache":       {func(c *Config) { c.LLM.CacheSize = 0 }, "payload.llm.cache_size"},
		"ttl":         {func(c *Config) { c.LLM.CacheTTL = 0 }, "payload.llm.cache_ttl"},
		"timeout":     {func(c *Config) { c.LLM.Timeout = 0 }, "payload.llm.timeout"},
		"header case": {func(c *Config) { c.Headers = []string{"User-Agent"} }, "payload.headers"},
		"skip empty":  {func(c *Config) { c.SkipHeaders = []string{""} }, "payload.skip_headers"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mut(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err = %v, want mention of %s", err, tc.key)
			}
		})
	}
	if _, err := New(DefaultConfig()); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}

func TestParseLLMMode(t *testing.T) {
	for in, want := range map[string]LLMMode{"async": LLMAsync, "SYNC": LLMSync, "off": LLMOff, "": LLMAsync} {
		got, err := ParseLLMMode(in)
		if err != nil || got != want || (in != "" && got.String() != strings.ToLower(in)) {
			t.Errorf("ParseLLMMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLLMMode("maybe"); err == nil {
		t.Error("ParseLLMMode(maybe) succeeded")
	}
}

func TestPromptPhrasesParse(t *testing.T) {
	if _, err := parsePhrases("3 ok phrase\nbad line\n"); err == nil {
		t.Error("malformed line accepted")
	}
	if len(prompts.byFirst) == 0 || len(prompts.substr) == 0 {
		t.Error("embedded phrase list is empty")
	}
}

// TestDeepJSON: nesting beyond MaxJSONDepth is still inspected (as raw
// text), and absurd nesting or size neither recurses nor hides an attack.
func TestDeepJSON(t *testing.T) {
	v := newTestValidator(t, DefaultConfig())
	attack := `"<script>alert(1)</script>"`
	tests := map[string]struct {
		body  string
		block bool
	}{
		"attack below depth limit": {body: strings.Repeat("[", 100) + attack + strings.Repeat("]", 100), block: true},
		"attack in deep object":    {body: strings.Repeat(`{"a":`, 1000) + attack + strings.Repeat("}", 1000), block: true},
		"64k of brackets":          {body: strings.Repeat("[", 65536)},
		"unterminated deep":        {body: strings.Repeat(`{"a":[`, 5000)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := v.Inspect(context.Background(), &Input{Path: "/", ContentType: "application/json", Body: []byte(tc.body)})
			if (res.Action == Block) != tc.block {
				t.Fatalf("block = %v, want %v (%+v)", res.Action == Block, tc.block, res.Findings)
			}
			for _, f := range res.Findings {
				if len(f.Location) > 400 {
					t.Errorf("location %d bytes long", len(f.Location))
				}
			}
		})
	}
}
