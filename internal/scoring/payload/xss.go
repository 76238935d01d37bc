package payload

import (
	"regexp"
	"strings"

	libinjection "github.com/corazawaf/libinjection-go"
	"github.com/smartlayer/smartlayer/internal/pathnorm"
)

// xssGate reports whether libinjection's XSS check could fire: markup
// needs '<' or '>', a back-quoted value needs '`', and attribute injection
// needs "name=" after a space, quote or slash (so the '=' of a URL query,
// after '?' or '&', does not count).
func xssGate(lower string, cls uint64) bool {
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

// XSS rules. libinjection judges markup; the rules below cover what it
// misses (tags left open, handlers, script URIs, CSS, template literals).
const (
	ruleXSSLibinjection = "payload.xss.libinjection"
	ruleXSSTag          = "payload.xss.tag"           // <script, <object, <embed, <base…
	ruleXSSFrame        = "payload.xss.frame"         // <iframe without a script: borderline
	ruleXSSHandler      = "payload.xss.event_handler" // onerror=, onmouseover= …
	ruleXSSJSURI        = "payload.xss.js_uri"        // javascript:/vbscript: with code
	ruleXSSBareURI      = "payload.xss.bare_uri"      // javascript: without code: borderline
	ruleXSSDataURI      = "payload.xss.data_uri"      // data:text/html, data:image/svg+xml
	ruleXSSCSS          = "payload.xss.css"           // expression(, -moz-binding, CSS-escaped js
	ruleXSSBreakout     = "payload.xss.js_breakout"   // ';alert(1)//, alert`1`
	ruleXSSJSCall       = "payload.xss.js_call"       // alert(…) in text: borderline
	ruleXSSDOM          = "payload.xss.dom"           // document.cookie, window["alert"], createElement(
	ruleXSSJSFuck       = "payload.xss.jsfuck"        // (![]+[])[+!+[]]: JavaScript from six characters
	ruleXSSUTF7         = "payload.xss.utf7"          // +ADw-script+AD4-: '<' in UTF-7
	ruleXSSSpacedTag    = "payload.xss.spaced_tag"    // <f o r m, < x: script: a tag name spread out
	ruleXSSEntityURI    = "payload.xss.entity_uri"    // ja&tab;vascript:, v&newline;bscript&colon;
	ruleXSSXMLInclude   = "payload.xss.xml_include"   // <xi:include href=, xsi:schemaLocation to a URL, <!ENTITY … SYSTEM
	ruleXSSSSI          = "payload.xss.ssi"           // <!--#exec, <!--#set var=
	ruleXSSTemplateCall = "payload.xss.template_call" // [].sort.call`${alert}`, new Function(
	ruleXSSAttr         = "payload.xss.attribute"     // "formaction=, url(javascript
)

var (
	xssTagRe = regexp.MustCompile(`<\s*/?\s*(?:script|object|embed|applet|base|isindex|xss|import|portal|frameset|frame|meta\b[^>]*http-equiv\s*=\s*['"]?refresh|link\b[^>]*rel\s*=\s*['"]?import)\b`)
	// A handler attribute: after a separator browsers accept before an
	// attribute name, a known event name, then '='.
	xssHandlerRe = regexp.MustCompile(`(?:^|[\s"'\x60/;,(<>+])on(?:error|load\w*|mouse\w+|click|dblclick|focus\w*|blur|key\w+|animation\w+|transition\w+|pointer\w+|toggle|begin|end|start|finish|before\w+|after\w+|hashchange|page\w+|resize|scroll\w*|wheel|input|invalid|change|submit|reset|select\w*|copy|paste|cut|drag\w*|drop|play\w*|pause|ended|message|popstate|search|show|unload|readystatechange|contextmenu|touch\w+|auxclick|abort|progress|seek\w+|timeupdate|volumechange|waiting|storage|fullscreen\w*|repeat|content\w*|cancel|close|formdata|securitypolicyviolation|slotchange|webkit\w+)\s*=`)
	xssDataURIRe = regexp.MustCompile(`data:\s*(?:text/(?:html|xml|javascript|ecmascript|xsl)|application/(?:x-)?(?:javascript|ecmascript|xhtml|xml)|image/svg\+xml)`)
	xssCSSRe     = regexp.MustCompile(`[:=]\s*['"]?\s*expression\s*\(|-moz-binding\s*:|behavior\s*:\s*url|@import\s*['"]?\s*(?:javascript|data):`)
	xssCallRe    = regexp.MustCompile(`\b(?:alert|prompt|confirm|eval|settimeout|setinterval|atob|fromcharcode|execscript|msgbox)\s*(\(|\x60)`)
	// A value that closes a JS string or statement and calls something.
	xssBreakoutRe = regexp.MustCompile(`^[^<>]{0,16}?['"\x60]\s*[;+\-*/|&,)\]}]+\s*(?:alert|prompt|confirm|eval|settimeout|setinterval|document\.|window\.|top\[|self\[|location)`)
)

// benignAttrRe: XML namespace and declaration attributes, which
// libinjection's attribute list flags, and RSS's attribute-less <link>.
var (
	benignAttrRe = regexp.MustCompile(`(?i)\s(?:xmlns(?::[\w.-]+)?|version|encoding|standalone)\s*=\s*(?:"[^"<>]*"|'[^'<>]*')|<link>`)
	styleAttrRe  = regexp.MustCompile(`(?i)\sstyle\s*=\s*(?:"[^"<>]*"|'[^'<>]*')`)
)

// svgRe finds SVG roots; libinjection flags every <svg>, so an inert one
// (no script, link, animation, handler, entity) is renamed for it.
var svgRe = regexp.MustCompile(`(?i)<svg\b`)

// svgDanger: what makes an SVG document run code.
var svgDanger = []string{"script", "href", "<animate", "<set", "<foreignobject", "<use", "<handler",
	"<listener", "<iframe", "<embed", "<object", "javascript", "data:", "<!entity", "&"}

// cssDanger: what makes a style attribute run code.
var cssDanger = []string{"expression", "javascript", "vbscript", "behavior", "binding", "@import", "\\", "data:", "&", "/*"}

// dropBenignMarkup removes namespace declarations and inert style
// attributes from markup before libinjection reads it: every XML/SOAP
// body declares namespaces and HTML mail is full of style="color: red".
func dropBenignMarkup(v, lower string) string {
	if strings.Contains(lower, "xmlns") || strings.Contains(lower, "version") || strings.Contains(lower, "encoding") || strings.Contains(lower, "<link>") {
		v = benignAttrRe.ReplaceAllStringFunc(v, func(m string) string {
			if m[0] == '<' {
				return "<lnk>"
			}
			return " "
		})
	}
	if strings.Contains(lower, "style") {
		v = styleAttrRe.ReplaceAllStringFunc(v, func(m string) string {
			lm := strings.ToLower(m)
			for _, d := range cssDanger {
				if strings.Contains(lm, d) {
					return m
				}
			}
			return " "
		})
	}
	if strings.Contains(lower, "<xml") || strings.Contains(lower, "<meta") || strings.Contains(lower, "<link") {
		v = renameInertTags(v)
	}
	if strings.Contains(lower, "<svg") {
		for _, d := range svgDanger {
			if strings.Contains(lower, d) {
				return v
			}
		}
		if !xssHandlerRe.MatchString(lower) {
			v = svgRe.ReplaceAllString(v, "<xsvg")
		}
	}
	return v
}

// inertTagDanger: what makes an <xml>, <meta> or <link> element load or
// run something (IE data islands, refresh redirects, HTML imports, script
// URLs; HTML imports are xssTagRe's); without any of these in the value they are document structure.
var inertTagDanger = []string{"script", "refresh", "data:", "datasrc", "datafld", "cdata", "&#", "\\", "expression", "binding"}

// renameInertTags renames <xml>, <meta> and <link> elements, which
// libinjection flags by name, when nothing in the value makes them
// dangerous: every XML document may have an <xml> element, HTML pages
// start with <meta charset>, Atom and RSS feeds are full of <link href>
// (these two only in a whole document).
// The tag rules (xssTagRe) still see the original value.
func renameInertTags(v string) string {
	lv := strings.ToLower(v)
	for _, d := range inertTagDanger {
		if strings.Contains(lv, d) {
			return v
		}
	}
	// <meta> and <link> only inside a whole document: a lone
	// <meta charset=…> injected into a page switches its charset.
	doc := false
	for _, d := range [...]string{"<?xml", "<!doctype", "<html", "<head", "<feed", "<rss", "<channel"} {
		if strings.Contains(lv, d) {
			doc = true
			break
		}
	}
	var b []byte
	last := 0
	for i := strings.IndexByte(lv, '<'); i >= 0 && i+5 <= len(lv); {
		j := i + 1
		if j < len(lv) && lv[j] == '/' {
			j++
		}
		n := 0
		switch {
		case strings.HasPrefix(lv[j:], "xml"):
			n = 3
		case doc && (strings.HasPrefix(lv[j:], "meta") || strings.HasPrefix(lv[j:], "link")):
			n = 4
		}
		if n > 0 && (j+n == len(lv) || !isAttrByte(lv[j+n]) && lv[j+n] != '.') {
			b = append(b, v[last:j]...)
			b = append(b, 'x')
			last = j
		}
		k := strings.IndexByte(lv[i+1:], '<')
		if k < 0 {
			break
		}
		i += 1 + k
	}
	if b == nil {
		return v
	}
	return string(append(b, v[last:]...))
}

// xssView strips what browsers ignore before libinjection sees the value:
// controls inside URLs ("jav\tascript:"), a leading XML declaration or
// <!DOCTYPE>, which every XML body and HTML page starts with, namespace
// declarations and inert style attributes.
func xssView(norm, lower string, cls uint64) string {
	v := stripControls(norm)
	if cls&cLT != 0 {
		v = dropBenignMarkup(v, lower)
	}
	t := strings.TrimLeft(v, " ")
	if len(t) > 5 && t[0] == '<' && (t[1] == '?' || t[1] == '!') {
		if strings.HasPrefix(t, "<?xml") || strings.HasPrefix(t, "<?XML") {
			if i := strings.Index(t, "?>"); i >= 0 {
				t = strings.TrimLeft(t[i+2:], " ")
			}
		}
		if len(t) > 9 && strings.EqualFold(t[:9], "<!doctype") {
			if i := strings.IndexByte(t, '>'); i >= 0 && strings.IndexByte(t[:i], '[') < 0 {
				t = t[i+1:]
			}
		}
		return t
	}
	return v
}

func detectXSS(norm, lower string, cls uint64) hit {
	if cls&cDash != 0 && strings.Contains(lower, "+adw-") && utf7TagRe.MatchString(lower) {
		return mk(weightBlock, ruleXSSUTF7)
	}
	if cls&(cLT|cGT|cEq|cBacktick|cColon|cParen|cBracket|kwDOM) == 0 {
		return hit{}
	}
	if cls&(cLT|cGT|cEq|cBacktick|cColon) != 0 && xssGate(lower, cls) {
		if libinjection.IsXSS(xssView(norm, lower, cls)) {
			return mk(weightBlock, ruleXSSLibinjection)
		}
	}
	var h hit
	if cls&cLT != 0 {
		if xssTagRe.MatchString(lower) {
			return mk(weightBlock, ruleXSSTag)
		}
		if strings.Contains(lower, "<iframe") {
			h = mk(weightBorderline, ruleXSSFrame)
		}
	}
	if cls&cEq != 0 && handlerShape(lower) && xssHandlerRe.MatchString(lower) {
		return mk(weightBlock, ruleXSSHandler)
	}
	if cls&cColon != 0 {
		view := lower
		if cls&cNewline != 0 || strings.IndexByte(view, '\t') >= 0 {
			view = stripControls(view)
		}
		if cls&cBackslash != 0 {
			view = cssUnescape(view)
		}
		if cls&(kwScriptURI|cBackslash|cNewline) != 0 || strings.IndexByte(view, '\t') >= 0 {
			if r := scriptURI(view); r.w > 0 {
				return r
			}
		}
		if cls&kwDataURI != 0 && strings.Contains(view, "data:") && xssDataURIRe.MatchString(view) {
			return mk(weightBlock, ruleXSSDataURI)
		}
		if (cls&kwCSS != 0 || cls&cBackslash != 0) && xssCSSRe.MatchString(view) {
			return mk(weightBlock, ruleXSSCSS)
		}
	} else if cls&cParen != 0 && cls&kwCSS != 0 && xssCSSRe.MatchString(lower) {
		return mk(weightBlock, ruleXSSCSS)
	}
	if cls&kwDOM != 0 && cls&(cDot|cBracket) != 0 {
		view := lower
		if strings.Contains(view, "/*") {
			view, _ = stripSQLComments(view)
		}
		view = strings.NewReplacer(" ", "", "\t", "", "\n", "", "\r", "").Replace(view)
		if xssDOMRe.MatchString(view) {
			// Code around it, or the expression alone; in prose
			// ("set window.location to…") the LLM decides.
			if cls&(cEq|cParen|cBracket|cSemi|cQuote) != 0 || !strings.Contains(strings.TrimSpace(stripControls(lower)), " ") || strings.Contains(lower, "/*") {
				return mk(weightBlock, ruleXSSDOM)
			}
			h = h.or(mk(weightBorderline, ruleXSSDOM))
		}
	}
	if cls&cBracket != 0 && cls&cBang != 0 && jsFuck(lower) {
		return mk(weightBlock, ruleXSSJSFuck)
	}
	if r := xssExtra(lower, cls); r.w > 0 {
		return r
	}
	if cls&(cParen|cBacktick) != 0 && cls&kwJSCall != 0 {
		if m := xssCallRe.FindStringSubmatchIndex(lower); m != nil {
			if lower[m[2]] == '`' || xssBreakoutRe.MatchString(lower) || xssLoneCallRe.MatchString(lower) {
				return mk(weightBlock, ruleXSSBreakout)
			}
			h = h.or(mk(weightBorderline, ruleXSSJSCall))
		}
	}
	return h
}

// xssDOMRe: a script reaching for the page's secrets or sinks through a
// global object: document.cookie, window.location, self["alert"].
// It reads the value with /* comments */ and spaces removed; a path
// segment (/manual/document.cookie) is not a script.
var xssDOMRe = regexp.MustCompile(`(?:^|[^\w/$.\-])(?:document|window|self|top|parent|frames|globalthis)(?:\.(?:cookie|domain|location|write|writeln|createelement|queryselector\w*|getelementby\w+|body\.appendchild|execcommand|defaultview)\b|\)?\[['"\x60])`)

// jsFuck reports a value written only with []()!+ that contains a "![]"
// or "[]+[]": JSFuck, JavaScript encoded in six characters.
func jsFuck(s string) bool {
	t := strings.TrimSpace(s)
	if len(t) < 4 {
		return false
	}
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '[', ']', '(', ')', '!', '+', ' ': // '+' arrives as a space from a form
		default:
			return false
		}
	}
	return strings.Contains(t, "![]") || strings.Contains(t, "[]+[]") || strings.Contains(t, "[] []")
}

var (
	// The whole value is one call: "alert()", "setInterval(code, 1)".
	xssLoneCallRe = regexp.MustCompile(`^\s*(?:alert|prompt|confirm|eval|settimeout|setinterval|atob|execscript|msgbox)\s*\([^()]*\)\s*;?\s*$`)
	utf7TagRe     = regexp.MustCompile(`\+adw-\s*/?[a-z]`)
	// A tag name written with spaces between its letters, or behind a
	// namespace prefix with spaces.
	xssSpacedTagRe = regexp.MustCompile(`<\s*(?:[a-z]\s+){2,}[a-z]|<\s*[a-z]:\s+[a-z]|<\s+[a-z]+:\s+[a-z]`)
	xssIncludeRe   = regexp.MustCompile(`<\s*[\w.-]+:include\b[^>]*\bhref\s*=|\bxsi:schemalocation\s*=\s*['"\\]*[^'"]*\bhttps?://|!entity\s+(?:%\s*)?[\w.-]+\s+(?:system|public)\b`)
	xssSSIRe       = regexp.MustCompile(`<!--\s*#\s*(?:exec|include|echo|set|config|printenv|fsize|flastmod)\s+\w+\s*=`)
	xssTplCallRe   = regexp.MustCompile(`\.(?:call|apply|bind)\x60|\bnew\s*function\s*\(|\bbtoa\s*\(|url\(['"]?(?:java|vb)script\b|(?:^|[\s"'/])(?:formaction|onzoom)\s*=|<\s*:?[a-z]*:?vmlframe\b|<\s*importimplementation\b`)
)

// spacedTagNames are the tags worth spelling out with spaces.
var spacedTagNames = []string{"script", "form", "dialog", "iframe", "object", "embed", "svg", "img", "body", "style",
	"meta", "link", "base", "frameset", "applet", "math", "video", "audio", "input", "button", "details", "marquee", "isindex", "xss"}

// xssExtra: markup and script shapes past libinjection and the rules
// above, each behind a byte or substring check.
func xssExtra(lower string, cls uint64) hit {
	if cls&cLT != 0 {
		if m := xssSpacedTagRe.FindAllStringIndex(lower, 8); m != nil {
			for _, loc := range m {
				end := min(len(lower), loc[0]+64)
				w := strings.NewReplacer(" ", "", "\t", "", "\n", "", "\r", "").Replace(lower[loc[0]+1 : end])
				if i := strings.IndexByte(w, ':'); i >= 0 && i < 12 {
					w = w[i+1:]
				}
				for _, n := range spacedTagNames {
					if strings.HasPrefix(w, n) {
						return mk(weightBlock, ruleXSSSpacedTag)
					}
				}
			}
		}
		if strings.Contains(lower, "<!--") && strings.Contains(lower, "#") && xssSSIRe.MatchString(lower) {
			return mk(weightBlock, ruleXSSSSI)
		}
	}
	if cls&(cColon|cBang) != 0 && (strings.Contains(lower, ":include") || strings.Contains(lower, "schemalocation") || strings.Contains(lower, "!entity")) && xssIncludeRe.MatchString(lower) {
		return mk(weightBlock, ruleXSSXMLInclude)
	}
	if cls&cAmp != 0 && strings.Contains(lower, ";") {
		v := strings.NewReplacer("&tab;", "", "&newline;", "", "&colon;", ":").Replace(lower)
		if v != lower {
			v = stripControls(v)
			for _, scheme := range [...]string{"javascript:", "vbscript:", "livescript:"} {
				if strings.Contains(v, scheme) {
					return mk(weightBlock, ruleXSSEntityURI)
				}
			}
		}
	}
	if cls&kwXSSExtra != 0 && cls&(cBacktick|cParen|cEq|cLT) != 0 {
		v := lower
		if strings.Contains(v, "/*") {
			v, _ = stripSQLComments(v)
		}
		if strings.ContainsAny(v, " \t\n") && (strings.Contains(v, "call") || strings.Contains(v, "apply") || strings.Contains(v, "bind") || strings.Contains(v, "url")) {
			v = strings.NewReplacer(" ", "", "\t", "", "\n", "", "\r", "").Replace(v)
		}
		if xssTplCallRe.MatchString(v) {
			return mk(weightBlock, ruleXSSTemplateCall)
		}
	}
	return hit{}
}

// handlerShape: "on" + letters + optional spaces + '=' somewhere, the
// shape xssHandlerRe needs.
func handlerShape(s string) bool {
	for i := strings.Index(s, "on"); i >= 0; {
		j := i + 2
		for j < len(s) && 'a' <= s[j] && s[j] <= 'z' {
			j++
		}
		for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r' || s[j] == '\f') {
			j++
		}
		if j > i+4 && j < len(s) && s[j] == '=' {
			return true
		}
		k := strings.Index(s[i+2:], "on")
		if k < 0 {
			return false
		}
		i += 2 + k
	}
	return false
}

// scriptURI finds javascript:, vbscript: or livescript: URLs. With code
// after the scheme (a call, an assignment, a template literal) it is an
// attack; bare, or the harmless "javascript:void(0)", it is borderline.
func scriptURI(view string) hit {
	for _, scheme := range [...]string{"javascript:", "vbscript:", "livescript:"} {
		i := strings.Index(view, scheme)
		if i < 0 {
			continue
		}
		rest := strings.TrimSpace(view[i+len(scheme):])
		switch {
		case rest == "", rest == ";", strings.HasPrefix(rest, "void(0)"), strings.HasPrefix(rest, "void 0"):
			return mk(weightBorderline, ruleXSSBareURI)
		case strings.ContainsAny(rest, "(`=\\") || strings.Contains(rest, "%28"): // a backslash: an escape in the code
			return mk(weightBlock, ruleXSSJSURI)
		}
		return mk(weightBorderline, ruleXSSBareURI)
	}
	return hit{}
}

// cssUnescape decodes CSS escapes ("\6a avascript" is "javascript"): a
// backslash, one to six hex digits and an optional space. Only escapes
// that spell printable ASCII are decoded, so Windows paths ("C:\dev")
// mostly survive; the result only feeds the XSS rules.
func cssUnescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		var r rune
		j := i + 1
		for ; j < len(s) && j <= i+6; j++ {
			v, ok := pathnorm.Unhex(s[j])
			if !ok {
				break
			}
			r = r<<4 | rune(v)
		}
		if j == i+1 || r < 0x20 || r >= 0x7f {
			if j == i+1 && j < len(s) && s[j] > ' ' && !isWordByte(s[j]) {
				continue // "\:" is ":" in CSS
			}
			b = append(b, c)
			continue
		}
		b = append(b, byte(r))
		if j < len(s) && s[j] == ' ' {
			j++
		}
		i = j - 1
	}
	return string(b)
}
