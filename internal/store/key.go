package store

import "strings"

// EscapeKey percent-encodes '{', '}' and '%' in a part of a Redis key, so
// it can neither end a hash tag early nor make two parts' keys collide.
// Strings without them are returned as is, without allocating.
func EscapeKey(s string) string {
	if !strings.ContainsAny(s, "{}%") {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{', '}', '%':
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeKey reverses EscapeKey.
func UnescapeKey(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	r := strings.NewReplacer("%7B", "{", "%7D", "}", "%25", "%")
	return r.Replace(s)
}

// HashTag returns "{" + EscapeKey(s) + "}": a Redis Cluster hash tag that
// puts every key of s in one slot.
func HashTag(s string) string { return "{" + EscapeKey(s) + "}" }
