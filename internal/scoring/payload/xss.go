package payload

import (
	"strings"

	libinjection "github.com/corazawaf/libinjection-go"
)

// xssGate reports whether libinjection's XSS check could fire: markup
// needs '<' or '>', a back-quoted value needs '`', and attribute injection
// needs "name=" after a space, quote or slash (so the '=' of a URL query,
// after '?' or '&', does not count).
func xssGate(lower string, cls uint32) bool {
	if cls&(cLT|cGT|cBacktick) != 0 {
		return true
	}
	if cls&cEq == 0 {
		return false
	}
	for i := strings.IndexByte(lower, '='); i >= 0; {
		j := i
		for j > 0 && lower[j-1] <= ' ' { // spaces and controls
			j--
		}
		k := j
		for k > 0 && isAttrByte(lower[k-1]) {
			k--
		}
		if k < j && (k == 0 || lower[k-1] <= ' ' || lower[k-1] == '\'' || lower[k-1] == '"' || lower[k-1] == '/') {
			return true
		}
		n := strings.IndexByte(lower[i+1:], '=')
		if n < 0 {
			break
		}
		i += 1 + n
	}
	return false
}

func isAttrByte(c byte) bool {
	return ('a' <= c && c <= 'z') || c == '-' || c == ':' || c == '_' || ('0' <= c && c <= '9') || c >= 0x80 || c == 0
}

func detectXSS(norm, lower string, cls uint32) uint8 {
	if cls&(cLT|cGT|cEq|cBacktick|cColon) == 0 {
		return 0
	}
	if xssGate(lower, cls) {
		// Browsers drop tabs and newlines inside attribute URLs
		// ("jav\tascript:"); libinjection does not.
		if libinjection.IsXSS(stripControls(norm)) {
			return weightBlock
		}
	}
	// libinjection judges markup; a bare "javascript:" URL is a value that
	// becomes XSS when echoed into href/src. Borderline: the LLM decides.
	if cls&cColon != 0 && (strings.Contains(lower, "javascript:") || strings.Contains(lower, "vbscript:")) {
		return weightBorderline
	}
	return 0
}
