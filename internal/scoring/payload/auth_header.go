package payload

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Headers with a structure of their own. Every other header is one value
// at "header:<name>".
//
//   - cookie: each cookie at "cookie:<name>".
//   - authorization, proxy-authorization: Basic credentials base64-decoded,
//     at "header:authorization.user" and "header:authorization.password";
//     a JWT bearer token's header and claims (base64url JSON; the
//     signature is not checked here, jwt_authn does that) at
//     "header:authorization.jwt-header:$.kid" and
//     "header:authorization.jwt:$.sub"; other schemes' parameters
//     (Digest, AWS4-HMAC-SHA256…) one by one; an opaque token whole.
//   - x-forwarded-for: each entry that is not an IP address (identity reads
//     the addresses; an application logging the header reads the rest).
//
// A pair the cross-request cache holds is skipped (hdrcache.go); one it
// may take is noted in s.hdr.add.
func (s *scan) header(name, value string) {
	c := s.hdr.cache
	if c == nil || len(value) > maxCachedHeaderLen {
		s.headerValue(name, value)
		return
	}
	if c.clean(name, value) {
		s.hdr.hits++
		return
	}
	s.hdr.misses++
	s.hdr.gen++
	s.hdr.tainted = false
	s.headerValue(name, value)
	if !s.hdr.tainted {
		s.hdr.add = append(s.hdr.add, headerPair{name: name, value: value})
	}
}

// headerValue inspects one header as its structure says.
func (s *scan) headerValue(name, value string) {
	switch name {
	case "cookie":
		s.pairs(value, ';', locCookie, locCookie, false)
	case "authorization", "proxy-authorization":
		s.authorization(name, value)
	case "accept":
		// Media ranges ("*/*", "text/*;q=0.8") are globs to the shell
		// detector: ranges of the grammar are clean, anything else is
		// inspected.
		for value != "" {
			var e string
			e, value, _ = strings.Cut(value, ",")
			if e = strings.TrimSpace(e); e != "" && !mediaRange(e) {
				s.field(locHeader, name, nil, e, false)
			}
		}
	case "x-forwarded-for":
		for value != "" {
			var e string
			e, value, _ = strings.Cut(value, ",")
			e = strings.TrimSpace(e)
			if _, err := netip.ParseAddr(e); err == nil || addrPort(e) {
				continue
			}
			s.field(locHeader, name, nil, e, false)
		}
	default:
		s.field(locHeader, name, nil, value, false)
	}
}

// mediaRange reports type/subtype *(;param=value) of token characters.
func mediaRange(e string) bool {
	mr, params, _ := strings.Cut(e, ";")
	t, sub, ok := strings.Cut(strings.TrimSpace(mr), "/")
	if !ok || !plainWord(t) || !plainWord(sub) {
		return false
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !plainWord(k) || !plainWord(strings.Trim(v, `"`)) {
			return false
		}
	}
	return true
}

// plainWord: letters, digits and * + - . _ only.
func plainWord(w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("*+-._", c) >= 0) {
			return false
		}
	}
	return true
}

func addrPort(e string) bool {
	_, err := netip.ParseAddrPort(e)
	return err == nil
}

func (s *scan) authorization(name, value string) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(value), " ")
	if !ok {
		s.field(locHeader, name, nil, value, false)
		return
	}
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		dec, ok := decodeBase64(cred)
		if !ok {
			s.field(locHeader, name, nil, cred, false)
			return
		}
		user, pass, _ := strings.Cut(dec, ":")
		s.field(locHeader, name+".user", nil, user, false)
		s.field(locHeader, name+".password", nil, pass, false)
	case "bearer":
		if !s.jwt(name, cred) {
			s.field(locHeader, name, nil, cred, false)
		}
	default:
		// auth-param lists (Digest, AWS4-HMAC-SHA256: k=v, k="v", …) value
		// by value; anything else (a token68) whole.
		params, ok := authParams(cred)
		if !ok {
			s.field(locHeader, name, nil, cred, false)
			return
		}
		for _, kv := range params {
			s.field(locHeader, name+"."+kv[0], nil, kv[1], false)
		}
	}
}

// authParams splits `k=v, k="v"` (RFC 9110 auth-param); false when cred
// is not such a list.
func authParams(cred string) ([][2]string, bool) {
	var out [][2]string
	for cred != "" {
		var p string
		p, cred, _ = strings.Cut(cred, ",")
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || !isToken(k) {
			return nil, false
		}
		out = append(out, [2]string{strings.ToLower(k), strings.Trim(strings.TrimSpace(v), `"`)})
	}
	return out, len(out) > 0
}

func isToken(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// jwt inspects a JWS compact token's header and claims; false when tok is
// not one (then the caller inspects it whole).
func (s *scan) jwt(name, tok string) bool {
	h, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	claims, _, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	hj, ok1 := decodeBase64(h)
	cj, ok2 := decodeBase64(claims)
	if !ok1 || !ok2 {
		return false
	}
	for _, part := range [2]struct{ prefix, json string }{
		{locHeader + ":" + name + ".jwt-header", hj},
		{locHeader + ":" + name + ".jwt", cj},
	} {
		prefix := part.prefix
		visit := func(p *jsonPath, isKey bool, v string) {
			if !isKey {
				s.field(prefix, "", p, v, false)
			}
		}
		if !walkJSON(part.json, s.cfg.MaxJSONDepth, &s.jpath, visit) {
			s.field(prefix, "", nil, part.json, false)
		}
	}
	return true
}

// decodeBase64 decodes standard or URL-safe base64, padded or not, to
// UTF-8 text; false when it is neither.
func decodeBase64(v string) (string, bool) {
	v = strings.TrimRight(v, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(v, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(v)
	if err != nil || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}
