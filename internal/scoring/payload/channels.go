package payload

import (
	"mime"
	"strings"
	"unicode/utf8"
)

// Reasons of the two policy denials: they name no attack, only content
// smartlayer could not see whole.
const (
	// ReasonPartialBody: payload.partial_body is deny and the body was cut
	// (Envoy's with_request_body, or payload.max_body_bytes).
	ReasonPartialBody = "payload." + policyPartialBody
	// ReasonUndecodableCharset: the body declares a charset no decoder here
	// reads, so its bytes cannot be inspected as the application reads them.
	ReasonUndecodableCharset = "payload." + policyCharset
)

// partialBodyHeader is what Envoy adds to the CheckRequest's headers when
// with_request_body cut the body at max_request_bytes.
const partialBodyHeader = "x-envoy-auth-partial-body"

// chanState is what the channel parsers keep per Inspect call.
type chanState struct {
	// excl are the payload.exclusions entries that match the request's
	// path; nil (the common case) costs nothing.
	excl []exclusion
	// deny is a policy denial (policyPartialBody, policyCharset), or "".
	deny string
	// parts counts multipart parts across nesting levels.
	parts int
}

func (c *chanState) reset() { *c = chanState{} }

// policy records a policy denial unless an exclusion waives it at loc.
func (s *scan) policy(name, loc string) {
	if s.ch.deny != "" {
		return
	}
	if excluded(s.ch.excl, loc, name, "payload."+name) {
		s.hdr.waived = true
		return
	}
	s.ch.deny = name
}

// policyVerdict turns a recorded policy denial into the result: the
// request is blocked with the policy's reason unless a detector already
// blocked it (its reason is the more useful one).
func (s *scan) policyVerdict(res *Result) {
	if s.ch.deny == "" || res.Action == Block {
		return
	}
	reason := "payload." + s.ch.deny
	res.Action, res.Reason, res.Rule, res.Borderline = Block, reason, reason, false
	if res.Score < s.cfg.BlockScore {
		res.Score = s.cfg.BlockScore
	}
	if len(res.Findings) < maxFindings {
		res.Findings = append(res.Findings, Finding{Detector: s.ch.deny, Location: locBody, Weight: s.cfg.BlockScore, Rule: reason})
	}
}

// waive drops the hits that the request's exclusions cover at loc. It
// reports whether nothing is left.
func (s *scan) waive(loc string, w *[numDetectors]hit) bool {
	left := false
	for d := range w {
		if w[d].w == 0 {
			continue
		}
		if excluded(s.ch.excl, loc, detectorNames[d], w[d].rule) {
			w[d] = hit{}
			continue
		}
		left = true
	}
	return !left
}

// mediaType splits a content-type into its lowercased media type and
// parameters; a header mime cannot parse still yields its media type.
func mediaType(ct string) (string, map[string]string) {
	media, params, err := mime.ParseMediaType(ct)
	if err != nil {
		m, rest, _ := strings.Cut(ct, ";")
		media = strings.ToLower(strings.TrimSpace(m))
		params = map[string]string{}
		// Keep what can be read of charset and boundary.
		for _, p := range strings.Split(rest, ";") {
			k, v, ok := strings.Cut(p, "=")
			if ok {
				params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	}
	return media, params
}

// content inspects b as the declared content type says: the one body
// dispatch, used for the body and for each multipart part. name is the
// multipart field ("" for the body); depth counts multipart nesting.
func (s *scan) content(ct string, b []byte, name string, depth int, res *Result) {
	media, params := mediaType(ct)
	if strings.HasPrefix(media, "multipart/") {
		s.multipart(params["boundary"], b, depth, res)
		return
	}
	if isBinary(media) && !isXML(media) {
		if !looksText(b) {
			if depth == 0 {
				res.BodySkipped = "binary"
			}
			return
		}
		// Text under a binary label: inspect it as what it looks like,
		// since an application that ignores the label will.
		media = sniffMedia(b)
	}
	c := lookupCharset(params["charset"])
	if params["charset"] == "" {
		c = sniffBOM(b)
	}
	if c.kind == csBad {
		s.policy(policyCharset, locBody)
		c = charset{kind: csUTF8} // and inspect the bytes as they are
	}
	if media == "application/x-www-form-urlencoded" && c.kind != csUTF8 && c.kind != csWide {
		// Form values are percent-decoded first, then read in the charset.
		s.formCharset(string(b), c)
		return
	}
	s.text(media, c.decode(b), name)
}

// text dispatches UTF-8 text by media type.
func (s *scan) text(media, text, name string) {
	switch {
	case strings.Contains(media, "json"):
		s.jsonSeq(text)
	case isXML(media):
		s.xml(text)
		if media == "image/svg+xml" || media == "application/xhtml+xml" {
			// Browsers render these: their markup is the payload.
			s.field(locBody, name, nil, text, false)
		}
	case media == "application/x-www-form-urlencoded":
		s.pairs(text, '&', locBody, locBodyKey, true)
	default:
		s.field(locBody, name, nil, text, false)
	}
}

func isXML(media string) bool {
	return strings.HasSuffix(media, "/xml") || strings.HasSuffix(media, "+xml")
}

// looksText reports whether b (its first KiB) is text: valid UTF-8
// without control bytes other than whitespace. Images, archives and PDFs
// fail within their first bytes.
func looksText(b []byte) bool {
	if len(b) > 1024 {
		b = b[:1024]
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return len(b)-i < utf8.UTFMax && !utf8.FullRune(b[i:]) // a rune cut at the sniff window
		}
		i += n
	}
	return true
}

// sniffMedia names the text format b starts with.
func sniffMedia(b []byte) string {
	t := strings.TrimLeft(string(b[:min(len(b), 64)]), " \t\r\n\ufeff")
	switch {
	case strings.HasPrefix(t, "{"), strings.HasPrefix(t, "["):
		return "application/json"
	}
	return "text/plain"
}

// formCharset inspects a urlencoded form in an ASCII-compatible charset
// other than UTF-8 (latin1, UTF-7…): each name and value is
// percent-decoded, then read in the charset, as servlet containers and
// ASP.NET do.
func (s *scan) formCharset(data string, c charset) {
	for data != "" {
		var part string
		part, data, _ = strings.Cut(data, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = c.decode(formUnescape(k)), c.decode(formUnescape(v))
		dk := s.field(locBodyKey, k, nil, k, false)
		s.field(locBody, dk, nil, v, false)
	}
}

// formUnescape percent-decodes a form component, '+' as space; malformed
// escapes stay as they are.
func formUnescape(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhexByte(s[i+1])<<4|unhexByte(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhexByte(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
