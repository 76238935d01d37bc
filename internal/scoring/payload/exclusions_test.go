package payload

import (
	"context"
	"strings"
	"testing"
)

func TestExclusions(t *testing.T) {
	html := `<img src=x onerror=alert(1)>`
	body := []byte(`{"html":"` + html + `","title":"` + html + `"}`)
	tests := map[string]struct {
		excl  []Exclusion
		path  string
		query string
		block bool
	}{
		"none":                 {path: "/cms/pages/1", block: true},
		"field and rule":       {excl: []Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.html", "body:$.title"}, Rules: []string{"xss"}}}, path: "/cms/pages/1"},
		"other field blocks":   {excl: []Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.html"}, Rules: []string{"xss"}}}, path: "/cms/pages/1", block: true},
		"other route blocks":   {excl: []Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.*"}, Rules: []string{"xss"}}}, path: "/api/pages/1", block: true},
		"prefix is a segment":  {excl: []Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.*"}}}, path: "/cms/pagesX/1", block: true},
		"route itself":         {excl: []Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.*"}}}, path: "/cms/pages"},
		"normalised path":      {excl: []Exclusion{{Route: "/cms/pages/*", Fields: []string{"body:$.*"}}}, path: "/CMS//pages/./1"},
		"exact route":          {excl: []Exclusion{{Route: "/cms/pages/1", Rules: []string{"payload.xss"}}}, path: "/cms/pages/1"},
		"exact route, other":   {excl: []Exclusion{{Route: "/cms/pages/1", Rules: []string{"payload.xss"}}}, path: "/cms/pages/2", block: true},
		"other rule blocks":    {excl: []Exclusion{{Route: "/cms/*", Fields: []string{"body:$.*"}, Rules: []string{"sqli"}}}, path: "/cms/pages/1", block: true},
		"rule name prefix":     {excl: []Exclusion{{Route: "/cms/*", Rules: []string{"payload.xss"}}}, path: "/cms/pages/1"},
		"query still blocks":   {excl: []Exclusion{{Route: "/cms/*", Fields: []string{"body:*"}}}, path: "/cms/p", query: "q=%27%20OR%20%271%27%3D%271", block: true},
		"query field excluded": {excl: []Exclusion{{Route: "/cms/*", Fields: []string{"body:*", "query:q"}}}, path: "/cms/p", query: "q=%27%20OR%20%271%27%3D%271"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Exclusions = tc.excl
			v := newTestValidator(t, cfg)
			res := v.Inspect(context.Background(), &Input{Path: tc.path, RawQuery: tc.query, ContentType: "application/json", Body: body})
			if (res.Action == Block) != tc.block {
				t.Errorf("block = %v, want %v: %+v", res.Action == Block, tc.block, res.Findings)
			}
		})
	}
}

// A value waived in an excluded field is still inspected where it is not:
// the clean-value memo must not carry the waiver.
func TestExclusionDoesNotMemoise(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Exclusions = []Exclusion{{Route: "/*", Fields: []string{"body:$.a"}}}
	v := newTestValidator(t, cfg)
	res := v.Inspect(context.Background(), &Input{Path: "/x", ContentType: "application/json",
		Body: []byte(`{"a":"<script>alert(1)</script>","b":"<script>alert(1)</script>"}`)})
	if res.Action != Block || !hasFinding(res, "xss", "body:$.b") || hasFinding(res, "xss", "body:$.a") {
		t.Errorf("%+v", res)
	}
}

func TestExclusionWaivesPolicy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PartialBody = PartialDeny
	cfg.Exclusions = []Exclusion{{Route: "/upload/*", Fields: []string{"body"}, Rules: []string{"partial_body", "undecodable_charset"}}}
	v := newTestValidator(t, cfg)
	for path, want := range map[string]Action{"/upload/x": Allow, "/other": Block} {
		for _, in := range []Input{
			{Path: path, ContentType: "text/plain", Body: []byte("hello"), PartialBody: true},
			{Path: path, ContentType: "text/plain; charset=x-nope", Body: []byte("hello")},
		} {
			if res := v.Inspect(context.Background(), &in); res.Action != want {
				t.Errorf("%s %q: %v, want %v", path, in.ContentType, res.Action, want)
			}
		}
	}
}

func TestSetConfig(t *testing.T) {
	v := newTestValidator(t, DefaultConfig())
	in := &Input{Path: "/cms/p", RawQuery: "html=%3Cscript%3Ealert(1)%3C/script%3E"}
	if v.Inspect(context.Background(), in).Action != Block {
		t.Fatal("not blocked before")
	}
	cfg := DefaultConfig()
	cfg.Exclusions = []Exclusion{{Route: "/cms/*", Fields: []string{"query:html"}, Rules: []string{"xss"}}}
	if err := v.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if res := v.Inspect(context.Background(), in); res.Action != Allow {
		t.Fatalf("blocked after reload: %+v", res.Findings)
	}
	cfg.Exclusions[0].Rules = []string{"nonsense"}
	if err := v.SetConfig(cfg); err == nil {
		t.Fatal("bad rule accepted")
	}
	if res := v.Inspect(context.Background(), in); res.Action != Allow {
		t.Fatal("a rejected config was applied")
	}
}

func TestExclusionValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		e   Exclusion
		key string
	}{
		"relative route": {e: Exclusion{Route: "cms/*"}, key: "payload.exclusions[0].route"},
		"inner star":     {e: Exclusion{Route: "/a/*/b"}, key: "payload.exclusions[0].route"},
		"empty field":    {e: Exclusion{Route: "/a", Fields: []string{""}}, key: "payload.exclusions[0].fields[0]"},
		"unknown rule":   {e: Exclusion{Route: "/a", Rules: []string{"sqlinjection"}}, key: "payload.exclusions[0].rules[0]"},
		"everything":     {e: Exclusion{Route: "/*"}, key: "payload.exclusions[0]"},
	} {
		cfg := DefaultConfig()
		cfg.Exclusions = []Exclusion{tc.e}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want a problem at %s", name, err, tc.key)
		}
	}
	cfg := DefaultConfig()
	cfg.PartialBody = "maybe"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "payload.partial_body") {
		t.Errorf("partial_body: %v", err)
	}
}
