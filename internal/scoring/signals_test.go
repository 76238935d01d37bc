package scoring

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
)

func TestRouteTemplate(t *testing.T) {
	tests := map[string]struct {
		path  string
		tpl   string
		id    int64
		hasID bool
	}{
		"root":              {"/", "/", 0, false},
		"no numbers":        {"/products/shoes", "/products/shoes", 0, false},
		"one id":            {"/users/42", "/users/{id}", 42, true},
		"id then segment":   {"/users/7/profile", "/users/{id}/profile", 7, true},
		"two ids last wins": {"/users/5/posts/3", "/users/{id}/posts/{id}", 3, true},
		"trailing slash":    {"/users/9/", "/users/{id}/", 9, true},
		"mixed segment":     {"/v2/items", "/v2/items", 0, false},
		"leading zeros":     {"/a/007", "/a/{id}", 7, true},
		"huge number":       {"/a/12345678901234567890", "/a/{id}", 0, false},
		"huge then small":   {"/a/12345678901234567890/3", "/a/{id}/{id}", 3, true},
		"small then huge":   {"/a/3/12345678901234567890", "/a/{id}/{id}", 0, false},
		"first segment":     {"/12/x", "/{id}/x", 12, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl, id, ok := RouteTemplate(tc.path)
			if h, id2, ok2 := templateHash(tc.path); h != hashString(tpl) || id2 != id || ok2 != ok {
				t.Fatalf("templateHash disagrees: %x, %d, %v", h, id2, ok2)
			}
			if tpl != tc.tpl || id != tc.id || ok != tc.hasID {
				t.Fatalf("RouteTemplate(%q) = %q, %d, %v; want %q, %d, %v", tc.path, tpl, id, ok, tc.tpl, tc.id, tc.hasID)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":          {"/a/b", "/a/b"},
		"encoded":        {"/%61dmin", "/admin"},
		"dot segments":   {"/x/../admin/./", "/admin"},
		"double slash":   {"//admin", "/admin"},
		"no leading":     {"admin", "/admin"},
		"empty":          {"", "/"},
		"bad escape":     {"/a%zz", "/a%25zz"},
		"params":         {"/api/..;/admin;x=1", "/admin"},
		"encoded dots":   {"/x/%2e%2E/.env", "/.env"},
		"case kept":      {"/Admin/", "/Admin"},
		"encoded slash":  {"/a%2F..%2Fadmin", "/admin"},
		"trailing slash": {"/a/", "/a"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := CleanPath(tc.in); got != tc.want {
				t.Fatalf("CleanPath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	tests := map[string]struct {
		in     string
		prefix int
		want   string
	}{
		"ipv4":                {"192.0.2.7", 64, "192.0.2.7"},
		"ipv4-mapped":         {"::ffff:192.0.2.7", 64, "192.0.2.7"},
		"ipv4-mapped upper":   {"::FFFF:192.0.2.7", 128, "192.0.2.7"},
		"ipv6 /64":            {"2001:db8::1", 64, "2001:db8::/64"},
		"ipv6 same /64":       {"2001:DB8:0:0:ffff::2", 64, "2001:db8::/64"},
		"ipv6 other /64":      {"2001:db8:0:1::1", 64, "2001:db8:0:1::/64"},
		"ipv6 per address":    {"2001:DB8::0001", 128, "2001:db8::1"},
		"ipv6 zone":           {"fe80::1%eth0", 128, "fe80::1"},
		"ipv6 prefix key":     {"2001:db8::/64", 64, "2001:db8::/64"},
		"ipv6 longer prefix":  {"2001:db8::5/128", 64, "2001:db8::/64"},
		"ipv4 host prefix":    {"192.0.2.7/32", 64, "192.0.2.7"},
		"ipv4 network stays":  {"192.0.2.0/24", 64, "192.0.2.0/24"},
		"unknown":             {"unknown", 64, "unknown"},
		"empty":               {"", 64, "unknown"},
		"hash tag characters": {"a{b}c", 64, "a_b_c"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := ClientKey(tc.in, tc.prefix)
			if got != tc.want {
				t.Fatalf("ClientKey(%q, %d) = %q, want %q", tc.in, tc.prefix, got, tc.want)
			}
			if again := ClientKey(got, tc.prefix); again != got {
				t.Fatalf("ClientKey not idempotent: %q → %q", got, again)
			}
		})
	}
	if got := AddrKey(netip.MustParseAddr("::ffff:10.0.0.1"), 64); got != "10.0.0.1" {
		t.Fatalf("AddrKey(mapped) = %q", got)
	}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	browser := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
	past := ClientState{Requests: 100, RecentRequests: 1, DistinctEndpoints: 1}
	with := func(f func(*ClientState)) ClientState { s := past; f(&s); return s }
	active := &Ban{ClientKey: "c", Reason: ReasonRequestBurst, Score: 9, Expires: now.Add(time.Minute)}
	expired := &Ban{ClientKey: "c", Reason: ReasonRequestBurst, Expires: now}
	tests := map[string]struct {
		ua, path string
		noUA     bool
		st       ClientState
		cfg      func(*BehaviorConfig)
		want     Outcome
	}{
		"clean":                {st: past, want: Outcome{}},
		"banned":               {st: ClientState{Ban: active}, want: Outcome{Deny: true, Reason: ReasonBanned, Score: 9, Ban: active}},
		"expired ban ignored":  {st: with(func(s *ClientState) { s.Ban = expired }), want: Outcome{}},
		"missing user agent":   {noUA: true, st: ClientState{Requests: 1, RecentRequests: 1}, want: Outcome{Deny: true, Reason: ReasonEmptyUserAgent}},
		"blank user agent":     {ua: "  ", st: ClientState{Requests: 1}, want: Outcome{Deny: true, Reason: ReasonEmptyUserAgent}},
		"empty UA rule off":    {noUA: true, st: past, cfg: func(c *BehaviorConfig) { c.BlockEmptyUserAgent = false }, want: Outcome{}},
		"50 in window":         {st: ClientState{Requests: 2, RecentRequests: 50}, want: Outcome{Deny: true, Reason: ReasonRequestBurst}},
		"49 in window, grace":  {st: ClientState{Requests: 10, RecentRequests: 49}, want: Outcome{}},
		"75% errors":           {st: ClientState{Requests: 1, Responses: 20, Errors: 15}, want: Outcome{Deny: true, Reason: ReasonErrorRate}},
		"3 of 4 errors":        {st: ClientState{Requests: 1, Responses: 4, Errors: 3}, want: Outcome{}},
		"74% errors scored":    {st: with(func(s *ClientState) { s.Responses, s.Errors = 100, 74 }), want: Outcome{Score: 2, Signals: []string{SignalErrorRate}}},
		"39% errors":           {st: with(func(s *ClientState) { s.Responses, s.Errors = 100, 39 }), want: Outcome{}},
		"suspicious UA":        {ua: "python-requests/2.31", st: past, want: Outcome{Score: 2, Signals: []string{SignalSuspiciousUA}}},
		"suspicious UA case":   {ua: "CURL/8.4.0", st: past, want: Outcome{Score: 2, Signals: []string{SignalSuspiciousUA}}},
		"UA within grace":      {ua: "curl/8", st: ClientState{Requests: 20}, want: Outcome{}},
		"elevated rate":        {st: with(func(s *ClientState) { s.RecentRequests = 20 }), want: Outcome{Score: 3, Signals: []string{SignalElevatedRate}}},
		"19 in window":         {st: with(func(s *ClientState) { s.RecentRequests = 19 }), want: Outcome{}},
		"sensitive path":       {path: "/admin/login", st: past, want: Outcome{Score: 4, Signals: []string{SignalSensitivePath}, Grey: true}},
		"sensitive encoded":    {path: "/static/../%2Eenv", st: past, want: Outcome{Score: 4, Signals: []string{SignalSensitivePath}, Grey: true}},
		"sensitive upper":      {path: "/API/Token", st: past, want: Outcome{Score: 4, Signals: []string{SignalSensitivePath}, Grey: true}},
		"configured sensitive": {path: "/internal/x", st: past, cfg: func(c *BehaviorConfig) { c.SensitivePaths = append(c.SensitivePaths, "/internal") }, want: Outcome{Score: 4, Signals: []string{SignalSensitivePath}, Grey: true}},
		"endpoint scan":        {st: with(func(s *ClientState) { s.DistinctEndpoints = 15 }), want: Outcome{Score: 2, Signals: []string{SignalEndpointScan}}},
		"14 endpoints":         {st: with(func(s *ClientState) { s.DistinctEndpoints = 14 }), want: Outcome{}},
		"sequential ids":       {st: with(func(s *ClientState) { s.SequentialRun = 5 }), want: Outcome{Score: 5, Signals: []string{SignalSequentialIDs}, Grey: true}},
		"4 sequential":         {st: with(func(s *ClientState) { s.SequentialRun = 4 }), want: Outcome{}},
		"idle burst":           {st: with(func(s *ClientState) { s.IdleBurst = 10 }), want: Outcome{Score: 2, Signals: []string{SignalIdleBurst}}},
		"weight zero disables": {ua: "curl/8", st: past, cfg: func(c *BehaviorConfig) { c.SuspiciousUAWeight = 0 }, want: Outcome{}},
		"score 7 is grey": {path: "/admin", st: with(func(s *ClientState) { s.RecentRequests = 25 }),
			want: Outcome{Score: 7, Signals: []string{SignalElevatedRate, SignalSensitivePath}, Grey: true}},
		"score 8 denies": {ua: "curl/8", path: "/.env", st: with(func(s *ClientState) { s.Responses, s.Errors = 10, 5 }),
			want: Outcome{Deny: true, Reason: ReasonScore, Score: 8, Signals: []string{SignalSuspiciousUA, SignalErrorRate, SignalSensitivePath}}},
		"everything": {ua: "sqlmap/1.7", path: "/admin/users/5", st: with(func(s *ClientState) {
			s.RecentRequests, s.Responses, s.Errors, s.DistinctEndpoints, s.SequentialRun, s.IdleBurst = 30, 10, 5, 20, 6, 12
		}), want: Outcome{Deny: true, Reason: ReasonScore, Score: 20, Signals: []string{SignalSuspiciousUA, SignalElevatedRate,
			SignalErrorRate, SignalSensitivePath, SignalEndpointScan, SignalSequentialIDs, SignalIdleBurst}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultBehaviorConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			ua := tc.ua
			if ua == "" {
				ua = browser
			}
			h := map[string]string{"user-agent": ua}
			if tc.noUA {
				h = map[string]string{}
			}
			p := tc.path
			if p == "" {
				p = "/products"
			}
			got := Decide(cfg, &Request{Path: p, Headers: h}, tc.st, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decide = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

func TestValidateNamesFields(t *testing.T) {
	tests := map[string]struct {
		mut  func(*BehaviorConfig)
		want string
	}{
		"grey above block": {func(c *BehaviorConfig) { c.GreyThreshold = 9 }, "behavior.grey_threshold"},
		"suspect ≥ block":  {func(c *BehaviorConfig) { c.RateSuspect = 50 }, "behavior.rate_suspect"},
		"ratio":            {func(c *BehaviorConfig) { c.ErrorBlockRatio = 1.5 }, "behavior.error_block_ratio"},
		"sensitive path":   {func(c *BehaviorConfig) { c.SensitivePaths = []string{"admin"} }, "behavior.sensitive_paths[0]"},
		"state ttl":        {func(c *BehaviorConfig) { c.StateTTL = time.Minute }, "behavior.state_ttl"},
		"tracked":          {func(c *BehaviorConfig) { c.TrackedEndpoints = 10 }, "behavior.tracked_endpoints"},
		"max ttl":          {func(c *BehaviorConfig) { c.BanMaxTTL = time.Minute }, "behavior.ban_max_ttl"},
		"ipv6 prefix":      {func(c *BehaviorConfig) { c.IPv6Prefix = 0 }, "behavior.ipv6_prefix"},
		"llm confidence":   {func(c *BehaviorConfig) { c.LLM.MinConfidence = 2 }, "behavior.llm.min_confidence"},
		"min sample":       {func(c *BehaviorConfig) { c.ErrorMinSample = 0 }, "behavior.error_min_sample"},
	}
	if err := DefaultBehaviorConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultBehaviorConfig()
			tc.mut(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want mention of %s", err, tc.want)
			}
		})
	}
}

func TestEscalatedTTL(t *testing.T) {
	want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i, w := range want {
		if got := EscalatedTTL(time.Hour, 2, 24*time.Hour, i+1); got != w {
			t.Errorf("offence %d: %s, want %s", i+1, got, w)
		}
	}
	if got := EscalatedTTL(time.Hour, 2, 24*time.Hour, 1000); got != 24*time.Hour {
		t.Errorf("offence 1000: %s", got)
	}
}

func FuzzRouteTemplate(f *testing.F) {
	for _, s := range []string{"/", "/users/1", "/a/12345678901234567890/3", "//x//9/", "/%31/2", "/a/-1", "/0/0/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if len(p) > 4096 {
			return
		}
		cleaned := CleanPath(p)
		if !strings.HasPrefix(cleaned, "/") {
			t.Fatalf("CleanPath(%q) = %q lacks a leading slash", p, cleaned)
		}
		tpl, id, ok := RouteTemplate(cleaned)
		if h, id2, ok2 := templateHash(cleaned); h != hashString(tpl) || id2 != id || ok2 != ok {
			t.Fatalf("templateHash(%q) = %x, %d, %v; RouteTemplate gives %q (%x), %d, %v", cleaned, h, id2, ok2, tpl, hashString(tpl), id, ok)
		}
		if again, _, ok2 := RouteTemplate(tpl); again != tpl || ok2 {
			t.Fatalf("template of template %q = %q (id %v)", tpl, again, ok2)
		}
		if ok && (id < 0 || !strings.Contains(tpl, "{id}")) {
			t.Fatalf("RouteTemplate(%q) = %q, %d, true", cleaned, tpl, id)
		}
	})
}

func FuzzClientKey(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::ffff:1.2.3.4", "2001:db8::1", "2001:db8::/64", "fe80::1%eth0", "x{y}", "", "1.2.3.0/24"} {
		f.Add(s, 64)
	}
	f.Fuzz(func(t *testing.T, key string, prefix int) {
		if prefix < 1 || prefix > 128 {
			prefix = 64
		}
		k := ClientKey(key, prefix)
		if k == "" || strings.ContainsAny(k, "{}") {
			t.Fatalf("ClientKey(%q) = %q", key, k)
		}
		if again := ClientKey(k, prefix); again != k {
			t.Fatalf("ClientKey not idempotent: %q → %q → %q", key, k, again)
		}
	})
}

func FuzzMatchUserAgent(f *testing.F) {
	f.Add("Mozilla/5.0 python-REQUESTS/2", "python-requests")
	f.Add("curl", "CURL")
	f.Add("cur", "curl")
	f.Add(strings.Repeat("x", 600)+"Wget", "wget")
	f.Fuzz(func(t *testing.T, ua, pattern string) {
		if !isASCII(ua) || !isASCII(pattern) {
			return
		}
		want := ua != "" && pattern != "" && strings.Contains(strings.ToLower(ua), strings.ToLower(pattern))
		if got := matchUserAgent([]string{pattern}, ua); got != want {
			t.Fatalf("matchUserAgent(%q, %q) = %v, want %v", pattern, ua, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Issue 18: the spellings that share a quota are one endpoint for the
// distinct-endpoint window and hit sensitive paths alike (case aside:
// behaviour keeps case, sensitive paths match case-insensitively).
func TestSpellingsAreOneEndpoint(t *testing.T) {
	cfg := DefaultBehaviorConfig()
	want := Observe(cfg, "c", &Request{Path: "/api/generate/"}, time.Time{}).Endpoint
	for _, p := range pathnorm.AttackSpellings {
		if strings.Contains(p, "API") {
			continue
		}
		if got := Observe(cfg, "c", &Request{Path: p}, time.Time{}).Endpoint; got != want {
			t.Errorf("%q is another endpoint than /api/generate/ (cleaned %q)", p, CleanPath(p))
		}
	}
	for _, p := range []string{"/x/..;/admin", "//ADMIN/", "/%2e%2e/.env;x", "/api/%2e/../wp-login.php", "/a%2F..%2Fadmin"} {
		if !matchSensitive(cfg.SensitivePaths, CleanPath(p)) {
			t.Errorf("%q (cleaned %q) is not sensitive", p, CleanPath(p))
		}
	}
	_, id, ok := templateHash(CleanPath("/users/;x=1/7;y/"))
	if !ok || id != 7 {
		t.Errorf("ID behind params: %d %v", id, ok)
	}
}

func TestBanKey(t *testing.T) {
	cases := map[string]struct {
		in, want string
		tooWide  bool
	}{
		"IPv4 address":        {in: "192.0.2.7", want: "192.0.2.7"},
		"mapped address":      {in: "::ffff:192.0.2.7", want: "192.0.2.7"},
		"IPv6 address":        {in: "2001:db8::7", want: "2001:db8::/64"},
		"IPv4 /32":            {in: "192.0.2.7/32", want: "192.0.2.7"},
		"IPv4 network masked": {in: "10.1.2.3/16", want: "10.1.0.0/16"},
		"IPv4 too wide":       {in: "10.0.0.0/15", tooWide: true},
		"IPv4 everything":     {in: "0.0.0.0/0", tooWide: true},
		"IPv6 group":          {in: "2001:db8::/64", want: "2001:db8::/64"},
		"IPv6 narrower":       {in: "2001:db8::1/96", want: "2001:db8::/64"},
		"IPv6 network":        {in: "2001:db8:ff::/32", want: "2001:db8::/32"},
		"IPv6 too wide":       {in: "2001:db8::/31", tooWide: true},
		"IPv6 everything":     {in: "::/0", tooWide: true},
		"mapped network":      {in: "::ffff:10.1.0.0/112", want: "10.1.0.0/16"},
		"mapped network wide": {in: "::ffff:10.0.0.0/104", tooWide: true},
		"mapped everything":   {in: "::ffff:0.0.0.0/96", tooWide: true},
		"mapped host":         {in: "::ffff:10.1.2.3/128", want: "10.1.2.3"},
		"not an address":      {in: "x{y}", want: "x_y_"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := BanKey(tc.in, 64, 16, 32)
			if tc.tooWide {
				if !errors.Is(err, ErrBanTooWide) {
					t.Fatalf("BanKey(%q) = %q, %v; want ErrBanTooWide", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("BanKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
