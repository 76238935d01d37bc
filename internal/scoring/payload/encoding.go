package payload

import "strings"

// encodingTrick scores decoding layers beyond what a client legitimately
// sends (one round of URL encoding) when they reveal characters that
// matter to an interpreter.
// Encoding rules, and the rules of the detectors without a file of their
// own.
const (
	ruleEncodingNonStandard = "payload.encoding.non_standard" // overlong UTF-8, %uXXXX
	ruleEncodingLayers      = "payload.encoding.layers"       // stacked URL/entity/escape layers
	ruleNullByte            = "payload.null_byte"
	rulePromptPhrase        = "payload.prompt_injection.phrase"
)

func encodingTrick(l layers, cls uint64, lower string) hit {
	if l.overlong || l.percentU {
		return mk(weightBorderline, ruleEncodingNonStandard) // never produced by a conforming client
	}
	if l.url < 2 && !l.escapes {
		// Every case below needs one of these; most values were decoded
		// once or not at all, and the danger scans below cost 2,000
		// instructions of BenchmarkInspect/get's 108,700 (callgrind).
		return hit{}
	}
	danger := cls&dangerChars != 0 || l.null || strings.Contains(lower, "../") || strings.Contains(lower, `..\`)
	if !danger {
		return hit{}
	}
	// Nested URLs (a redirect target inside a query value) are legitimately
	// encoded twice; three layers are not.
	// A form that posts HTML-escaped text ("Tom &amp; Jerry") URL-encodes
	// it once, so one URL layer plus entities is ordinary; escapes such as
	// \x3c, or entities under two URL layers, are not.
	switch {
	case l.url >= 3:
		return mk(weightBorderline, ruleEncodingLayers)
	case l.url == 2 && (l.html || l.escapes):
		return mk(weightBorderline, ruleEncodingLayers)
	case l.url == 2:
		return mk(weightWeak, ruleEncodingLayers)
	case l.escapes && (l.url == 1 || l.html):
		return mk(weightWeak, ruleEncodingLayers)
	}
	return hit{}
}
