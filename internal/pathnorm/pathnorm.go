// Package pathnorm is the one canonical form of a request path that
// quotas, behaviour scoring and reports compare: every spelling an
// upstream would route to the same handler becomes one string, so
// "//API/./generate;x=1/" spends the same quota as "/api/generate/".
//
// Normalize, in order:
//
//  1. drops the query and fragment ('?', '#');
//  2. decodes percent-escapes of unreserved characters (RFC 3986 section
//     2.3: ALPHA DIGIT - . _ ~, so %2e/%2E is a dot) and of '/' (%2F: WSGI,
//     Rack and most servlet containers hand the decoded path to the router,
//     so "/api%2Fgenerate/" reaches "/api/generate/"); every other valid
//     escape is kept, its hex digits upper-cased (RFC 3986 section
//     6.2.2.1), and a '%' that starts no valid escape becomes %25.
//     Decoding happens once: "%252e" stays "%252E";
//  3. strips ";params" from every segment ("/api/generate;x=1",
//     Tomcat's "/..;/");
//  4. merges repeated slashes and removes dot segments ("/./", "/../",
//     RFC 3986 section 5.2.4; ".." never climbs above the root);
//  5. lower-cases ASCII letters unless Options.CaseSensitive;
//  6. drops a trailing slash unless Options.TrailingSlash is Strict.
//
// Not decoded: %20 and every other reserved or non-ASCII escape. A space
// is not unreserved; "/api/generate%20/" names another resource (the
// routers behind smartlayer answer it 404), and decoding it would only let
// two different paths collide.
//
// The result always starts with '/'. A path that needs none of these steps
// is returned as is, without allocating.
package pathnorm

import (
	"strings"
)

// TrailingSlash says whether "/a/" and "/a" are one path.
type TrailingSlash string

const (
	// Ignore treats "/a/" as "/a" (the default).
	Ignore TrailingSlash = "ignore"
	// Strict keeps them apart.
	Strict TrailingSlash = "strict"
)

// Options tune the two steps that depend on the upstream.
type Options struct {
	// CaseSensitive keeps letters' case ("/API" ≠ "/api").
	CaseSensitive bool
	// TrailingSlash is Ignore (the zero value) or Strict.
	TrailingSlash TrailingSlash
}

// Normalize returns p's canonical form under o (see the package comment).
func Normalize(p string, o Options) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if plain(p, o) {
		return p
	}
	// "/api/generate/" with the trailing slash ignored: a substring.
	if n := len(p); n > 1 && p[n-1] == '/' && o.TrailingSlash != Strict && plain(p[:n-1], o) {
		return p[:n-1]
	}
	return normalize(p, o)
}

// plain reports whether p is already canonical under o.
func plain(p string, o Options) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if len(p) > 1 && p[len(p)-1] == '/' && o.TrailingSlash != Strict {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c == ';':
			return false
		case c == '/':
			// "//", "/." (dot segments; a segment merely starting with a dot
			// takes the slow path too).
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return false
			}
		case 'A' <= c && c <= 'Z':
			if !o.CaseSensitive {
				return false
			}
		}
	}
	return true
}

func normalize(p string, o Options) string {
	d := decode(p)
	// Segments, each without its ;params; empty ones (repeated slashes) and
	// "." are dropped, ".." removes the one before.
	segs := make([]string, 0, strings.Count(d, "/")+1)
	trailing := false
	for seg := range strings.SplitSeq(d, "/") {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		trailing = false
		switch seg {
		case "":
			trailing = true
		case ".":
			trailing = true
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			trailing = true
		default:
			segs = append(segs, seg)
		}
	}
	var b strings.Builder
	b.Grow(len(d) + 1)
	for _, s := range segs {
		b.WriteByte('/')
		if o.CaseSensitive {
			b.WriteString(s)
			continue
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
	}
	if len(segs) == 0 {
		return "/"
	}
	if trailing && o.TrailingSlash == Strict {
		b.WriteByte('/')
	}
	return b.String()
}

// decode decodes the escapes of unreserved characters and '/', and
// upper-cases the hex digits of the escapes it keeps.
func decode(p string) string {
	i := strings.IndexByte(p, '%')
	if i < 0 {
		return p
	}
	b := make([]byte, 0, len(p))
	b = append(b, p[:i]...)
	for ; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			if v, ok := unhex2(p[i+1], p[i+2]); ok {
				if unreserved(v) || v == '/' {
					b = append(b, v)
				} else {
					b = append(b, '%', upperHex(p[i+1]), upperHex(p[i+2]))
				}
				i += 2
				continue
			}
		}
		if c == '%' {
			// A stray '%' is spelt %25, so a decoded escape after it cannot
			// form a new one ("%%36%37" must not become "%67", then "g").
			b = append(b, "%25"...)
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func unhex2(a, b byte) (byte, bool) {
	x, ok1 := Unhex(a)
	y, ok2 := Unhex(b)
	return x<<4 | y, ok1 && ok2
}

// Unhex is the value of one hexadecimal digit (either case); payload's
// decoders use it too.
func Unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
