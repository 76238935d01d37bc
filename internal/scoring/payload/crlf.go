package payload

import "strings"

// CRLF / response-splitting rules (reason payload.crlf).
const (
	ruleCRLFHeader = "payload.crlf.header_injection" // \r\nSet-Cookie:, \nLocation: http://…
	ruleCRLFWeak   = "payload.crlf.header_like"      // a line starting with a response header name whose value is prose
)

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
	if cls&cNewline == 0 || cls&cColon == 0 && !strings.Contains(lower, "http/1.") {
		return hit{}
	}
	var h hit
	for i := 0; i < len(lower); i++ {
		if c := lower[i]; c != '\r' && c != '\n' {
			continue
		}
		j := i + 1
		for j < len(lower) && (lower[j] == '\r' || lower[j] == '\n') {
			j++
		}
		line := lower[j:]
		if strings.HasPrefix(line, "http/1.") {
			return mk(weightBlock, ruleCRLFHeader) // a whole injected response
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
		h = mk(weightWeak, ruleCRLFWeak)
		i = j - 1
	}
	return h
}
