package quota

import (
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	cases := map[string]struct {
		plans plans
		want  []string // every line must appear in the error
	}{
		"negative limit": {
			plans: plans{"free": {"/api/generate/": {"per_minute": -1}}},
			want:  []string{`quota.plans.free["/api/generate/"].per_minute: must be ≥ 0, got -1`},
		},
		"limit too large": {
			plans: plans{"free": {"/a": {"per_day": 50_000_001, "lifetime": 50_000_001}}},
			want:  []string{`quota.plans.free["/a"].per_day: must be ≤ 50000000, got 50000001`},
		},
		"unknown window": {
			plans: plans{"free": {"/a": {"per_week": 1}}},
			want:  []string{`quota.plans.free["/a"].per_week: unknown window (want per_minute, per_hour, per_day or lifetime)`},
		},
		"no limits": {
			plans: plans{"free": {"/a": {}}},
			want:  []string{`quota.plans.free["/a"]: no limits`},
		},
		"empty plan": {
			plans: plans{"free": {}},
			want:  []string{`quota.plans.free: plan has no routes`},
		},
		"empty plan name": {
			plans: plans{"": {"/a": {"per_minute": 1}}},
			want:  []string{`quota.plans[""]: plan name must not be empty`},
		},
		"plan name with a colon": {
			plans: plans{"a:b": {"/a": {"per_minute": 1}}},
			want:  []string{`quota.plans["a:b"]: plan name may use only letters, digits, '_', '-' and '.', got ':'`},
		},
		"route without slash": {
			plans: plans{"free": {"api": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["api"]: route must start with '/'`},
		},
		"placeholder not a whole segment": {
			plans: plans{"free": {"/users/id{id}/x": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/users/id{id}/x"]: bad placeholder "id{id}": a placeholder must be a whole segment like {id}`},
		},
		"empty placeholder": {
			plans: plans{"free": {"/users/{}/x": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/users/{}/x"]: bad placeholder "{}"`},
		},
		"placeholder bad name": {
			plans: plans{"free": {"/users/{1d}": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/users/{1d}"]: bad placeholder "{1d}"`},
		},
		"unclosed placeholder": {
			plans: plans{"free": {"/users/{id": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/users/{id"]: bad placeholder "{id"`},
		},
		"duplicate placeholder": {
			plans: plans{"free": {"/a/{id}/{id}": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/a/{id}/{id}"]: placeholder {id} appears twice`},
		},
		"star in the middle": {
			plans: plans{"free": {"/a/*/b": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/a/*/b"]: '*' is only allowed as the last character (prefix route)`},
		},
		"placeholder in a prefix": {
			plans: plans{"free": {"/a/{id}/*": {"per_minute": 1}}},
			want:  []string{`quota.plans.free["/a/{id}/*"]: a prefix route cannot have placeholders`},
		},
		"ambiguous templates across plans": {
			plans: plans{"free": {"/u/{id}/x": {"per_minute": 1}}, "pro": {"/u/{uid}/x": {"per_minute": 1}}},
			want:  []string{`quota.plans.pro["/u/{uid}/x"]: matches the same paths as "/u/{id}/x" (only placeholder names differ)`},
		},
		"every problem reported": {
			plans: plans{"free": {"/a": {"per_minute": -1, "per_hour": -2}}, "pro": {"b": {"per_day": 1}}},
			want: []string{
				`quota.plans.free["/a"].per_minute: must be ≥ 0, got -1`,
				`quota.plans.free["/a"].per_hour: must be ≥ 0, got -2`,
				`quota.plans.pro["b"]: route must start with '/'`,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := Compile(tc.plans)
			if err == nil {
				t.Fatalf("Compile succeeded (%d routes), want an error", tab.routes)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			if got, want := strings.Count(err.Error(), "\n")+1, len(tc.want); got != want {
				t.Errorf("%d problems reported, want %d:\n%v", got, want, err)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	tab, err := Compile(plans{
		"free":    {"/api/generate/": {"per_minute": 2, "per_hour": 20, "per_day": 100, "lifetime": 1000}},
		"premium": {"/api/generate/": {"per_minute": 50, "per_day": 5000}, "/api/analytics/": {"per_minute": 0}},
		"pro-2.x": {"/v1/models/{model_id}/predict": {"lifetime": 1_000_000_000_000_000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tab.Plans(), ","); got != "free,premium,pro-2.x" {
		t.Errorf("Plans() = %s", got)
	}
	pr := tab.exact["/api/generate"].plans["free"]
	if len(pr.timed) != 3 || pr.timed[0] != (timedLimit{PerMinute, 2}) || pr.timed[2] != (timedLimit{PerDay, 100}) || pr.life != 1000 {
		t.Errorf("free limits = %+v", pr)
	}
	if pr := tab.exact["/api/generate"].plans["premium"]; len(pr.timed) != 2 || pr.life != -1 {
		t.Errorf("premium limits = %+v", pr)
	}
}

func TestRouteMatching(t *testing.T) {
	tab := mustCompile(t, plans{"p": {
		"/api/export/":          {"per_minute": 1},
		"/api/export/*":         {"per_minute": 1},
		"/api/*":                {"per_minute": 1},
		"/api/export/big/*":     {"per_minute": 1},
		"/users/{id}/export":    {"per_minute": 1},
		"/users/me/{what}":      {"per_minute": 1},
		"/users/me/export":      {"per_minute": 1},
		"/users/{id}/{what}":    {"per_minute": 1},
		"/orgs/{org}/users/{u}": {"per_minute": 1},
		"/":                     {"per_minute": 1},
	}})
	cases := map[string]struct{ path, want string }{
		"exact beats prefix":          {"/api/export/", "/api/export/"},
		"longer prefix wins":          {"/api/export/big/1", "/api/export/big/*"},
		"prefix":                      {"/api/export/x", "/api/export/*"},
		"shorter prefix":              {"/api/exports", "/api/*"},
		"exact beats template":        {"/users/me/export", "/users/me/export"},
		"more literals win":           {"/users/42/export", "/users/{id}/export"},
		"earlier literal wins":        {"/users/me/settings", "/users/me/{what}"},
		"fewest literals last":        {"/users/42/settings", "/users/{id}/{what}"},
		"template beats prefix":       {"/users/42/export", "/users/{id}/export"},
		"placeholder needs a segment": {"/users//export", ""},
		"trailing slash ignored":      {"/users/42/export/", "/users/{id}/export"},
		"two placeholders":            {"/orgs/acme/users/7", "/orgs/{org}/users/{u}"},
		"too few segments":            {"/orgs/acme/users", ""},
		"root exact":                  {"/", "/"},
		"unrouted":                    {"/health", ""},
		"query ignored":               {"/api/export/?a=b", "/api/export/"},
		"unreserved escapes decoded":  {"/%75sers/%4D%46/export", "/users/{id}/export"},
		"encoded slash separates":     {"/users/a%2Fb/export", ""},
		"reserved escapes kept":       {"/users/a%3Fb/export", "/users/{id}/export"},
		"case folded":                 {"/USERS/Me/Export", "/users/me/export"},
		"dot segments":                {"/users/x/../me/./export", "/users/me/export"},
		"prefix directory itself":     {"/api/export/big", "/api/export/big/*"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := tab.Route(tc.path)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("Route(%q) = %q, %v; want %q", tc.path, got, ok, tc.want)
			}
		})
	}
}

// FuzzCompileRoute feeds arbitrary route keys and paths through Compile and
// matching: no panic, and a compiled exact or template route matches its
// own instantiation.
func FuzzCompileRoute(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/generate/", "/api/generate/"},
		{"/users/{id}/export", "/users/1/export"},
		{"/api/export/*", "/api/export/x"},
		{"/a/{b}/{c}", "/a//"},
		{"/{x}", "/"},
		{"/a/*", "/a"},
		{"/u/{id", "/u/1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, path string) {
		if len(key) > 512 || len(path) > 512 {
			return
		}
		tab, err := Compile(plans{"p": {key: {"per_minute": 1}}})
		if err != nil {
			if tab != nil {
				t.Fatal("table with error")
			}
			return
		}
		_, _ = tab.Route(path)
		r, _ := parseRoute(key)
		switch r.kind {
		case kindExact, kindPrefix:
			self := strings.TrimSuffix(key, "*")
			if got, ok := tab.Route(self); !ok || got != key {
				t.Fatalf("route %q does not match %q (got %q)", key, self, got)
			}
		case kindTemplate:
			inst := strings.Split(key, "/")
			for i, s := range inst {
				if strings.HasPrefix(s, "{") {
					inst[i] = "x"
				}
			}
			p := strings.Join(inst, "/")
			if got, ok := tab.Route(p); !ok || got != key {
				t.Fatalf("template %q does not match %q (got %q)", key, p, got)
			}
		}
	})
}
