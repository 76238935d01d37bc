package payload

import (
	"bufio"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	libinjection "github.com/corazawaf/libinjection-go"
)

// detector identifies one detector; its name is the reason suffix
// ("payload." + name) and the metric label.
type detector uint8

// Detectors in tie-break order: when two detectors reach the same weight,
// the earlier one names the reason.
const (
	detSQLi detector = iota
	detXSS
	detShell
	detTraversal
	detPrompt
	detNull
	detEncoding
	numDetectors
)

var detectorNames = [numDetectors]string{
	detSQLi:      "sqli",
	detXSS:       "xss",
	detShell:     "shell_injection",
	detTraversal: "path_traversal",
	detPrompt:    "prompt_injection",
	detNull:      "null_byte",
	detEncoding:  "encoding_trick",
}

func (d detector) String() string { return detectorNames[d] }

// Character classes, computed in one pass over a normalised value so each
// detector can skip values that cannot match it.
const (
	cLT uint32 = 1 << iota
	cGT
	cQuote // ' or "
	cBacktick
	cEq
	cSemi
	cPipe
	cAmp
	cDollar
	cParen
	cDot
	cSlash
	cBackslash
	cHash
	cDash
	cStar
	cComma
	cAt
	cNewline
	cColon
	cBang
	cDigit
	cNonASCII
)

var classTable = func() (t [256]uint32) {
	set := func(chars string, c uint32) {
		for i := 0; i < len(chars); i++ {
			t[chars[i]] |= c
		}
	}
	set("<", cLT)
	set(">", cGT)
	set(`'"`, cQuote)
	set("`", cBacktick)
	set("=", cEq)
	set(";", cSemi)
	set("|", cPipe)
	set("&", cAmp)
	set("$", cDollar)
	set("()", cParen)
	set(".", cDot)
	set("/", cSlash)
	set(`\`, cBackslash)
	set("#", cHash)
	set("-", cDash)
	set("*", cStar)
	set(",", cComma)
	set("@", cAt)
	set("\r\n", cNewline)
	set(":", cColon)
	set("!", cBang)
	set("0123456789", cDigit)
	for i := 0x80; i < 0x100; i++ {
		t[i] |= cNonASCII
	}
	return t
}()

func classes(s string) uint32 {
	var m uint32
	for i := 0; i < len(s); i++ {
		m |= classTable[s[i]]
	}
	return m
}

const (
	// sqlChars: without one of these, "--", "/*" or a SQL word, libinjection
	// finds no SQL (TestPrefilterSound checks this on random input).
	sqlChars = cQuote | cBacktick | cSemi | cParen | cEq | cStar | cAt |
		cPipe | cAmp | cLT | cGT | cBackslash | cBang | cDollar
	// dangerChars are what an encoding trick is usually smuggling.
	dangerChars = cLT | cGT | cQuote | cBacktick | cSemi | cPipe | cDollar
)

//go:embed sql_words.txt
var sqlWordsText string

// sqlWords are the words libinjection's lexer knows (sql_words.txt).
var sqlWords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, l := range strings.Split(sqlWordsText, "\n") {
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
			m[l] = struct{}{}
		}
	}
	return m
}()

func isLetterOrUnderscore(c byte) bool { return ('a' <= c && c <= 'z') || c == '_' }

// hasSQLWord reports whether lower contains a word libinjection's lexer
// treats as SQL ("1 union select 1" has no punctuation). Words are runs of
// letters; after a digit the lexer may have eaten hex digits or an exponent
// into the number ("0x1fhaving", "1e5and"), so those suffixes count too.
// Splitting more eagerly than libinjection only makes the gate open more.
func hasSQLWord(lower string) bool {
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
		if _, ok := sqlWords[w]; ok {
			return true
		}
		if i > 0 && lower[i-1] >= '0' && lower[i-1] <= '9' {
			for k := 0; k < len(w)-1 && w[k] >= 'a' && w[k] <= 'f'; k++ {
				if _, ok := sqlWords[w[k+1:]]; ok {
					return true
				}
			}
		}
		i = j
	}
	return false
}

// isWordByte: letters, digits, '_' and every non-ASCII byte (so accented
// and CJK text stays inside words).
func isWordByte(c byte) bool {
	return c >= 0x80 || c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// nextWord returns the bounds of the first word at or after i, or -1.
func nextWord(s string, i int) (int, int) {
	for i < len(s) && !isWordByte(s[i]) {
		i++
	}
	if i >= len(s) {
		return -1, -1
	}
	j := i
	for j < len(s) && isWordByte(s[j]) {
		j++
	}
	return i, j
}

// sqlProbeWords are single tokens that fuzzing wordlists send on their own
// to provoke SQL errors; as a whole value they are borderline, never more.
var sqlProbeWords = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "union": true,
	"drop": true, "truncate": true, "replace": true, "having": true, "order by": true,
	"group by": true, "limit": true, "procedure": true, "handler": true,
	"distinct": true, "like": true, "asc": true, "desc": true, "as": true,
	"or": true, "and": true, "exec": true, "print": true, "bfilename": true,
	"to_timestamp_tz": true, "tz_offset": true, "exec xp": true, "exec sp": true,
	"waitfor": true, "benchmark": true, "sleep": true, "xp_cmdshell": true,
}

// sqlProbe reports what fuzzers send to provoke SQL (or LDAP) errors
// without forming a query libinjection recognises: a lone keyword or
// @variable, punctuation alone that breaks quoting, a quote followed by a
// keyword, a stacked statement, a well-known dangerous routine, an LDAP
// filter break-out. Scored 1 (borderline), so the LLM, not this list,
// decides.
func sqlProbe(lower string) bool {
	t := strings.TrimSpace(lower)
	if t == "" {
		return false
	}
	if sqlProbeShort(t) {
		return true
	}
	return sqlProbeLong(t)
}

// sqlProbeShort covers short whole-value probes; t is trimmed.
func sqlProbeShort(t string) bool {
	if len(t) <= 24 {
		// "@name" is also a social handle, so only ",@var" counts; "--" is
		// a comment only when no option name follows ("--help").
		if sqlProbeWords[t] || strings.HasPrefix(t, ",@") ||
			(strings.HasPrefix(t, "--") && (len(t) == 2 || !isWordByte(t[2]))) {
			return true
		}
		letters := false
		for i := 0; i < len(t); i++ {
			if isWordByte(t[i]) {
				letters = true
				break
			}
		}
		if !letters {
			// Punctuation only: quotes, comment starts, parentheses, pipes,
			// LDAP wildcards. A lone "-", "." or "/" is ordinary.
			return strings.ContainsAny(t, "'\"`#()|&!*;=\\") || t == "//" || strings.Contains(t, "/*")
		}
		// A quote glued to a word that is not a name ("'sqlattempt1",
		// "(sqlattempt2)"); O'Brien is a word around a quote.
		if (t[0] == '\'' || t[0] == '(') && !strings.ContainsAny(t[1:], " '") {
			return true
		}
	}
	return false
}

// sqlProbeLong covers probes inside longer values; t is trimmed.
func sqlProbeLong(t string) bool {
	// A quote (closing the string the value sits in) followed by a keyword.
	if c := t[0]; c == '\'' || c == '"' || c == '`' || c == ')' {
		i := 1
		for i < len(t) && (t[i] == ' ' || t[i] == '(' || t[i] == ')') {
			i++
		}
		if st, en := nextWord(t, i); st == i && sqlKeyword(t[st:en]) {
			return true
		}
	}
	// A stacked statement: "1;select".
	for i := strings.IndexByte(t, ';'); i >= 0; {
		if st, en := nextWord(t, i+1); st >= 0 && strings.TrimSpace(t[i+1:st]) == "" {
			switch t[st:en] {
			case "select", "insert", "update", "delete", "drop", "exec", "execute",
				"declare", "shutdown", "create", "alter", "truncate":
				return true
			}
		}
		j := strings.IndexByte(t[i+1:], ';')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if strings.IndexByte(t, '_') >= 0 {
		for _, p := range sqlRoutines {
			if strings.Contains(t, p) {
				return true
			}
		}
	}
	for _, p := range sqlFragments {
		if strings.Contains(t, p) {
			return true
		}
	}
	// Time-based probes: sleep 50, sleep(5); not "sleep 8 hours".
	if i := strings.Index(t, "sleep"); i >= 0 {
		r := strings.TrimLeft(t[i+5:], " (")
		if r != "" && r[0] >= '0' && r[0] <= '9' {
			r = strings.TrimLeft(r, "0123456789")
			if r == "" || !isWordByte(r[0]) && r[0] != ' ' {
				return true
			}
		}
	}
	return false
}

// sqlRoutines: names and fragments that only appear in attacks on a
// database (or an LDAP filter).
var sqlRoutines = []string{
	"xp_cmdshell", "xp_regread", "sp_password", "sp_executesql", "utl_http",
	"dbms_pipe", "pg_sleep", "load_file", "information_schema",
}

// sqlFragments: the same, for fragments without '_'.
var sqlFragments = []string{
	"into outfile", "into dumpfile", "@@", "waitfor delay", "benchmark(",
	"(|(", "(&(", ")(|", ")(&", "*)(",
}

func sqlKeyword(w string) bool {
	switch w {
	case "or", "and", "xor", "select", "union", "exec", "execute", "having", "order",
		"group", "insert", "update", "delete", "drop", "like", "exists", "where", "waitfor":
		return true
	}
	return false
}

// detectSQLi: libinjection decides (weight 3); the probe heuristics add a
// borderline 1, except on keys, where "limit" or "order" are field names.
// sqliGate reports whether libinjection could flag s; it exists because
// libinjection costs about a microsecond per value and most values are
// plain words, numbers, dates and identifiers.
func sqliGate(lower string, cls uint32) bool {
	return cls&sqlChars != 0 ||
		(cls&cDash != 0 && strings.Contains(lower, "--")) ||
		(cls&cHash != 0 && hashComment(lower)) ||
		(cls&cSlash != 0 && strings.Contains(lower, "/*")) ||
		(cls&cColon != 0 && strings.Contains(lower, "::")) ||
		hasSQLWord(lower)
}

// hashComment reports a '#' that libinjection could read as a MySQL
// comment ending a SQL fragment: one with a number or word before it that
// is not the "#5" of "headphones #5" or a hashtag.
func hashComment(lower string) bool {
	for i := strings.IndexByte(lower, '#'); i >= 0; {
		if i+1 >= len(lower) || !isWordByte(lower[i+1]) {
			return true // nothing glued after '#': a comment marker
		}
		j := strings.IndexByte(lower[i+1:], '#')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

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

func detectSQLi(norm, lower string, cls uint32, key bool) uint8 {
	if !sqliGate(lower, cls) {
		if t := strings.TrimSpace(lower); !key && t != "" && sqlProbeShort(t) {
			return 1
		}
		return 0
	}
	if ok, _ := libinjection.IsSQLi(norm); ok {
		return 3
	}
	if stripped, ok := stripSQLComments(norm); ok {
		if hit, _ := libinjection.IsSQLi(stripped); hit {
			return 3
		}
	}
	// libinjection tries the value as-is and after a quote; a value that
	// starts with a logical operator was written for a numeric context
	// ("id=1 or 1=1--"), so try it after a number too.
	if st, en := nextWord(lower, 0); st >= 0 && strings.TrimSpace(lower[:st]) == "" {
		switch lower[st:en] {
		case "or", "and", "xor", "union", "having", "order", "group", "procedure", "limit":
			if hit, _ := libinjection.IsSQLi("1 " + norm); hit {
				return 3
			}
		}
	}
	if !key && sqlProbe(lower) {
		return 1
	}
	return 0
}

func detectXSS(norm, lower string, cls uint32) uint8 {
	if cls&(cLT|cGT|cEq|cBacktick|cColon) == 0 {
		return 0
	}
	if xssGate(lower, cls) {
		// Browsers drop tabs and newlines inside attribute URLs
		// ("jav\tascript:"); libinjection does not.
		if libinjection.IsXSS(stripControls(norm)) {
			return 3
		}
	}
	// libinjection judges markup; a bare "javascript:" URL is a value that
	// becomes XSS when echoed into href/src. Borderline: the LLM decides.
	if cls&cColon != 0 && (strings.Contains(lower, "javascript:") || strings.Contains(lower, "vbscript:")) {
		return 2
	}
	return 0
}

// Sensitive files named in traversal and local-file-inclusion attacks,
// lowercased with '/' separators.
var sensitiveFiles = []string{
	"/etc/passwd", "/etc/shadow", "/etc/hosts", "/etc/group", "/etc/issue",
	"/proc/self/", "/proc/version", "boot.ini", "win.ini", "system.ini",
	"/windows/system32", "/winnt/", "global.asa", "web.config", ".htaccess",
	".htpasswd", "/.ssh/", "id_rsa", "/.aws/credentials", "/.git/config",
	"wp-config.php", "conf/server.xml", "localstart.asp", "/bin/sh", "/bin/bash",
	"/bin/id", "/bin/cat", "/var/log/", "desktop.ini",
}

// sensitiveIndex finds sensitiveFiles in one pass: each file is keyed by
// the three bytes at its first '/', '.' or '_' (its anchor), so a value is
// only compared where it has such a byte and the next two match.
type sensitivePattern struct {
	file   string
	anchor int
}

var sensitiveIndex = func() map[string][]sensitivePattern {
	m := map[string][]sensitivePattern{}
	for _, f := range sensitiveFiles {
		i := strings.IndexAny(f, "/._")
		if i < 0 || i+3 > len(f) {
			panic("sensitive file without an anchor: " + f)
		}
		m[f[i:i+3]] = append(m[f[i:i+3]], sensitivePattern{file: f, anchor: i})
	}
	return m
}()

// findSensitive calls found with the index of every sensitive file in s.
func findSensitive(s string, found func(i int) bool) {
	for i := 0; i+3 <= len(s); i++ {
		if c := s[i]; c != '/' && c != '.' && c != '_' {
			continue
		}
		for _, p := range sensitiveIndex[s[i:i+3]] {
			start := i - p.anchor
			if start >= 0 && strings.HasPrefix(s[start:], p.file) && found(start) {
				return
			}
		}
	}
}

func detectTraversal(lower string, cls uint32, inPath bool) uint8 {
	if cls&(cDot|cSlash|cBackslash) == 0 {
		return 0
	}
	s := lower
	if cls&cBackslash != 0 {
		s = strings.ReplaceAll(s, `\`, "/")
	}
	// Count dot-only segments of two or more dots ("..", "..." — the
	// latter is an old Windows alias for ../..).
	levels, dotSlash := 0, 0
	for i := 0; i < len(s); {
		if s[i] != '.' || (i > 0 && s[i-1] != '/') {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '.' {
			j++
		}
		if (j < len(s) && s[j] == '/') || (j == len(s) && i > 0) {
			if j-i >= 2 {
				levels++
			} else if j < len(s) {
				dotSlash++ // "./"
			}
		}
		i = j
	}
	var w uint8
	switch {
	case levels >= 3:
		w = 3
	case levels == 2:
		w = 2
	case levels == 1:
		w = 1
	case dotSlash >= 3:
		w = 1
	}
	if inPath && levels > 0 {
		// Envoy and browsers normalise dot segments; one that reaches us
		// was sent on purpose.
		w = 3
	}
	drive := len(s) >= 3 && s[0] >= 'a' && s[0] <= 'z' && s[1] == ':' && s[2] == '/'
	traversal := w > 0
	findSensitive(s, func(i int) bool {
		if traversal || i == 0 || drive || s[0] == '/' && i <= 1 {
			// After a traversal, at the start of the value, or after a
			// drive letter: the value names the file.
			w = 3
			return true
		}
		w = max(w, 2)
		return false
	})
	return w
}

var shellCommands = map[string]bool{
	"cat": true, "ls": true, "id": true, "whoami": true, "uname": true, "pwd": true,
	"wget": true, "curl": true, "nc": true, "ncat": true, "netcat": true, "bash": true,
	"sh": true, "zsh": true, "ksh": true, "rm": true, "ping": true, "nslookup": true,
	"dig": true, "sleep": true, "echo": true, "chmod": true, "chown": true,
	"python": true, "python3": true, "perl": true, "ruby": true, "php": true,
	"powershell": true, "cmd": true, "ifconfig": true, "ipconfig": true,
	"netstat": true, "ps": true, "kill": true, "mkfifo": true, "telnet": true,
	"base64": true, "printenv": true, "hostname": true, "systeminfo": true,
	"head": true, "tail": true, "uptime": true, "xterm": true,
}

// detectShell looks for a command separator followed by a known command
// that takes arguments the way a shell would see them.
func detectShell(lower string, cls uint32) uint8 {
	if cls&(cSemi|cPipe|cAmp|cBacktick|cDollar|cNewline) == 0 {
		return 0
	}
	var w uint8
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		var sep uint8 // weight if a command follows
		start := i + 1
		switch c {
		case '$':
			if i+1 < len(lower) && lower[i+1] == '(' {
				sep, start = 3, i+2
			}
		case '`':
			// Inline code in Markdown uses backticks too: in prose the
			// LLM decides; at the start of a value or after a quote or
			// '=' it is command substitution. A fence (```) is followed
			// by a language name, not a command.
			if i+1 < len(lower) && lower[i+1] == '`' {
				for i+1 < len(lower) && lower[i+1] == '`' {
					i++
				}
				continue
			}
			sep = 1
			if i == 0 || strings.IndexByte(`'"=(`, lower[i-1]) >= 0 {
				sep = 3
			}
		case ';', '|', '\n', '\r':
			sep = 2
		case '&':
			if i+1 < len(lower) && lower[i+1] == '&' {
				sep, start = 2, i+2
			}
		}
		if sep == 0 {
			continue
		}
		if cw, ok := commandAt(lower, start, sep); ok {
			w = max(w, cw)
			if w >= 3 {
				return w
			}
		}
	}
	return w
}

// commandAt reads an optional path and a command word at i; it reports the
// weight when the word is a known command followed by what a shell would
// take as arguments (nothing, an option, a path, a variable, a redirection)
// rather than more prose ("cats; cat food").
func commandAt(s string, i int, sep uint8) (uint8, bool) {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	absolute := false
	// /bin/cat, /usr/bin/id: an absolute path to a binary is a command.
	for _, p := range []string{"/usr/local/bin/", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"} {
		if strings.HasPrefix(s[i:], p) {
			i += len(p)
			absolute = true
			break
		}
	}
	j := i
	for j < len(s) && (('a' <= s[j] && s[j] <= 'z') || ('0' <= s[j] && s[j] <= '9')) {
		j++
	}
	if j == i || !shellCommands[s[i:j]] {
		return 0, false
	}
	if absolute || sep >= 3 {
		// "/bin/cat", or any command right inside $( or a quoted `.
		return max(sep, 3), true
	}
	if j == len(s) {
		return sep, true
	}
	switch s[j] {
	case '|', ';', '&', '>', '<', '`', ')', '\n':
		return sep, true
	case ' ', '\t':
		k := j
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k == len(s) {
			return sep, true
		}
		switch s[k] {
		case '-', '/', '$', '~', '.', '|', ';', '&', '>', '<', '`', '\'', '"':
			return sep, true
		}
		if s[k] >= '0' && s[k] <= '9' && s[i:j] == "sleep" {
			return sep, true // time-based blind injection: "; sleep 5"
		}
	}
	return 0, false
}

//go:embed prompt_phrases.txt
var promptPhrasesText string

type phrase struct {
	words  []string
	text   string
	weight uint8
}

// phraseSet matches prompt-injection phrases word by word in one pass:
// each word of the value is looked up as a possible first word (a length
// and first-byte bitmap rejects most words before the map lookup).
type phraseSet struct {
	byFirst  map[string][]phrase
	firstLen [256]uint64
	substr   []phrase // phrases that start with a non-letter or non-ASCII
}

var prompts = mustParsePhrases(promptPhrasesText)

func mustParsePhrases(text string) *phraseSet {
	p, err := parsePhrases(text)
	if err != nil {
		panic(err) // the embedded file is part of the build
	}
	return p
}

func parsePhrases(text string) (*phraseSet, error) {
	p := &phraseSet{byFirst: map[string][]phrase{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		ws, rest, ok := strings.Cut(line, " ")
		w, err := strconv.Atoi(ws)
		if !ok || err != nil || w < 1 || w > 9 {
			return nil, fmt.Errorf("prompt_phrases.txt line %d: want \"<weight 1-9> <phrase>\", got %q", n, line)
		}
		text := strings.ToLower(strings.TrimSpace(rest))
		ph := phrase{text: text, weight: uint8(w)}
		if c := text[0]; c < 'a' || c > 'z' {
			if c != '<' && c != '[' && c < 0x80 {
				// match only looks for substrings when one of these is present.
				return nil, fmt.Errorf("prompt_phrases.txt line %d: a phrase must start with a letter, '<', '[' or a non-ASCII character", n)
			}
			p.substr = append(p.substr, ph)
			continue
		}
		for i := 0; ; {
			st, en := nextWord(text, i)
			if st < 0 {
				break
			}
			ph.words = append(ph.words, text[st:en])
			i = en
		}
		first := ph.words[0]
		if len(first) >= 64 {
			return nil, fmt.Errorf("prompt_phrases.txt line %d: first word too long", n)
		}
		p.byFirst[first] = append(p.byFirst[first], ph)
		p.firstLen[first[0]] |= 1 << len(first)
	}
	return p, sc.Err()
}

// match returns the highest weight of a phrase found in lower.
func (p *phraseSet) match(lower string, cls uint32) uint8 {
	var w uint8
	// Substring phrases start with '<', '[' or a non-ASCII byte.
	if cls&(cLT|cNonASCII) != 0 || strings.IndexByte(lower, '[') >= 0 {
		for _, ph := range p.substr {
			if ph.weight > w && strings.Contains(lower, ph.text) {
				w = ph.weight
			}
		}
	}
	for i := 0; i < len(lower); {
		st, en := nextWord(lower, i)
		if st < 0 {
			break
		}
		i = en
		if n := en - st; n >= 64 || p.firstLen[lower[st]]&(1<<n) == 0 {
			continue
		}
	cand:
		for _, ph := range p.byFirst[lower[st:en]] {
			if ph.weight <= w {
				continue
			}
			pos := en
			for _, word := range ph.words[1:] {
				s, e := nextWord(lower, pos)
				if s < 0 || lower[s:e] != word {
					continue cand
				}
				pos = e
			}
			w = ph.weight
		}
	}
	return w
}

// encodingTrick scores decoding layers beyond what a client legitimately
// sends (one round of URL encoding) when they reveal characters that
// matter to an interpreter.
func encodingTrick(l layers, cls uint32, lower string) uint8 {
	if l.overlong || l.percentU {
		return 2 // never produced by a conforming client
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
		return 2
	case l.url == 2 && (l.html || l.escapes):
		return 2
	case l.url == 2:
		return 1
	case l.escapes && (l.url == 1 || l.html):
		return 1
	}
	return 0
}
