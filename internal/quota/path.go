package quota

import "strings"

// normalizePath prepares a request path for route matching: it drops a query
// string and decodes percent-escapes of unreserved characters (RFC 3986
// section 6.2.2.2), so "/api/%67enerate/" cannot dodge the "/api/generate/"
// quota. Reserved escapes such as %2F stay encoded: decoding them would change
// the segment structure the upstream sees. Paths without '%' or '?' are
// returned as is, without allocating.
func normalizePath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	i := strings.IndexByte(p, '%')
	if i < 0 {
		return p
	}
	var b []byte
	for ; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			if d, ok := unhex2(p[i+1], p[i+2]); ok && unreserved(d) {
				if b == nil {
					b = make([]byte, 0, len(p))
					b = append(b, p[:i]...)
				}
				b = append(b, d)
				i += 2
				continue
			}
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return p
	}
	return string(b)
}

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex2(a, b byte) (byte, bool) {
	x, ok1 := unhex(a)
	y, ok2 := unhex(b)
	return x<<4 | y, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
