package quota

import (
	"context"
	"testing"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
)

// Issue 18: every spelling of "/api/generate/" spends the one
// "/api/generate/" quota, in memory and in Redis. With a limit of N
// spellings, the last allowed Take leaves 0 and one more is denied.
func TestAttackSpellingsShareOneQuota(t *testing.T) {
	spellings := pathnorm.AttackSpellings
	limit := int64(len(spellings))
	for bname, newLimiter := range backends() {
		t.Run(bname, func(t *testing.T) {
			l := newLimiter(t, mustCompile(t, plans{"free": {"/api/generate/": {"per_day": limit}}}))
			subject := uniq(t, "mallory")
			for i, p := range spellings {
				res, err := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: p}, base)
				if err != nil {
					t.Fatal(err)
				}
				if res.Decision != Allowed || res.Route != "/api/generate/" || res.Remaining != limit-int64(i)-1 {
					t.Fatalf("%q: %+v, want allowed on /api/generate/ with %d left", p, res, limit-int64(i)-1)
				}
			}
			for _, p := range spellings {
				res, err := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: p}, base)
				if err != nil || res.Decision != Denied {
					t.Fatalf("%q after the quota is spent: %+v %v", p, res, err)
				}
			}
			// %20 is not unreserved: "/api/generate%20/" is another path
			// (the upstream's router answers 404), not this route.
			res, err := l.Take(context.Background(), Key{Subject: subject, Plan: "free", Path: "/api/generate%20/"}, base)
			if err != nil || res.Decision != NoRoute {
				t.Fatalf("%%20: %+v %v", res, err)
			}
		})
	}
}

// quota.case_sensitive and quota.trailing_slash: strict keep spellings
// apart that the defaults merge; every other step still applies.
func TestPathOptions(t *testing.T) {
	p := plans{"free": {"/api/generate/": {"per_minute": 5}, "/Users/{id}/": {"per_minute": 5}}}
	cases := map[string]struct {
		cfg   func(*Config)
		path  string
		route string
	}{
		"default folds case":          {nil, "/API/Generate", "/api/generate/"},
		"default folds template":      {nil, "/users/7", "/Users/{id}/"},
		"case sensitive":              {func(c *Config) { c.CaseSensitive = true }, "/API/generate/", ""},
		"case sensitive literal":      {func(c *Config) { c.CaseSensitive = true }, "/Users/7/", "/Users/{id}/"},
		"case sensitive dots":         {func(c *Config) { c.CaseSensitive = true }, "/x/..;/api/./generate//", "/api/generate/"},
		"strict trailing slash":       {func(c *Config) { c.TrailingSlash = pathnorm.Strict }, "/api/generate", ""},
		"strict keeps slash":          {func(c *Config) { c.TrailingSlash = pathnorm.Strict }, "//api/%2e/generate/;x=1", "/api/generate/"},
		"strict template":             {func(c *Config) { c.TrailingSlash = pathnorm.Strict }, "/users/7", ""},
		"strict template with slash":  {func(c *Config) { c.TrailingSlash = pathnorm.Strict }, "/users/7/", "/Users/{id}/"},
		"strict encoded slash folded": {func(c *Config) { c.TrailingSlash = pathnorm.Strict }, "/API%2Fgenerate/", "/api/generate/"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Plans = p
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			tab, err := cfg.Compile()
			if err != nil {
				t.Fatal(err)
			}
			got, ok := tab.Route(tc.path)
			if got != tc.route || ok != (tc.route != "") {
				t.Errorf("Route(%q) = %q, %v; want %q", tc.path, got, ok, tc.route)
			}
		})
	}
}

// Two keys that normalize alike are one route: Compile names both.
func TestCompileRejectsKeysEqualOnceNormalized(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plans = plans{"free": {"/api/generate/": {"per_minute": 1}, "/API/generate": {"per_minute": 2}}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("accepted /api/generate/ and /API/generate")
	}
	t.Log(err)
	cfg.CaseSensitive, cfg.TrailingSlash = true, pathnorm.Strict
	if err := cfg.Validate(); err != nil {
		t.Fatalf("strict and case-sensitive: %v", err)
	}
	cfg.TrailingSlash = "sometimes"
	if err := cfg.Validate(); err == nil || err.Error() != "quota.trailing_slash: must be one of ignore, strict (got sometimes)" {
		t.Fatalf("bad trailing_slash: %v", err)
	}
}
