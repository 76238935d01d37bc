package pathnorm

import (
	"strings"
	"testing"
)

var (
	def    = Options{}
	strict = Options{TrailingSlash: Strict}
	cased  = Options{CaseSensitive: true}
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		name string
		in   string
		o    Options
		want string
	}{
		{"plain", "/api/generate", def, "/api/generate"},
		{"root", "/", def, "/"},
		{"empty", "", def, "/"},
		{"no leading slash", "api/x", def, "/api/x"},
		{"query", "/a?b=%41", def, "/a"},
		{"fragment", "/a#x", def, "/a"},
		{"only query", "?x", def, "/"},
		{"trailing ignored", "/api/generate/", def, "/api/generate"},
		{"trailing strict", "/api/generate/", strict, "/api/generate/"},
		{"no trailing strict", "/api/generate", strict, "/api/generate"},
		{"case folded", "/API/Generate/", def, "/api/generate"},
		{"case kept", "/API/Generate/", cased, "/API/Generate"},
		{"merged slashes", "//api//generate//", strict, "/api/generate/"},
		{"dot", "/api/./generate/", strict, "/api/generate/"},
		{"dot dot", "/x/../api/generate", def, "/api/generate"},
		{"dot dot at root", "/../../api", def, "/api"},
		{"final dot", "/api/.", strict, "/api/"},
		{"final dot dot", "/api/x/..", strict, "/api/"},
		{"dotfile kept", "/.env", def, "/.env"},
		{"dots in name", "/a..b/...", def, "/a..b/..."},
		{"encoded dot", "/api/%2e/generate/", strict, "/api/generate/"},
		{"encoded dot upper", "/api/%2E%2E/x", def, "/x"},
		{"encoded dot dot mixed", "/a/.%2e/b", def, "/b"},
		{"encoded slash", "/api%2Fgenerate/", strict, "/api/generate/"},
		{"encoded slash lower", "/api%2fgenerate", def, "/api/generate"},
		{"encoded slash traversal", "/a%2F..%2Fadmin", def, "/admin"},
		{"unreserved", "/%61%2D%2e%5F%7e%5A%39", cased, "/a-._~Z9"},
		{"space kept", "/api/generate%20/", def, "/api/generate%20"},
		{"reserved kept upper", "/a%3fb%3Bc%25", cased, "/a%3Fb%3Bc%25"},
		{"decode once", "/%252e%252e/x", def, "/%252e%252e/x"},
		{"bad escape", "/a%zz%4", def, "/a%25zz%254"},
		{"trailing percent", "/a%", def, "/a%25"},
		{"stray percent before escapes", "/%%36%37", def, "/%2567"},
		{"params", "/api/generate;x=1", def, "/api/generate"},
		{"params after slash", "/api/generate/;x=1", strict, "/api/generate/"},
		{"params per segment", "/a;v=1/b;jsessionid=2/c", def, "/a/b/c"},
		{"tomcat traversal", "/x/..;/admin", def, "/admin"},
		{"tomcat dot", "/api/.;x/generate", def, "/api/generate"},
		{"encoded param kept", "/a%3Bx=1", def, "/a%3bx=1"},
		{"all at once", "//API/./x/..;/%67enerate;x=1//?q", strict, "/api/generate/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Normalize(tc.in, tc.o); got != tc.want {
				t.Errorf("Normalize(%q, %+v) = %q, want %q", tc.in, tc.o, got, tc.want)
			}
		})
	}
}

// The attack list of issue 18: every spelling is one quota route.
func TestAttackSpellings(t *testing.T) {
	for _, p := range AttackSpellings {
		if got := Normalize(p, def); got != "/api/generate" {
			t.Errorf("Normalize(%q) = %q, want /api/generate", p, got)
		}
	}
	if got := Normalize("/api/generate%20/", def); got == "/api/generate" {
		t.Errorf("%%20 decoded: %q", got)
	}
}

func TestPlainDoesNotAllocate(t *testing.T) {
	for _, p := range []string{"/api/generate", "/api/generate/", "/users/42/export", "/", "/a-b_c~d/e.json"} {
		if n := testing.AllocsPerRun(100, func() { _ = Normalize(p, def) }); n != 0 {
			t.Errorf("Normalize(%q) allocates %v times", p, n)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range append([]string{"/", "", "%", "/%%36%37", "/%zz", "/a?b", "/..;/", "/%2e%2E/", "//", "/A/%c3%a9/", "/;", "/.;/"}, AttackSpellings...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, o := range []Options{def, strict, cased, {CaseSensitive: true, TrailingSlash: Strict}} {
			got := Normalize(p, o)
			if got == "" || got[0] != '/' {
				t.Fatalf("Normalize(%q, %+v) = %q: no leading slash", p, o, got)
			}
			if again := Normalize(got, o); again != got {
				t.Fatalf("not idempotent under %+v: %q → %q → %q", o, p, got, again)
			}
			if strings.Contains(got, "//") || strings.ContainsAny(got, "?#;") {
				t.Fatalf("Normalize(%q, %+v) = %q", p, o, got)
			}
			for seg := range strings.SplitSeq(got[1:], "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("Normalize(%q, %+v) = %q keeps a dot segment", p, o, got)
				}
			}
			if o.TrailingSlash != Strict && len(got) > 1 && got[len(got)-1] == '/' {
				t.Fatalf("Normalize(%q, %+v) = %q keeps a trailing slash", p, o, got)
			}
			if !o.CaseSensitive && got != lowerASCII(got) {
				t.Fatalf("Normalize(%q, %+v) = %q keeps upper case", p, o, got)
			}
		}
		// The options only decide the last two steps.
		s := Normalize(p, Options{CaseSensitive: true, TrailingSlash: Strict})
		if got := Normalize(p, def); got != Normalize(lowerASCII(s), def) {
			t.Fatalf("default %q is not the strict, case-sensitive %q folded", got, s)
		}
	})
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
