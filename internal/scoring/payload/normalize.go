package payload

import (
	"html"
	"strings"
	"unicode/utf8"

	"github.com/smartlayer/smartlayer/internal/pathnorm"
	"golang.org/x/text/unicode/norm"
)

// maxDecodeRounds bounds the decode loop: each round applies every decoder
// once, so four rounds unwrap up to four nested encodings while keeping the
// cost linear in the input.
const maxDecodeRounds = 4

// layers records which decoders changed a value. The encoding_trick
// detector reads it: a legitimate client URL-encodes a query value once;
// anything stacked on top is an attempt to slip past a filter.
type layers struct {
	url      uint8 // URL-decode rounds that changed the value
	html     bool  // HTML entities decoded
	escapes  bool  // \uXXXX or \xXX decoded
	percentU bool  // IIS-style %uXXXX seen
	overlong bool  // overlong UTF-8 sequence (e.g. %c0%ae) seen
	nfkc     bool  // Unicode compatibility forms folded (full-width ＜ to <)
	null     bool  // NUL byte present after decoding (and removed)
	extra    uint8 // decode rounds after the first (0 when nothing needed decoding)
}

// normalise decodes s until stable (bounded): URL decoding ('+' as space on
// the first round when plus is set), overlong UTF-8 (2 to 6 bytes), Unicode
// NFKC (full-width and other compatibility forms, so "＜script＞" reads as
// "<script>"), HTML entities and \uXXXX/\u{X…}/\xXX escapes; then removes
// NUL bytes. It returns s itself, without
// allocating, when nothing needed decoding.
func normalise(s string, plus bool) (string, layers) {
	if !needsDecoding(s, plus) {
		return s, layers{}
	}
	return decodeLayers(s, plus)
}

// decodeLayers is normalise without the needsDecoding shortcut.
func decodeLayers(s string, plus bool) (string, layers) {
	var l layers
	for round := 0; round < maxDecodeRounds; round++ {
		if round > 0 {
			l.extra++
		}
		changed := false
		if d, pu, ok := urlDecode(s, plus && round == 0); ok {
			s, changed = d, true
			l.url++
			l.percentU = l.percentU || pu
		}
		if d, ok := decodeOverlong(s); ok {
			s, changed, l.overlong = d, true, true
		}
		if hasNonASCII(s) {
			// String returns s itself when it is already NFKC.
			if d := norm.NFKC.String(s); d != s {
				s, changed, l.nfkc = d, true, true
			}
		}
		if d, ok := htmlDecode(s); ok {
			s, changed, l.html = d, true, true
		}
		if d, ok := decodeEscapes(s); ok {
			s, changed, l.escapes = d, true, true
		}
		if !changed {
			break
		}
	}
	if strings.IndexByte(s, 0) >= 0 {
		l.null = true
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s, l
}

// decodeTrigger marks the bytes some decoder of normalise needs: '%'
// (and '+' with plus) for urlDecode, '&' for htmlDecode, '\\' for
// decodeEscapes, NUL, and non-ASCII bytes for decodeOverlong and NFKC.
// A value without one is its own normal form; one pass over the table
// replaces the six scans the decoders would make to find nothing
// (normalise on "https://shop.example.com/p/17": 1,130 instructions,
// 250 with it; callgrind). TestFastPathsRandom and FuzzFastPaths check it.
var decodeTrigger = func() (t [256]uint8) {
	for _, c := range []byte{'%', '&', '\\', 0} {
		t[c] = 1
	}
	t['+'] = 2
	for c := 0x80; c < 0x100; c++ {
		t[c] = 1
	}
	return t
}()

// needsDecoding reports whether s has a decodeTrigger byte.
func needsDecoding(s string, plus bool) bool {
	mask := uint8(1)
	if plus {
		mask = 3
	}
	for i := 0; i < len(s); i++ {
		if decodeTrigger[s[i]]&mask != 0 {
			return true
		}
	}
	return false
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// hex4 parses four hex digits.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		v, ok := pathnorm.Unhex(s[i])
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// urlDecode percent-decodes s, leniently: malformed escapes stay as they
// are (an attacker's "%%32%65" must not stop decoding of the rest). It also
// decodes IIS-style %uXXXX and reports seeing one.
func urlDecode(s string, plus bool) (out string, percentU, changed bool) {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c == '%' || (plus && c == '+') {
			break
		}
	}
	if i == len(s) {
		return s, false, false
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+' && plus:
			b = append(b, ' ')
			changed = true
		case c == '%' && i+2 < len(s):
			if (s[i+1] == 'u' || s[i+1] == 'U') && i+5 < len(s) {
				if r, ok := hex4(s[i+2 : i+6]); ok {
					b = utf8.AppendRune(b, r)
					i += 5
					changed, percentU = true, true
					continue
				}
			}
			h, ok1 := pathnorm.Unhex(s[i+1])
			l, ok2 := pathnorm.Unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, h<<4|l)
				i += 2
				changed = true
				continue
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	if !changed {
		return s, false, false
	}
	return string(b), percentU, true
}

// decodeOverlong rewrites overlong UTF-8 sequences (the classic %c0%ae for
// '.' and %c0%af for '/') to the character they spell. Decoders that accept
// them turn "..%c0%af" into "../"; Go's UTF-8 handling would turn them into
// U+FFFD and hide the traversal.
func decodeOverlong(s string) (string, bool) {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c == 0xc0 || c == 0xc1 || c == 0xe0 || c == 0xf0 || c >= 0xf8 && c <= 0xfd {
			break
		}
	}
	if i == len(s) {
		return s, false
	}
	var b []byte
	flush := func(upto int) {
		if b == nil {
			b = make([]byte, 0, len(s))
			b = append(b, s[:upto]...)
		}
	}
	isCont := func(c byte) bool { return c&0xc0 == 0x80 }
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case (c == 0xc0 || c == 0xc1) && i+1 < len(s) && isCont(s[i+1]):
			flush(i)
			b = utf8.AppendRune(b, rune(c&0x1f)<<6|rune(s[i+1]&0x3f))
			i++
			continue
		case c == 0xe0 && i+2 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f && isCont(s[i+2]):
			flush(i)
			b = utf8.AppendRune(b, rune(s[i+1]&0x3f)<<6|rune(s[i+2]&0x3f))
			i += 2
			continue
		case c == 0xf0 && i+3 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x8f && isCont(s[i+2]) && isCont(s[i+3]):
			flush(i)
			b = utf8.AppendRune(b, rune(s[i+1]&0x3f)<<12|rune(s[i+2]&0x3f)<<6|rune(s[i+3]&0x3f))
			i += 3
			continue
		case c >= 0xf8 && c <= 0xfd:
			// The obsolete 5- and 6-byte forms (RFC 2279): never valid,
			// still decoded by some old parsers ("%f8%80%80%80%ae").
			n := 4
			r := rune(c & 0x03)
			if c >= 0xfc {
				n, r = 5, rune(c&0x01)
			}
			if i+n >= len(s) {
				break
			}
			ok := true
			for k := 1; k <= n; k++ {
				if !isCont(s[i+k]) {
					ok = false
					break
				}
				r = r<<6 | rune(s[i+k]&0x3f)
			}
			if !ok || r > utf8.MaxRune {
				break
			}
			flush(i)
			b = utf8.AppendRune(b, r)
			i += n
			continue
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return s, false
	}
	return string(b), true
}

// htmlDecode unescapes HTML character references when s has something that
// looks like one ('&' followed by a letter or '#'), so "AT&T" costs nothing.
func htmlDecode(s string) (string, bool) {
	for i := strings.IndexByte(s, '&'); i >= 0 && i+1 < len(s); {
		c := s[i+1]
		if c == '#' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
			d := html.UnescapeString(s)
			return d, d != s
		}
		j := strings.IndexByte(s[i+1:], '&')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return s, false
}

// decodeEscapes decodes \uXXXX, \u{X…} and \xXX escapes (JavaScript,
// JSON-in-text, Python). Other backslashes stay, so Windows paths survive.
func decodeEscapes(s string) (string, bool) {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s, false
	}
	var b []byte
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'u', 'U':
				if r, n, ok := hexBraced(s[i+2:]); ok {
					if b == nil {
						b = append(make([]byte, 0, len(s)), s[:i]...)
					}
					b = utf8.AppendRune(b, r)
					i += 1 + n
					continue
				}
				if r, ok := hex4(s[i+2:]); ok {
					if b == nil {
						b = append(make([]byte, 0, len(s)), s[:i]...)
					}
					b = utf8.AppendRune(b, r)
					i += 5
					continue
				}
			case 'x', 'X':
				if i+3 < len(s) {
					h, ok1 := pathnorm.Unhex(s[i+2])
					l, ok2 := pathnorm.Unhex(s[i+3])
					if ok1 && ok2 {
						if b == nil {
							b = append(make([]byte, 0, len(s)), s[:i]...)
						}
						b = append(b, h<<4|l)
						i += 3
						continue
					}
				}
			}
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return s, false
	}
	return string(b), true
}

// hexBraced parses the "{41}" of an ES6 "\u{41}" escape: one to six hex
// digits in braces, at most U+10FFFF. n is the length including braces.
func hexBraced(s string) (r rune, n int, ok bool) {
	if len(s) < 3 || s[0] != '{' {
		return 0, 0, false
	}
	for n = 1; n < len(s) && n <= 7; n++ {
		if s[n] == '}' {
			if n == 1 || r > utf8.MaxRune {
				return 0, 0, false
			}
			return r, n + 1, true
		}
		v, ok := pathnorm.Unhex(s[n])
		if !ok {
			return 0, 0, false
		}
		r = r<<4 | rune(v)
	}
	return 0, 0, false
}

// stripSQLComments replaces /* ... */ with a space, so "UN/**/ION" style
// splitting and "UNION/**/SELECT" read as plain SQL. MySQL's executable
// comments (/*!50000 SELECT */) keep their content, which MySQL runs.
func stripSQLComments(s string) (string, bool) {
	i := strings.Index(s, "/*")
	if i < 0 {
		return s, false
	}
	b := make([]byte, 0, len(s))
	for i >= 0 {
		b = append(b, s[:i]...)
		rest := s[i+2:]
		if len(rest) > 0 && rest[0] == '!' {
			// Executable comment: drop the marker and the version digits.
			rest = rest[1:]
			for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
				rest = rest[1:]
			}
			b = append(b, ' ')
			s = rest
			if j := strings.Index(s, "*/"); j >= 0 {
				s = s[:j] + " " + s[j+2:]
			}
		} else {
			j := strings.Index(rest, "*/")
			if j < 0 {
				// Unterminated: the rest is comment to SQL.
				s = ""
				break
			}
			b = append(b, ' ')
			s = rest[j+2:]
		}
		i = strings.Index(s, "/*")
	}
	b = append(b, s...)
	return string(b), true
}

// stripControls removes tab, CR, LF and other C0 controls, which browsers
// ignore inside URL schemes ("jav\tascript:").
func stripControls(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if s[i] < 0x20 {
			break
		}
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] >= 0x20 {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
