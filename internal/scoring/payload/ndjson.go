package payload

import "strings"

// JSON as applications read it: one document, a sequence of them (NDJSON,
// JSON Lines, RFC 7464 JSON text sequences, concatenated documents), or
// the relaxed dialects lenient parsers take (JSON5, Jackson's ALLOW_*
// features: comments, unquoted keys, single quotes, trailing commas).
// Every document is walked; where the strict walker stops at a syntax
// error, the rest of the body is tokenised leniently instead of skipped.

// jsonSeq inspects every JSON document of text.
func (s *scan) jsonSeq(text string) {
	i, first := 0, true
	for {
		i = skipSeqSpace(text, i)
		if i >= len(text) {
			return
		}
		end, complete, isJSON := walkJSONDoc(text[i:], s.cfg.MaxJSONDepth, &s.jpath, s.jsonVisit)
		if !isJSON && first {
			// Not JSON at all ("oops", a bare number): the text as a whole.
			s.field(locBody, "", nil, text, false)
			return
		}
		if !complete {
			s.lenientJSON(text[i+end:])
			return
		}
		i += end
		first = false
	}
}

// skipSeqSpace skips JSON whitespace, RFC 7464's record separator and a
// byte order mark between documents.
func skipSeqSpace(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == ' ', s[i] == '\t', s[i] == '\r', s[i] == '\n', s[i] == 0x1e:
			i++
		case strings.HasPrefix(s[i:], "\ufeff"):
			i += len("\ufeff")
		default:
			return i
		}
	}
	return i
}

// lenientJSON inspects what a strict JSON parser could not read: quoted
// strings ('…' and "…", JSON escapes decoded), comments, and bare runs
// (unquoted keys and values) between the structural characters, each as
// one value at "body". It never stops before the end and is linear.
func (s *scan) lenientJSON(rest string) {
	for i := 0; i < len(rest); {
		c := rest[i]
		switch {
		case c == '"' || c == '\'':
			str, next := quoted(rest, i)
			s.field(locBody, "", nil, strings.TrimSpace(str), false)
			i = next
		case c == '/' && i+1 < len(rest) && rest[i+1] == '/':
			end := strings.IndexByte(rest[i:], '\n')
			if end < 0 {
				end = len(rest) - i
			}
			s.field(locBody, "", nil, strings.TrimSpace(rest[i+2:i+end]), false)
			i += end
		case c == '/' && i+1 < len(rest) && rest[i+1] == '*':
			end := strings.Index(rest[i+2:], "*/")
			if end < 0 {
				s.field(locBody, "", nil, strings.TrimSpace(rest[i+2:]), false)
				return
			}
			s.field(locBody, "", nil, strings.TrimSpace(rest[i+2:i+2+end]), false)
			i += end + 4
		case strings.IndexByte("{}[],: \t\r\n\x1e", c) >= 0:
			i++
		default:
			j := i
			for j < len(rest) && strings.IndexByte("{}[],:\"'\r\n\x1e", rest[j]) < 0 &&
				!(rest[j] == '/' && j+1 < len(rest) && (rest[j+1] == '/' || rest[j+1] == '*')) {
				j++
			}
			s.field(locBody, "", nil, strings.TrimSpace(rest[i:j]), false)
			i = j
		}
	}
}

// quoted reads a '…' or "…" string starting at s[i], JSON escapes decoded,
// and returns it with the index after its closing quote (len(s) when
// unterminated).
func quoted(s string, i int) (string, int) {
	q := s[i]
	if q == '"' {
		return jsonString(s, i)
	}
	j := i + 1
	for j < len(s) {
		switch s[j] {
		case '\\':
			j += 2
			continue
		case q:
			str := s[i+1 : j]
			if strings.IndexByte(str, '\\') >= 0 {
				// Reuse the JSON unescaper on a double-quoted copy.
				str, _ = jsonString(`"`+strings.ReplaceAll(str, `"`, `\"`)+`"`, 0)
			}
			return str, j + 1
		}
		j++
	}
	return s[i+1 : min(j, len(s))], len(s)
}
