package payload

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonFrame is one open container on the walker's path.
type jsonFrame struct {
	key   string // current key (objects)
	idx   int    // current index (arrays)
	array bool
}

// jsonPath is the walker's current position; String renders it only when a
// finding needs it, so walking allocates nothing per leaf.
type jsonPath struct {
	frames []jsonFrame
	deep   bool // the value is a subtree below MaxJSONDepth, given as text
}

// String renders the path as "$.a.b[2]".
func (p *jsonPath) String() string {
	var b strings.Builder
	b.WriteByte('$')
	for _, f := range p.frames {
		if f.array {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.idx))
			b.WriteByte(']')
		} else {
			b.WriteByte('.')
			b.WriteString(truncateUTF8(f.key, 64))
		}
	}
	if p.deep {
		b.WriteString("…")
	}
	return b.String()
}

// jsonVisitor receives every object key (isKey) and every string leaf.
// Numbers, booleans and null are not visited: they cannot carry a payload.
type jsonVisitor func(p *jsonPath, isKey bool, s string)

type jsonState uint8

const (
	stValue      jsonState = iota // expecting a value
	stArrayStart                  // after '[': a value or ']'
	stKey                         // after '{' or ',' in an object: a key or '}'
	stAfter                       // after a value: ',' or a closer
)

// walkJSON visits the keys and string values of the JSON document in s.
// It is iterative (no recursion, so no stack exhaustion), lenient (it stops
// quietly at the first syntax error or at the end of a truncated body,
// having visited everything before it) and linear in len(s). Containers
// deeper than maxDepth are handed to visit whole, as raw text. It returns
// false when s is not JSON at all (does not start with a value).
func walkJSON(s string, maxDepth int, path *jsonPath, visit jsonVisitor) bool {
	_, _, ok := walkJSONDoc(s, maxDepth, path, visit)
	return ok
}

// walkJSONDoc is walkJSON reporting where it stopped: end is the index
// just past the top-level value when complete, the index of the syntax
// error otherwise (len(s) for a truncated document). isJSON is false when
// s does not start with an object, an array or a string.
func walkJSONDoc(s string, maxDepth int, path *jsonPath, visit jsonVisitor) (end int, complete, isJSON bool) {
	path.frames = path.frames[:0]
	path.deep = false
	i := skipWS(s, 0)
	if i >= len(s) || strings.IndexByte(`{["`, s[i]) < 0 {
		return i, false, false
	}
	state := stValue
	for {
		i = skipWS(s, i)
		if i >= len(s) {
			return i, len(path.frames) == 0 && state == stAfter, true
		}
		c := s[i]
		switch state {
		case stArrayStart:
			if c == ']' {
				path.frames = path.frames[:len(path.frames)-1]
				i++
				state = stAfter
				continue
			}
			state = stValue
			fallthrough
		case stValue:
			switch c {
			case '{', '[':
				if len(path.frames) >= maxDepth {
					end := skipContainer(s, i)
					path.deep = true
					visit(path, false, s[i:end])
					path.deep = false
					i = end
					state = stAfter
					continue
				}
				path.frames = append(path.frames, jsonFrame{array: c == '['})
				i++
				if c == '[' {
					state = stArrayStart
				} else {
					state = stKey
				}
			case '"':
				str, next := jsonString(s, i)
				visit(path, false, str)
				i = next
				state = stAfter
			default:
				j := i
				for j < len(s) && strings.IndexByte(",]} \t\r\n:{[\"", s[j]) < 0 {
					j++
				}
				if j == i {
					return i, false, true // syntax error
				}
				i = j
				state = stAfter
			}
		case stKey:
			if c == '}' {
				path.frames = path.frames[:len(path.frames)-1]
				i++
				state = stAfter
				continue
			}
			if c != '"' {
				return i, false, true
			}
			key, next := jsonString(s, i)
			top := &path.frames[len(path.frames)-1]
			top.key = key
			visit(path, true, key)
			i = skipWS(s, next)
			if i >= len(s) || s[i] != ':' {
				return i, false, true
			}
			i++
			state = stValue
		case stAfter:
			if len(path.frames) == 0 {
				return i, true, true // trailing data after the document is ignored
			}
			top := &path.frames[len(path.frames)-1]
			switch {
			case c == ',':
				i++
				if top.array {
					top.idx++
					state = stValue
				} else {
					state = stKey
				}
			case (c == ']' && top.array) || (c == '}' && !top.array):
				path.frames = path.frames[:len(path.frames)-1]
				i++
			default:
				return i, false, true
			}
		}
	}
}

func skipWS(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipContainer returns the index just past the container starting at i
// (or len(s) when it is unterminated), skipping strings.
func skipContainer(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"':
			_, next := jsonString(s, i)
			i = next - 1
		}
	}
	return len(s)
}

// jsonString decodes the string literal starting at s[i] == '"' and
// returns it with the index after the closing quote. An unterminated
// string (truncated body) yields what was read. Without escapes the result
// is a substring of s (no allocation).
func jsonString(s string, i int) (string, int) {
	start := i + 1
	j := start
	for j < len(s) {
		switch s[j] {
		case '"':
			return s[start:j], j + 1
		case '\\':
			return jsonUnescape(s, start, j)
		}
		j++
	}
	return s[start:], len(s)
}

// jsonUnescape continues jsonString from the first backslash at j.
// Malformed escapes are kept literally.
func jsonUnescape(s string, start, j int) (string, int) {
	b := make([]byte, 0, j-start+16)
	b = append(b, s[start:j]...)
	for j < len(s) {
		c := s[j]
		switch {
		case c == '"':
			return string(b), j + 1
		case c == '\\' && j+1 < len(s):
			e := s[j+1]
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(s[j+2:])
				if !ok {
					b = append(b, '\\', 'u')
					j += 2
					continue
				}
				j += 6
				if utf16.IsSurrogate(r) && j+5 < len(s) && s[j] == '\\' && s[j+1] == 'u' {
					if r2, ok := hex4(s[j+2:]); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b = utf8.AppendRune(b, d)
							j += 6
							continue
						}
					}
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				b = append(b, '\\', e)
			}
			j += 2
		default:
			b = append(b, c)
			j++
		}
	}
	return string(b), len(s)
}
