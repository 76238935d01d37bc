package payload

import "strings"

// encodingTrick scores decoding layers beyond what a client legitimately
// sends (one round of URL encoding) when they reveal characters that
// matter to an interpreter.
func encodingTrick(l layers, cls uint32, lower string) uint8 {
	if l.overlong || l.percentU {
		return weightBorderline // never produced by a conforming client
	}
	danger := cls&dangerChars != 0 || l.null || strings.Contains(lower, "../") || strings.Contains(lower, `..\`)
	if !danger {
		return 0
	}
	// Nested URLs (a redirect target inside a query value) are legitimately
	// encoded twice; three layers are not.
	// A form that posts HTML-escaped text ("Tom &amp; Jerry") URL-encodes
	// it once, so one URL layer plus entities is ordinary; escapes such as
	// \x3c, or entities under two URL layers, are not.
	switch {
	case l.url >= 3:
		return weightBorderline
	case l.url == 2 && (l.html || l.escapes):
		return weightBorderline
	case l.url == 2:
		return weightWeak
	case l.escapes && (l.url == 1 || l.html):
		return weightWeak
	}
	return 0
}
