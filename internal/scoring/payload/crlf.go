package payload

import "strings"

// CRLF / response-splitting rules (reason payload.crlf).
const (
	ruleCRLFHeader  = "payload.crlf.header_injection"  // \r\nSet-Cookie:, \nLocation: http://…
	ruleCRLFWeak    = "payload.crlf.header_like"       // a line starting with a response header name whose value is prose
	ruleCRLFRequest = "payload.crlf.request_line"      // \nGET / HTTP/1.1, or a value that is a request line (smuggling)
	ruleCRLFLead    = "payload.crlf.leading_header"    // a value opening with a line break and a header: %0d%0aX-Foo: bar
	ruleCRLFName    = "payload.crlf.name_or_path"      // a line break in a parameter name or the URL path
	ruleCRLFUnix    = "payload.crlf.proxy_unix_socket" // unix:/path|http://host (mod_proxy socket smuggling)
	ruleCRLFBareCR  = "payload.crlf.bare_cr_header"    // a lone CR followed by "Name: value"
)

// httpMethods start a smuggled request line.
var httpMethods = []string{"get", "post", "put", "head", "delete", "options", "patch", "connect", "trace"}

// methodStart[c] has bit d-'a' set when a method starts with c, d:
// requestLine runs on every value with a ':' or a line break, and
// "https://…" starts like no method but "head" ("he", not "ht"); the
// filter took detectCRLF on an https URL from 470 instructions to under
// 150 (callgrind).
var methodStart = func() (t [256]uint32) {
	for _, m := range httpMethods {
		t[m[0]] |= 1 << (m[1] - 'a')
	}
	return t
}()

// crlfSpace: a space, or '+' where a header carries a form-encoded value.
func crlfSpace(c byte) bool { return c == ' ' || c == '+' }

// requestLine reports line starting with "METHOD target HTTP/".
func requestLine(line string) bool {
	if len(line) < 2 || line[1] < 'a' || line[1] > 'z' || methodStart[line[0]]&(1<<(line[1]-'a')) == 0 {
		return false // no method starts so: skip nine prefix tests
	}
	for _, m := range httpMethods {
		if !strings.HasPrefix(line, m) || len(line) == len(m) || !crlfSpace(line[len(m)]) {
			continue
		}
		t := line[len(m)+1:]
		sp := strings.IndexAny(t, " +\r\n")
		if sp <= 0 || !crlfSpace(t[sp]) {
			return false
		}
		v := t[sp+1:]
		target := t[0] == '/' || t[0] == '*' || strings.HasPrefix(t, "http")
		return target && len(v) > 5 && strings.HasPrefix(v, "http/") && v[5] >= '0' && v[5] <= '9'
	}
	return false
}

// leadingHeader reports a value that opens with a line break and then a
// header: "name: value". Prose does not start with a line break; an
// injected header does.
func leadingHeader(lower string) bool {
	if lower == "" || lower[0] != '\r' && lower[0] != '\n' {
		return false
	}
	j := 0
	for j < len(lower) && (lower[j] == '\r' || lower[j] == '\n') {
		j++
	}
	k := j
	for k < len(lower) && (lower[k] >= 'a' && lower[k] <= 'z' || lower[k] == '-' || lower[k] == '_' || k > j && lower[k] >= '0' && lower[k] <= '9') {
		k++
	}
	for k < len(lower) && (lower[k] == '\r' || lower[k] == '\n') {
		k++ // Remote-addr%0d%0d: foo
	}
	return k > j+1 && k+1 < len(lower) && lower[k] == ':' && crlfSpace(lower[k+1])
}

// crlfHeaders are response headers worth injecting. strong: any value
// blocks; otherwise the value must look like what the header carries.
var crlfHeaders = map[string]func(v string) bool{
	"set-cookie":                       nil,
	"content-length":                   nil,
	"transfer-encoding":                nil,
	"x-xss-protection":                 nil,
	"content-security-policy":          nil,
	"access-control-allow-origin":      nil,
	"access-control-allow-credentials": nil,
	"location": func(v string) bool {
		return strings.Contains(v, "//") || strings.HasPrefix(v, "/") || strings.HasPrefix(v, "javascript:")
	},
	"content-type":        func(v string) bool { return strings.IndexByte(v, '/') > 0 },
	"refresh":             func(v string) bool { return v != "" && v[0] >= '0' && v[0] <= '9' },
	"content-disposition": func(v string) bool { return strings.HasPrefix(v, "attachment") || strings.HasPrefix(v, "inline") },
	"link":                func(v string) bool { return strings.HasPrefix(v, "<") },
	"cache-control":       func(v string) bool { return strings.Contains(v, "max-age") || strings.Contains(v, "no-") },
	"host":                func(v string) bool { return !strings.Contains(v, " ") },
	"connection":          func(v string) bool { return v == "close" || v == "keep-alive" || v == "upgrade" },
}

func detectCRLF(lower string, cls uint64) hit {
	if cls&cColon != 0 && cls&cPipe != 0 {
		if i := strings.Index(lower, "unix:"); i >= 0 && strings.Contains(lower[i:], "|http") {
			return mk(weightBlock, ruleCRLFUnix)
		}
	}
	if cls&cNewline == 0 && requestLine(lower) {
		return mk(weightBlock, ruleCRLFRequest)
	}
	if cls&cNewline == 0 || cls&cColon == 0 && !strings.Contains(lower, "http/1.") {
		return hit{}
	}
	var h hit
	if leadingHeader(lower) {
		h = mk(weightBlock, ruleCRLFLead)
	}
	for i := 0; i < len(lower); i++ {
		if c := lower[i]; c != '\r' && c != '\n' {
			continue
		}
		if lower[i] == '\r' && i+1 < len(lower) && lower[i+1] != '\n' && lower[i+1] != '\r' && (i == 0 || lower[i-1] != '\n') &&
			headerLine(lower[i+1:]) {
			return mk(weightBlock, ruleCRLFBareCR)
		}
		j := i + 1
		for j < len(lower) && (lower[j] == '\r' || lower[j] == '\n') {
			j++
		}
		line := lower[j:]
		if strings.HasPrefix(line, "http/1.") {
			return mk(weightBlock, ruleCRLFHeader) // a whole injected response
		}
		if requestLine(line) {
			return mk(weightBlock, ruleCRLFRequest)
		}
		k := 0
		for k < len(line) && (isLetterOrUnderscore(line[k]) || line[k] == '-') {
			k++
		}
		if k == 0 || k >= len(line) || line[k] != ':' {
			i = j - 1
			continue
		}
		check, known := crlfHeaders[line[:k]]
		if !known {
			i = j - 1
			continue
		}
		v := strings.TrimLeft(line[k+1:], " \t")
		if e := strings.IndexAny(v, "\r\n"); e >= 0 {
			v = v[:e]
		}
		if check == nil || check(v) {
			return mk(weightBlock, ruleCRLFHeader)
		}
		h = h.or(mk(weightWeak, ruleCRLFWeak))
		i = j - 1
	}
	return h
}

// headerLine reports a line opening with "Name: " (a header token of
// two or more bytes, a colon, a space).
func headerLine(line string) bool {
	k := 0
	for k < len(line) && (isLetterOrUnderscore(line[k]) || line[k] == '-' || k > 0 && line[k] >= '0' && line[k] <= '9') {
		k++
	}
	return k > 1 && k+1 < len(line) && line[k] == ':' && crlfSpace(line[k+1])
}
