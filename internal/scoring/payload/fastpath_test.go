package payload

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The fast paths in front of the detectors (issue 16: the GET and JSON
// benchmarks within 20% of what they cost before the CRS-breadth
// detectors) must not change a verdict: each skips work only when the
// work could not find anything. These tests hold every fast path to the
// plain code it replaces, on random values built from what the detectors
// look for, and on whatever FuzzFastPaths finds.

// fastPathPieces are the bytes and fragments the fast paths and the
// regexps behind them test for, with enough filler to separate them.
var fastPathPieces = []string{
	"a", "Z", "1", "0x1f", "1e5", " ", " ", "\t", "\n", "\f", "\r", "-", "/", ".", ",", ":", "+", "%", "?", "_", "~",
	"{", "}", "[", "]", "é", "＜", "\xc0\xae", "\xff", "\x00", "=", "'", "\"", "`", "(", ")", ";", "&", "#", "*", "@", "|", "!", "$", "\\",
	"%2e", "%u002e", "&lt;", "&#x3c;", `\u003c`, `\x3c`,
	// sqlFragment, sqlExtraRules' pre-checks
	"into ", "into outfile", "into dumpfile", "outfile", "@@", "waitfor", "waitfor delay", "benchmark", "benchmark(",
	"(|(", "(&(", ")(|", ")(&", "*)(", "select", "select ", "union", "unionselect", "pg_sleep", "*/", "/*", "/*!",
	"master.", "exec", "execute", "immediate", "declare", "declare @", "procedure", "analyse", "truncate", "replace",
	"values", "table", "alter table", "create", "function", "returns", "charset", "change", "if", "if(", "div(", "json_",
	":=", "as", "from", " from ", "regexp", "user", "version", "4294967296", "2147483647", ".e(", ".e.",
	// requestLine, schemes
	"get ", "post ", "head ", "put ", "options ", "/ ", "http/1.1", "https://", "http:", "php://", "gopher://", "localhost/",
	// metadataAddr
	"169.254.", "169.254.169.254", "192.0.0.192", "100.100.100.200", "100.", "169", "fd00:ec2", "fd00:",
	// nodeCallCandidate
	"console", "console.log(", "new function(", "string.fromcharcode(", "module.exports=", "process.env", "require[", "require.main",
	// bashShape
	"<(", ">(", "$[", "$((", "${", "<<<", "() {",
	// findSensitive
	"/etc/passwd", "/et", "/proc/self/", "/pr", "boot.ini", ".in", ".htaccess", ".ht", "id_rsa", "_rs", "/.git/", "/.e",
	".sql.gz", "win.ini", "web-inf/web.xml", "/sys/class", "/bin/sh",
	// runDetectors' gates: a piece of each detector's attacks
	"__reduce__", "cos\nsystem\n", "ro0ab", "rO0AB", "aced0005", "\xac\xed\x00\x05", "AAEAAAD/////", "java.lang.runtime",
	"o:8:\"stdclass\":1:{", "\"$type\":\"system.", "objectdataprovider", "${jndi:ldap://", "${", "[$ne]", "$where", "{{7*7}}",
	"<script>", "<svg onload=", "javascript:", "+adw-", "php://filter", "phar://", "\r\nset-cookie:", "localhost/", "localhost:8080/",
	"127.0.0.1", "http:127.", "data:text/html", "gopher://", "ftp://", "*)(uid=*", "(&(", "; cat /etc/passwd", "|id", "`id`",
	"$(id)", "alert(1)", "document.cookie", "union select", "' or 1=1--",
	// prompt phrases' first words glued to word bytes (the kwPrompt gate)
	"ignore", "ignore previous instructions", "you are now", "_you", "you1", "xignore", "ignoreé",
}

// randomFastPathValue joins a few pieces, sometimes a sensitive file name
// or a libinjection keyword, sometimes uppercased.
func randomFastPathValue(r *rand.Rand, words []string) string {
	var b strings.Builder
	for range 1 + r.IntN(12) {
		var p string
		switch r.IntN(10) {
		case 0:
			p = words[r.IntN(len(words))]
		case 1:
			p = sensitiveFiles[r.IntN(len(sensitiveFiles))]
		default:
			p = fastPathPieces[r.IntN(len(fastPathPieces))]
		}
		if r.IntN(6) == 0 {
			p = strings.ToUpper(p)
		}
		b.WriteString(p)
	}
	return b.String()
}

func TestFastPathsRandom(t *testing.T) {
	words := make([]string, 0, len(sqlWords))
	for w := range sqlWords {
		words = append(words, w)
	}
	slices.Sort(words)
	r := rand.New(rand.NewPCG(16, 20))
	const n = 100000
	for range n {
		s := randomFastPathValue(r, words)
		checkFastPaths(t, s)
		if t.Failed() {
			return
		}
	}
}

func FuzzFastPaths(f *testing.F) {
	for _, s := range []string{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
		"https://shop.example.com/p/17", "noise-cancelling; select your colour & size", "'; select user()--",
		"1 and benchmark(5000000,md5(1))", "*)(|(mail=*))", "x$((1+1))", "..%2f..%2fetc%2fpasswd", "1 into outfile '/tmp/x'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkFastPaths(t, s)
	})
}

// checkFastPaths compares each fast path on s (and on s lowercased, which
// is what most detectors read) with the code it stands in for.
func checkFastPaths(t *testing.T, s string) {
	t.Helper()
	for _, plus := range []bool{false, true} {
		gotN, gotL := normalise(s, plus)
		wantN, wantL := decodeLayers(s, plus)
		if gotN != wantN || gotL != wantL {
			t.Errorf("normalise(%q, %v) = %q, %+v; decoding gives %q, %+v", s, plus, gotN, gotL, wantN, wantL)
		}
		lower := strings.ToLower(gotN)
		cls := classes(lower)
		kcls := classesAndKeywords(lower)
		for _, c := range []struct {
			prefix, name string
			key          bool
		}{{locPath, "file", false}, {locQueryKey, s, true}} {
			got := runDetectors(gotN, lower, kcls, gotL, c.prefix, c.name, c.key)
			if want := refRunDetectors(gotN, lower, kcls, gotL, c.prefix, c.name, c.key); got != want {
				t.Errorf("runDetectors(%q, %+v) = %v, every detector says %v", lower, c, got, want)
			}
			p := pending{norm: gotN, lower: lower, cls: kcls, l: gotL, prefix: c.prefix, name: c.name, key: c.key}
			if hit, want := anyHit([]pending{p}), got != [numDetectors]hit{}; hit != want {
				t.Errorf("anyHit(%q, %+v) = %v, runDetectors says %v", lower, c, hit, got)
			}
		}
		// Every combination of the layers encodingTrick reads.
		for bits := range 64 {
			l := layers{url: uint8(bits & 3), html: bits&4 != 0, escapes: bits&8 != 0, null: bits&16 != 0, overlong: bits&32 != 0}
			if got, want := encodingTrick(l, cls, lower), refEncodingTrick(l, cls, lower); got != want {
				t.Errorf("encodingTrick(%+v, %q) = %v, want %v", l, lower, got, want)
			}
		}
	}
	var buf []byte
	if got, want := toLower(s, &buf), strings.ToLower(s); got != want {
		t.Errorf("toLower(%q) = %q, strings.ToLower says %q", s, got, want)
	}
	for i, v := range []string{s, strings.ToLower(s)} {
		if i == 1 && v == s {
			break
		}
		cls := classes(v)
		if got, want := bashShape(v, cls), refBashShape(v); got != want {
			t.Errorf("bashShape(%q) = %v, the substring scans say %v", v, got, want)
		}
		if got, want := sqlFragment(v), refSQLFragment(v); got != want {
			t.Errorf("sqlFragment(%q) = %v, the substring scans say %v", v, got, want)
		}
		if got, want := hasSQLWord(v), refHasSQLWord(v); got != want {
			t.Errorf("hasSQLWord(%q) = %v, the map says %v", v, got, want)
		}
		if got, want := sensitiveHits(v, findSensitive), sensitiveHits(v, refFindSensitive); !slices.Equal(got, want) {
			t.Errorf("findSensitive(%q) = %v, the map says %v", v, got, want)
		}
		if got, want := metadataAddr(v), refMetadataAddr(v); got != want {
			t.Errorf("metadataAddr(%q) = %v, the scans say %v", v, got, want)
		}
		if nodeCallRe.MatchString(v) && !nodeCallCandidate(v, cls) {
			t.Errorf("nodeCallCandidate rejects %q, which nodeCallRe matches", v)
		}
		if got, want := classesAndKeywords(v), refClassesAndKeywords(v); got != want {
			t.Errorf("classesAndKeywords(%q) = %#x, the plain loop says %#x", v, got, want)
		}
		if got, want := prompts.match(v, classesAndKeywords(v)), prompts.matchAll(v, cls); got != want {
			t.Errorf("prompts.match(%q) = %d, the ungated walk says %d", v, got, want)
		}
		if got, want := requestLine(v), refRequestLine(v); got != want {
			t.Errorf("requestLine(%q) = %v, the prefix tests say %v", v, got, want)
		}
		for i := range sqlExtraRules {
			r := &sqlExtraRules[i]
			if r.pre != nil && !r.pre(v) && r.re.MatchString(v) {
				t.Errorf("sqlExtraRules[%d] (%s): pre-check rejects %q, which its regexp matches", i, r.rule, v)
			}
		}
	}
}

// The code the fast paths replaced.

// refRunDetectors is runDetectors calling every detector: each returns
// nothing on a value without the classes its first test needs.
func refRunDetectors(norm, lower string, cls uint64, l layers, prefix, name string, key bool) [numDetectors]hit {
	var w [numDetectors]hit
	w[detSQLi] = detectSQLi(norm, lower, cls, key)
	w[detXSS] = detectXSS(norm, lower, cls)
	w[detShell] = detectShell(norm, lower, cls, key)
	w[detTraversal] = detectTraversal(lower, cls, prefix == locPath)
	w[detJNDI] = detectJNDI(lower, cls)
	w[detSSTI] = detectSSTI(lower, cls)
	w[detNoSQLi] = detectNoSQLi(lower, cls, key)
	w[detLDAPi] = detectLDAPi(lower, cls)
	if cls&newFamilyClasses != 0 {
		w[detCRLF] = detectCRLF(lower, cls) // gated so before this change too
	}
	if cls&cNewline != 0 && (key || prefix == locPath) {
		w[detCRLF] = mk(weightBlock, ruleCRLFName)
	}
	w[detPHPWrapper] = detectPHPWrapper(lower, cls)
	w[detSSRF] = detectSSRF(lower, cls)
	w[detSSTI] = w[detSSTI].or(detectNode(lower, cls))
	w[detSSRF] = w[detSSRF].or(detectBareHost(lower))
	if cls&(cQuestion|cColon) != 0 {
		w[detSSRF] = w[detSSRF].or(ssrfShapes(lower)) // gated so before this change too
	}
	if cls&cColon != 0 && !key && name != "" && w[detSSRF].w < weightBlock {
		w[detSSRF] = w[detSSRF].or(remoteIncludeParam(name, lower))
	}
	w[detDeserialization] = detectDeserialization(norm, lower, cls, key)
	if pw := prompts.matchAll(lower, cls); pw > 0 {
		w[detPrompt] = mk(pw, rulePromptPhrase)
	}
	if l.null {
		w[detNull] = mk(weightBorderline, ruleNullByte)
	}
	w[detEncoding] = encodingTrick(l, cls, lower)
	return w
}

// refClassesAndKeywords is classesAndKeywords as one loop.
func refClassesAndKeywords(lower string) uint64 {
	var m uint64
	word := -1 // start of the current [a-z][a-z0-9_]* run, or -1
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		m |= classTable[c]
		if ('a' <= c && c <= 'z') || (word >= 0 && (('0' <= c && c <= '9') || c == '_')) {
			if word < 0 {
				word = i
			}
			continue
		}
		if word >= 0 {
			m |= wordKeyword(lower[word:i])
			word = -1
		}
	}
	if word >= 0 {
		m |= wordKeyword(lower[word:])
	}
	return m
}

func refBashShape(s string) bool {
	return strings.Contains(s, "<(") || strings.Contains(s, ">(") || strings.Contains(s, "$[") || strings.Contains(s, "$((") ||
		strings.Contains(s, "${") || strings.Contains(s, "<<<") || strings.Contains(s, "() {")
}

func refSQLFragment(t string) bool {
	for _, p := range sqlFragments {
		if strings.Contains(t, p) {
			return true
		}
	}
	return false
}

// refHasSQLWord is hasSQLWord with a map lookup for every word.
func refHasSQLWord(lower string) bool {
	in := func(w string) bool { _, ok := sqlWords[w]; return ok }
	for i := 0; i < len(lower); {
		if !isLetterOrUnderscore(lower[i]) {
			i++
			continue
		}
		j := i
		for j < len(lower) && isLetterOrUnderscore(lower[j]) {
			j++
		}
		w := lower[i:j]
		if in(w) {
			return true
		}
		if i > 0 && lower[i-1] >= '0' && lower[i-1] <= '9' {
			for k := 0; k < len(w)-1 && w[k] >= 'a' && w[k] <= 'f'; k++ {
				if in(w[k+1:]) {
					return true
				}
			}
		}
		i = j
	}
	return false
}

// refFindSensitive is findSensitive with a map lookup at every anchor.
func refFindSensitive(s string, found func(i int, file string) bool) {
	for i := 0; i+3 <= len(s); i++ {
		if c := s[i]; c != '/' && c != '.' && c != '_' {
			continue
		}
		for _, p := range sensitiveIndex[s[i:i+3]] {
			start := i - p.anchor
			if start >= 0 && strings.HasPrefix(s[start:], p.file) && found(start, p.file) {
				return
			}
		}
	}
}

func refMetadataAddr(s string) bool {
	return strings.Contains(s, "169.254.") || strings.Contains(s, "192.0.0.192") || strings.Contains(s, "100.100.100.200") || strings.Contains(s, "fd00:ec2")
}

// refRequestLine is requestLine without the methodStart filter.
func refRequestLine(line string) bool {
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

// refEncodingTrick is encodingTrick without the early return for values
// decoded at most once.
func refEncodingTrick(l layers, cls uint64, lower string) hit {
	if l.overlong || l.percentU {
		return mk(weightBorderline, ruleEncodingNonStandard)
	}
	danger := cls&dangerChars != 0 || l.null || strings.Contains(lower, "../") || strings.Contains(lower, `..\`)
	if !danger {
		return hit{}
	}
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

// sensitiveHits lists what find reports in s, in order.
func sensitiveHits(s string, find func(string, func(int, string) bool)) []string {
	var out []string
	find(s, func(i int, file string) bool {
		out = append(out, file)
		return false
	})
	return out
}

// TestFastPathTables checks the lookup tables against the sets they
// summarise, exhaustively: a table that misses an entry would skip a
// detection.
func TestFastPathTables(t *testing.T) {
	for w := range sqlWords {
		if !isSQLWord(w) {
			t.Errorf("isSQLWord(%q) = false", w)
		}
	}
	for k := range sensitiveIndex {
		if a := anchorIndex(k[0]); a < 0 || !sensitivePair[a][k[1]] {
			t.Errorf("sensitivePair misses %q", k)
		}
	}
	for w := range phpWrappers {
		if !phpWrapperFirst[w[0]] {
			t.Errorf("phpWrapperFirst misses %q", w)
		}
	}
	for s := range dangerousSchemes {
		if !dangerousFirst[s[0]] {
			t.Errorf("dangerousFirst misses %q", s)
		}
	}
	for _, n := range internalHostNames {
		if len(n) < internalHostMin {
			t.Errorf("internalHostMin %d > len(%q)", internalHostMin, n)
		}
	}
	for first, phs := range prompts.byFirst {
		if n := len(first); prompts.firstLen[first[0]]&prompts.lastLen[first[n-1]]&(1<<n) == 0 {
			t.Errorf("prompt filter rejects the first word %q of %q", first, phs[0].text)
		}
		// The kwPrompt gate: each first word, alone, sets the bit.
		if !prompts.walkAlways && classesAndKeywords(first)&kwPrompt == 0 {
			t.Errorf("classesAndKeywords(%q) lacks kwPrompt", first)
		}
	}
	if prompts.walkAlways {
		t.Errorf("a prompt phrase's first word is not [a-z][a-z0-9_]*: the kwPrompt gate is off")
	}
	for c := range 256 {
		// chainScan's switch acts on exactly these bytes.
		if want := strings.IndexByte("$`;\n\r|&", byte(c)) >= 0; chainByte[c] != want {
			t.Errorf("chainByte[%q] = %v", byte(c), chainByte[c])
		}
	}
	for w := range shellCommands {
		if shellCommand(w) != shellCommands[w] {
			t.Errorf("shellCommand(%q) = %d, want %d", w, shellCommand(w), shellCommands[w])
		}
	}
	for c := range 256 {
		if sqlLetter[c] != isLetterOrUnderscore(byte(c)) {
			t.Errorf("sqlLetter[%q] = %v", byte(c), sqlLetter[c])
		}
	}
	for _, d := range binDirs {
		if d[0] != '/' {
			t.Errorf("binDirs entry %q does not start with '/'", d)
		}
	}
	for c := 0; c < 256; c++ {
		b := byte(c)
		if want := b >= 0x80 || b == '_' || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9'); isWordByte(b) != want {
			t.Errorf("isWordByte(%#x) = %v", c, !want)
		}
	}
	for c := 0; c < 256; c++ {
		// Every byte a decoder reacts to is a trigger.
		s := string([]byte{byte(c), '4', '1', '4', '1'})
		for _, plus := range []bool{false, true} {
			if _, l := decodeLayers(s, plus); l != (layers{}) && !needsDecoding(s, plus) {
				t.Errorf("byte %#x decodes but is no trigger (plus %v)", c, plus)
			}
		}
	}
}
