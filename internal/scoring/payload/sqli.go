package payload

import (
	_ "embed"
	"regexp"
	"strings"

	libinjection "github.com/corazawaf/libinjection-go"
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

// sqlWordFirstLen / sqlWordLastLen: bit min(n, 63) of [c] is set when a
// word of sqlWords of length n starts / ends with c, so most words skip
// the map lookup: hasSQLWord on "https://shop.example.com/p/17" cost 1,070
// instructions with a lookup per word, 800 with the filter (callgrind).
var sqlWordFirstLen, sqlWordLastLen = func() (f, l [256]uint64) {
	for w := range sqlWords {
		f[w[0]] |= 1 << min(len(w), 63)
		l[w[len(w)-1]] |= 1 << min(len(w), 63)
	}
	return f, l
}()

// isSQLWord reports w (non-empty) in sqlWords.
func isSQLWord(w string) bool {
	if sqlWordFirstLen[w[0]]&sqlWordLastLen[w[len(w)-1]]&(1<<min(len(w), 63)) == 0 {
		return false
	}
	_, ok := sqlWords[w]
	return ok
}

// sqlLetter is isLetterOrUnderscore as a table, for hasSQLWord's walk.
var sqlLetter = func() (t [256]bool) {
	for c := range t {
		t[c] = isLetterOrUnderscore(byte(c))
	}
	return t
}()

func isLetterOrUnderscore(c byte) bool { return ('a' <= c && c <= 'z') || c == '_' }

// hasSQLWord reports whether lower contains a word libinjection's lexer
// treats as SQL ("1 union select 1" has no punctuation). Words are runs of
// letters; after a digit the lexer may have eaten hex digits or an exponent
// into the number ("0x1fhaving", "1e5and"), so those suffixes count too.
// Splitting more eagerly than libinjection only makes the gate open more.
func hasSQLWord(lower string) bool {
	for i := 0; i < len(lower); {
		if !sqlLetter[lower[i]] {
			i++
			continue
		}
		j := i
		for j < len(lower) && sqlLetter[lower[j]] {
			j++
		}
		w := lower[i:j]
		if isSQLWord(w) {
			return true
		}
		if i > 0 && lower[i-1] >= '0' && lower[i-1] <= '9' {
			for k := 0; k < len(w)-1 && w[k] >= 'a' && w[k] <= 'f'; k++ {
				if isSQLWord(w[k+1:]) {
					return true
				}
			}
		}
		i = j
	}
	return false
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
	if sqlFragment(t) {
		return true
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

// sqlFragments: the same, for fragments without '_'. sqlFragment finds
// them.
var sqlFragments = []string{
	"into outfile", "into dumpfile", "@@", "waitfor delay", "benchmark(",
	"(|(", "(&(", ")(|", ")(&", "*)(",
}

// sqlFragment reports whether t contains one of sqlFragments. The five
// around a '(' are checked at each '(' instead of by five scans of t: on
// a User-Agent, ten Contains cost 3,670 instructions, this 1,570
// (callgrind; TestFastPathsRandom and FuzzFastPaths compare it with the
// list).
func sqlFragment(t string) bool {
	if strings.Contains(t, "@@") || strings.Contains(t, "waitfor delay") {
		return true
	}
	if i := strings.Index(t, "into "); i >= 0 && (strings.Contains(t[i:], "into outfile") || strings.Contains(t[i:], "into dumpfile")) {
		return true
	}
	for i := strings.IndexByte(t, '('); i >= 0; {
		switch {
		case i >= 9 && t[i-9:i] == "benchmark",
			i+2 < len(t) && (t[i+1] == '|' || t[i+1] == '&') && t[i+2] == '(',           // (|( (&(
			i >= 1 && t[i-1] == ')' && i+1 < len(t) && (t[i+1] == '|' || t[i+1] == '&'), // )(| )(&
			i >= 2 && t[i-2] == '*' && t[i-1] == ')':                                    // *)(
			return true
		}
		j := strings.IndexByte(t[i+1:], '(')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func sqlKeyword(w string) bool {
	switch w {
	case "or", "and", "xor", "select", "union", "exec", "execute", "having", "order",
		"group", "insert", "update", "delete", "drop", "like", "exists", "where", "waitfor":
		return true
	}
	return false
}

// sqlStatement reports a value that is one whole, well-formed query
// rather than a fragment breaking out of one: it starts with SELECT (or
// WITH), reads FROM, has balanced quotes and parentheses, and nothing
// after a ';', no inline comments (obfuscation). Written in a SQL console or pasted as a code sample, not
// injected.
func sqlStatement(lower string) bool {
	t := strings.TrimSpace(lower)
	if !strings.HasPrefix(t, "select ") && !strings.HasPrefix(t, "with ") || !strings.Contains(t, " from ") ||
		strings.Contains(t, "/*") {
		return false
	}
	if i := strings.IndexByte(t, ';'); i >= 0 && strings.TrimSpace(t[i+1:]) != "" {
		return false
	}
	depth, quote := 0, byte(0)
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth < 0 {
				return false
			}
		case c == '-' && i+1 < len(t) && t[i+1] == '-', c == '#':
			t = t[:i] // a trailing comment
		}
	}
	return quote == 0 && depth == 0
}

// sqliGate reports whether libinjection could flag s; it exists because
// libinjection costs about a microsecond per value and most values are
// plain words, numbers, dates and identifiers.
func sqliGate(lower string, cls uint64) bool {
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

// SQL injection rules. libinjection decides first; the rules below cover
// what its fingerprints miss (comment-terminated and MSSQL-specific
// payloads, time-based blind functions, stacked statements).
const (
	ruleSQLiLibinjection = "payload.sqli.libinjection"
	ruleSQLiProbe        = "payload.sqli.probe"         // a lone keyword or quote: borderline
	ruleSQLiComment      = "payload.sqli.comment"       // a quote closed, the rest commented out
	ruleSQLiTautology    = "payload.sqli.tautology"     // ' or (exists), ' and 'a'='a
	ruleSQLiStacked      = "payload.sqli.stacked"       // ; drop table, ;declare @x
	ruleSQLiUnion        = "payload.sqli.union"         // union [all] select
	ruleSQLiBlind        = "payload.sqli.blind"         // sleep(5), waitfor delay, benchmark(
	ruleSQLiRoutine      = "payload.sqli.routine"       // xp_cmdshell, information_schema., into outfile
	ruleSQLiStatement    = "payload.sqli.statement"     // a whole SELECT … FROM query: borderline
	ruleSQLiFunction     = "payload.sqli.function"      // group_concat(, extractvalue(, a lone concat(
	ruleSQLiDBName       = "payload.sqli.db_name"       // information_schema, pg_catalog, tempdb, msdb
	ruleSQLiJSONOp       = "payload.sqli.json_operator" // OR '{"a":1}'::jsonb @> '{"a":1}', '…' -> '$.a' = 7
	ruleSQLiDDL          = "payload.sqli.ddl"           // ALTER TABLE … CHARACTER SET, CREATE FUNCTION … RETURNS
	ruleSQLiCast         = "payload.sqli.cast"          // password::int, ')::int
	ruleSQLiFragment     = "payload.sqli.fragment"      // ';select x, 'union select/, exec master.
	ruleSQLiAlias        = "payload.sqli.alias"         // ` AS `x` FROM, 1234 AS "a" FROM
	ruleSQLiExecComment  = "payload.sqli.exec_comment"  // /*!50000select: MySQL executable comment
	ruleSQLiMagicNumber  = "payload.sqli.magic_number"  // 4294967296, 2.2250738585072011e-308
	ruleSQLiQuoteEnd     = "payload.sqli.quote_end"     // admin@example.com'; a quote closing an e-mail
)

type sqlRule struct {
	rule string
	// need: the rule runs only when the value contains one of these, or
	// has one of the kw keyword bits.
	need []string
	kw   uint64
	re   *regexp.Regexp
}

// sqlFuncRe: functions that only SQL has (string aggregation, XML error
// channels, catalog and session functions), called.
var sqlFuncRe = regexp.MustCompile(`(?:^|[^\w.$])(?:concat_ws|group_concat|extractvalue|updatexml|xmltype|name_const|make_set|unhex|ifnull|pg_sleep|sysdate|db_name|schema_name|find_in_set|jsonb_pretty|json_build_object|unistr|lo_get|strcmp|char_length|sys_context|utl_inaddr)\s*\(`)

// sqlProbeFuncs are SQL functions with common names: a value that is
// nothing but one of them and an open parenthesis ("concat(", "select
// rand (") is a probe for an injection point, not code (which closes it).
var sqlProbeFuncs = map[string]bool{
	"concat": true, "compress": true, "uncompress": true, "cos": true, "sin": true, "decode": true,
	"encode": true, "hex": true, "insert": true, "trim": true, "rtrim": true, "ltrim": true, "md5": true,
	"mid": true, "ord": true, "pow": true, "rand": true, "substr": true, "substring": true, "char": true,
	"user": true, "database": true, "current_user": true, "if": true, "div": true, "coalesce": true,
	"benchmark": true, "sleep": true, "version": true, "ascii": true, "length": true, "count": true,
}

// sqlFuncProbe reports a value ending in an unclosed call of a
// sqlProbeFuncs function, with at most one SQL keyword before it.
func sqlFuncProbe(t string) bool {
	t = strings.TrimRight(t, " \t\r\n")
	if !strings.HasSuffix(t, "(") || len(t) > 40 {
		return false
	}
	t = strings.TrimRight(t[:len(t)-1], " ")
	i := len(t)
	for i > 0 && (isLetterOrUnderscore(t[i-1]) || '0' <= t[i-1] && t[i-1] <= '9') {
		i--
	}
	if !sqlProbeFuncs[t[i:]] {
		return false
	}
	head := strings.TrimSpace(t[:i])
	return head == "" || head == "select" || head == "(" || head == "select(" || head == ","
}

// sqlDBNames: system catalogs and sample databases that only a query
// exploring a server names.
var sqlDBNames = map[string]bool{
	"information_schema": true, "pg_catalog": true, "msysaccessobjects": true, "msysobjects": true,
	"sysobjects": true, "syscolumns": true, "tempdb": true, "msdb": true, "northwind": true,
	"schema_name": true, "pg_shadow": true, "pg_user": true, "mysql.db": true, "mysql.user": true,
	"sqlite_master": true, "all_tables": true, "user_tables": true,
}

var sqlDBNameAmbiguous = map[string]bool{"northwind": true, "tempdb": true, "msdb": true, "all_tables": true, "user_tables": true}

// sqlDBName reports a word of lower (letters, digits, '_' and one '.'
// for mysql.db) in sqlDBNames.
func sqlDBName(lower string) bool {
	for i := 0; i < len(lower); {
		st, en := nextWord(lower, i)
		if st < 0 {
			return false
		}
		if en-st >= 4 && en-st <= 18 {
			w := lower[st:en]
			if en+1 < len(lower) && lower[en] == '.' && w == "mysql" {
				_, e2 := nextWord(lower, en+1)
				w = lower[st:e2]
			}
			if sqlDBNames[w] {
				// A sample database or a generic catalog name in prose
				// ("Northwind Traders") counts only alone or qualified.
				if !sqlDBNameAmbiguous[w] || strings.TrimSpace(lower) == w || en < len(lower) && lower[en] == '.' {
					return true
				}
			}
		}
		i = en
	}
	return false
}

// sqlRules run on the lowercased value with /* comments */ replaced by a
// space. Every regexp is RE2 (linear) and behind a substring pre-check.
var (
	// sqlTautologyRe and sqlStackedRe are anchored: they run only at the
	// candidates quoteThenOperator and semicolonThenStatement find, on a
	// window of sqlWindow bytes.
	sqlTautologyRe = regexp.MustCompile(`^['"\x60)]\s*(?:or|and|xor|\|\||&&)[\s(]+(?:not\s+)?(?:exists\b|true\b|false\b|null\b|select\b|(?:pg_)?sleep\s*\(|benchmark\s*\(|\d+\s*(?:[=<>]|like\b|between\b|is\b)|'[^']{0,32}'\s*(?:[=<>]|like\b)|"[^"]{0,32}"\s*(?:[=<>]|like\b)|[a-z_][\w.]{0,32}\s*(?:=|<>|!=|like\s|is\s+(?:not\s+)?null))`)
	// sqlCommentRe: a closing quote or parenthesis, then a comment that
	// runs to the end of the value (admin'-- -, admin' #, ') /*), or
	// "'--" glued. Anchored at commentCandidate's positions, unwindowed.
	sqlCommentRe = regexp.MustCompile("^(?:" + "['\"`)]\\s*(?:--[\\s\\-+]*|#[\\s#\\-]*|/\\*.*)$|['\"`]\\)*--(?:[\\s]|$)" + ")")
	sqlStackedRe = regexp.MustCompile(`^;\s*(?:drop\s+(?:table|database|schema|view|procedure|function|user)\b|declare\s+@|exec(?:ute)?\s*(?:\(|@|master\b|xp_|sp_)|exec(?:ute)?\s+[\w.]+\s*['"@]|shutdown\b|select\b.{0,80}?(?:\bfrom\b|sleep\s*\(|@@|\bnull\b|\(\s*\d|version)|insert\s+into\b|update\s+\w+\s+set\b|delete\s+from\b|waitfor\s+delay|truncate\s+table\b|create\s+(?:table|user|procedure|function|database)\b|alter\s+(?:table|user|database)\b|set\s+@)`)
)

// sqlWindow bounds the text an anchored SQL rule reads after its anchor.
const sqlWindow = 160

// anchoredMatch runs re at each candidate position next returns.
func anchoredMatch(s string, re *regexp.Regexp, next func(s string, from int) int) bool {
	for i := next(s, 0); i >= 0; i = next(s, i+1) {
		if re.MatchString(s[i:min(len(s), i+sqlWindow)]) {
			return true
		}
	}
	return false
}

// anchoredMatchSkip is anchoredMatch without the candidates skip reports.
func anchoredMatchSkip(s string, re *regexp.Regexp, next func(s string, from int) int, skip func(s string, i int) bool) bool {
	for i := next(s, 0); i >= 0; i = next(s, i+1) {
		if !skip(s, i) && re.MatchString(s[i:min(len(s), i+sqlWindow)]) {
			return true
		}
	}
	return false
}

// quotedMention reports a quote at i that opens a quotation in prose
// rather than closing the value's string: a space before it and, within
// a few words, the matching quote followed by more prose ("Is 'OR 1=1'
// really how…"). An injection closes the string it sits in: admin' or…
func quotedMention(s string, i int) bool {
	q := s[i]
	if q != '\'' && q != '"' || i == 0 || s[i-1] != ' ' {
		return false
	}
	j := strings.IndexByte(s[i+1:], q)
	if j < 0 || j > 24 {
		return false
	}
	rest := s[i+1+j+1:]
	if len(rest) < 2 || rest[0] != ' ' && rest[0] != ',' && rest[0] != '.' && rest[0] != '?' {
		return false
	}
	w, e := nextWord(rest, 0)
	return w >= 0 && w <= 2 && 'a' <= rest[w] && rest[w] <= 'z' && !sqlKeyword(rest[w:e])
}

var sqlRules = []sqlRule{
	{ruleSQLiUnion, []string{"union"}, 0,
		regexp.MustCompile(`\bunion(?:\s+(?:all|distinct))?[\s(]*select\b.{0,100}?(?:\bnull\b|\bfrom\b|,|@@|\d|\*|--|#|\(|$)`)},
	{ruleSQLiBlind, nil, kwSQLBlind,
		regexp.MustCompile(`\b(?:(?:pg_)?sleep|benchmark)\s*\(\s*(?:\d|[a-z_]+\s*\()|waitfor\s+(?:delay|time)\s*['"]?\d|dbms_pipe\.receive_message\s*\(|dbms_lock\.sleep\s*\(|randomblob\s*\(\s*\d{5}`)},
	{ruleSQLiRoutine, []string{"@@version"}, kwSQLRoutine,
		regexp.MustCompile(`\bxp_(?:cmdshell|regread|regwrite|dirtree|fileexist)\b|\bsp_(?:oacreate|oamethod|executesql|makewebtask|password|configure)\b|\butl_(?:http|inaddr|file)\.|\bload_file\s*\(|\binto\s+(?:out|dump)file\b|\binformation_schema\.|\bpg_(?:read_file|ls_dir|read_binary_file)\s*\(|\bsqlite_master\b|\bsys\.(?:dm_|sql_logins)|\blo_import\s*\(|\bfrom\s+program\b|@@version\b`)},
}

// sqlCloser marks the bytes that close a SQL string or group: ' " ` and
// ')'. quoteThenOperator and commentCandidate walk every byte of the
// values that reach sqlRulesMatch (a User-Agent does); one table load
// per byte instead of four comparisons took the two from 3,640 to 2,210
// instructions per BenchmarkInspect/get request (callgrind).
var sqlCloser = [256]bool{'\'': true, '"': true, '`': true, ')': true}

// quoteThenOperator returns the next index at or after from of a quote or
// ')' followed, after spaces or '(', by a logical operator, or -1.
func quoteThenOperator(s string, from int) int {
	for i := from; i < len(s); i++ {
		if !sqlCloser[s[i]] {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '(') {
			j++
		}
		if j+1 >= len(s) {
			return -1
		}
		switch r := s[j:]; r[0] {
		case 'o', 'a', 'x', '|', '&':
			if strings.HasPrefix(r, "or") || strings.HasPrefix(r, "and") || strings.HasPrefix(r, "xor") ||
				strings.HasPrefix(r, "||") || strings.HasPrefix(r, "&&") {
				return i
			}
		}
	}
	return -1
}

// commentCandidate returns the next index at or after from of a quote or
// ')' followed, after spaces and ')', by '-', '#' or '/', or -1.
func commentCandidate(s string, from int) int {
	for i := from; i < len(s); i++ {
		if !sqlCloser[s[i]] {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == ')') {
			j++
		}
		if j < len(s) && (s[j] == '-' || s[j] == '#' || s[j] == '/') {
			return i
		}
	}
	return -1
}

// semicolonThenStatement returns the next index at or after from of a ';'
// followed by a statement keyword, or -1.
func semicolonThenStatement(s string, from int) int {
	for {
		j := strings.IndexByte(s[from:], ';')
		if j < 0 {
			return -1
		}
		i := from + j
		if st, en := nextWord(s, i+1); st >= 0 && strings.TrimSpace(s[i+1:st]) == "" {
			switch s[st:en] {
			case "drop", "declare", "exec", "execute", "shutdown", "select", "insert", "update",
				"delete", "waitfor", "truncate", "create", "alter", "set":
				return i
			}
		}
		from = i + 1
	}
}

// sqlRulesMatch runs the sqlRules whose pre-check passes.
func sqlRulesMatch(lower string, cls uint64) string {
	view := lower
	if strings.Contains(view, "/*") {
		view, _ = stripSQLComments(view)
	}
	for i := commentCandidate(view, 0); i >= 0; i = commentCandidate(view, i+1) {
		if sqlCommentRe.MatchString(view[i:]) {
			return ruleSQLiComment
		}
	}
	if anchoredMatchSkip(view, sqlTautologyRe, quoteThenOperator, quotedMention) {
		return ruleSQLiTautology
	}
	if anchoredMatch(view, sqlStackedRe, semicolonThenStatement) {
		return ruleSQLiStacked
	}
	if cls&kwSQLFunc != 0 && sqlFuncRe.MatchString(view) {
		return ruleSQLiFunction
	}
	for i := range sqlRules {
		r := &sqlRules[i]
		need := cls&r.kw != 0
		for _, n := range r.need {
			if strings.Contains(view, n) {
				need = true
				break
			}
		}
		if need && r.re.MatchString(view) {
			return r.rule
		}
	}
	return ""
}

// detectSQLi: libinjection and sqlRules decide (weightBlock); the probe
// heuristics add weightWeak, except on keys, where "limit" or "order" are
// field names.
// sqlJSONOpRe: a string literal cast to json/jsonb, or one right after a
// SQL logical word and holding a JSON object or array, compared with a PostgreSQL or MySQL JSON operator to
// a literal or an array.
var sqlJSONOpRe = regexp.MustCompile(`'\s*::\s*jsonb?\s*` + sqlJSONOps + `|\b(?:or|and|where|having|select|when)\s+'[\[{][^']{0,200}'\s*(?:::\s*jsonb?\s*)?` + sqlJSONOps + `|^\s*'[\[{][^']{0,200}'\s*[<>]\s*'\$[.\[]`)

const sqlJSONOps = `(?:->>?|#>>?|#-|@>|<@|@\?|@@|@|\?[|&]?|\|\||[<>]=?|-)\s*(?:'|\d|array\s*\[)`

// sqlJSONOp: cheap substring checks, then sqlJSONOpRe.
func sqlJSONOp(lower string) bool {
	if !strings.Contains(lower, "->") && !strings.Contains(lower, "#>") && !strings.Contains(lower, "@>") &&
		!strings.Contains(lower, "<@") && !strings.Contains(lower, "?|") && !strings.Contains(lower, "?&") &&
		!strings.Contains(lower, "::json") && !strings.Contains(lower, "' ?") && !strings.Contains(lower, "'$") {
		return false
	}
	return sqlJSONOpRe.MatchString(lower)
}

// sqlExtraRule: a fragment shape libinjection does not tokenise as an
// attack, behind substrings one of which must occur.
// kw: one of these class or keyword bits must be set; all: every one of
// these; digit: the value starts with a digit or '-'. pre, when set, is a
// necessary condition of re on the text re reads: each branch of re needs
// one of the things it tests (TestFastPathsRandom and FuzzFastPaths check
// it). It exists because need's words are common in prose ("select your
// colour", "from") and these unanchored regexps run on the backtracker:
// BenchmarkInspect/json_8k's 80-byte item description cost 244,000
// instructions to inspect, 77,000 with pre (callgrind), and the request
// 1.375M -> 1.215M.
type sqlExtraRule struct {
	rule    string
	kw, all uint64
	digit   bool
	need    []string
	pre     func(v string) bool
	re      *regexp.Regexp
}

// firstNonSpaceIn reports whether v's first byte after RE2's \s
// ([\t\n\f\r ]) is one of set.
func firstNonSpaceIn(v, set string) bool {
	t := strings.TrimLeft(v, "\t\n\f\r ")
	return t != "" && strings.IndexByte(set, t[0]) >= 0
}

var sqlExtraRules = []sqlExtraRule{
	{ruleSQLiFragment, kwSQLFrag, 0, false, []string{"select", "union"}, preSelectFragment, regexp.MustCompile(`^\s*['"\x60]\s*;\s*select\b|^\s*['"\x60]\s*union\b.{0,40}?\bselect\b|^\s*['"\x60]\s*select\s+\w+\s*$|\bselect\s*\*/|\bselect\w*\s+(?:user|database|version|current_user|system_user)\s*\(|unionselect|\bselect\s+if\s*\(|\bselect\s+pg_sleep\b`)},
	{ruleSQLiFragment, kwSQLFrag, 0, false, []string{"exec", "declare", "procedure", "truncate", "replace"}, preExecFragment, regexp.MustCompile(`\bexec(?:ute)?\s+master\.|\bexec(?:ute)?\s*\(\s*@|\bexecute\s+immediate\b|^\W*declare\s*@\w|\bprocedure\s+analyse\s*\(|;\s*truncate\b|;\s*replace\s*\w+\s*\([^)]*\)\s*values\s*\(`)},
	{ruleSQLiBlind, kwSQLBlind, cQuote, false, []string{"waitfor"}, nil, regexp.MustCompile(`\bwaitfor\s+(?:delay|time)\s*['"]`)},
	{ruleSQLiDDL, kwSQLFrag, 0, false, []string{"alter", "create"}, preDDL, regexp.MustCompile(`\balter\s+table\b.{0,200}?\b(?:character\s+set|charset)\b|\balter\s+table\s+\S+\s+change\b|\bcreate\s+(?:or\s+replace\s+)?function\s+\w+\s*\(.*\breturns\b|^\s*[/'";)]+\s*create\s+table\s+\w`)},
	{ruleSQLiFunction, kwSQLCond | cAt, cParen, false, []string{"if(", "if (", "div(", "div (", "json_", ":="}, preSQLFunction, regexp.MustCompile(`\bif\s*\(\s*\d+\s*=|\bdiv\s*\(\s*-?[\d.]+\s*,\s*-?[\d.]+\s*\)|\b(?:or|and)\s+json_\w+\s*\(|(?:^|\W)@[\w.$]*\s*:=\s*\w+\s*\(`)},
	{ruleSQLiAlias, kwSQLCond | kwSQLFrag, 0, false, []string{"from", "regexp"}, preAlias, regexp.MustCompile(`(?:['"\x60]|\d)\s*as\s*['"\x60]?\w*['"\x60]?\s+from\b|^\s*\x60\s*regexp\s`)},
	{ruleSQLiExecComment, 0, cStar | cBang, false, []string{"/*!"}, nil, regexp.MustCompile(`/\*!\d*\s*(?:select|union|from|and|or|insert|update|delete|drop)\b`)},
	{ruleSQLiMagicNumber, 0, 0, true, []string{"42949672", "2147483", "22250738585072"}, nil, regexp.MustCompile(`^\s*(?:-?(?:4294967296|4294967295|2147483648|2147483647|2147483649)|2\.2250738585072\d*e-308)\s*$`)},
	{ruleSQLiQuoteEnd, 0, cAt | cSemi, false, []string{"@"}, nil, regexp.MustCompile(`^[\w.+-]+@[\w.-]+\.[a-z]{2,}\\?['"\x60]\s*;`)},
	{ruleSQLiFunction, 0, cDot | cParen, true, []string{".e(", ".e."}, nil, regexp.MustCompile(`\d\.e\(|\d\.e\.[a-z_]{3,}`)},
}

// The pre-checks of sqlExtraRules, branch by branch of their regexps.
func preSelectFragment(v string) bool {
	// ^\s*['"`]…(3 branches) | select\s*\*/ | …\s*\( (2) | unionselect | pg_sleep
	return firstNonSpaceIn(v, "'\"`") || strings.IndexByte(v, '(') >= 0 || strings.Contains(v, "*/") ||
		strings.Contains(v, "unionselect") || strings.Contains(v, "pg_sleep")
}

func preExecFragment(v string) bool {
	// master. | exec( @ | immediate | declare @ | analyse ( | ;truncate, ;replace
	return strings.IndexAny(v, "(@;") >= 0 || strings.Contains(v, "master.") || strings.Contains(v, "immediate")
}

func preDDL(v string) bool {
	// alter table (2 branches), create table | create … function
	return strings.Contains(v, "table") || strings.Contains(v, "function")
}

func preSQLFunction(v string) bool {
	// if( … = | div( … , | json_ | := (has '=')
	return strings.IndexAny(v, "=,") >= 0 || strings.Contains(v, "json_")
}

func preAlias(v string) bool {
	// … as … from (needs "as" and a quote or digit before it) | ^`regexp
	return strings.Contains(v, "as") && strings.IndexAny(v, "'\"`0123456789") >= 0 || firstNonSpaceIn(v, "`")
}

// sqlCastRe: a PostgreSQL cast of a column or an expression to a type,
// read case-sensitively ("Type::Integer" is Ruby).
var sqlCastRe = regexp.MustCompile(`(?:[a-z_0-9]|\)|')::(?:int|int4|int8|integer|bigint|text|varchar|numeric|bool|boolean)\b`)

func sqlExtra(norm, lower string, cls uint64) string {
	t := strings.TrimLeft(lower, " ")
	digit := t != "" && (t[0] == '-' || '0' <= t[0] && t[0] <= '9')
	if !digit && cls&(kwSQLFrag|kwSQLCond|kwSQLBlind|cAt|cBang|cColon) == 0 {
		return "" // no rule below can apply
	}
	view, stripped := lower, false
	for i := range sqlExtraRules {
		r := &sqlExtraRules[i]
		if r.kw != 0 && cls&r.kw == 0 || cls&r.all != r.all || r.digit && !digit {
			continue
		}
		found := false
		for _, n := range r.need {
			if strings.Contains(lower, n) {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		if !stripped && r.rule != ruleSQLiExecComment {
			if strings.Contains(view, "/*") {
				view, _ = stripSQLComments(view)
			}
			stripped = true
		}
		v := view
		if r.rule == ruleSQLiExecComment {
			v = lower
		}
		if (r.pre == nil || r.pre(v)) && r.re.MatchString(v) {
			return r.rule
		}
	}
	if cls&cColon != 0 && strings.Contains(norm, "::") && sqlCastRe.MatchString(norm) {
		return ruleSQLiCast
	}
	return ""
}

func detectSQLi(norm, lower string, cls uint64, key bool) hit {
	if cls&cQuote != 0 && sqlJSONOp(lower) {
		return mk(weightBlock, ruleSQLiJSONOp)
	}
	// Keys too: a form body without '=' is all key, and no field is
	// named "';select p".
	if rule := sqlExtra(norm, lower, cls); rule != "" {
		return mk(weightBlock, rule)
	}
	if cls&kwSQLCatalog != 0 && sqlDBName(lower) {
		return mk(weightBlock, ruleSQLiDBName)
	}
	if cls&cParen != 0 && sqlFuncProbe(lower) {
		return mk(weightBlock, ruleSQLiFunction)
	}
	if !sqliGate(lower, cls) {
		if t := strings.TrimSpace(lower); !key && t != "" && sqlProbeShort(t) {
			return mk(weightWeak, ruleSQLiProbe)
		}
		return hit{}
	}
	if ok, _ := libinjection.IsSQLi(norm); ok {
		if sqlStatement(lower) {
			// A whole query (a SQL console, a report builder, a code
			// sample): only the attack rules block it.
			if rule := sqlRulesMatch(lower, cls); rule != "" {
				return mk(weightBlock, rule)
			}
			return mk(weightBorderline, ruleSQLiStatement)
		}
		return mk(weightBlock, ruleSQLiLibinjection)
	}
	if stripped, ok := stripSQLComments(norm); ok {
		if found, _ := libinjection.IsSQLi(stripped); found {
			return mk(weightBlock, ruleSQLiLibinjection)
		}
	}
	// libinjection tries the value as-is and after a quote; a value that
	// starts with a logical operator was written for a numeric context
	// ("id=1 or 1=1--"), so try it after a number too.
	if st, en := nextWord(lower, 0); st >= 0 && strings.TrimSpace(lower[:st]) == "" {
		switch lower[st:en] {
		case "or", "and", "xor", "union", "having", "order", "group", "procedure", "limit":
			if found, _ := libinjection.IsSQLi("1 " + norm); found {
				return mk(weightBlock, ruleSQLiLibinjection)
			}
		}
	}
	if rule := sqlRulesMatch(lower, cls); rule != "" {
		return mk(weightBlock, rule)
	}
	if !key && sqlProbe(lower) {
		return mk(weightWeak, ruleSQLiProbe)
	}
	return hit{}
}
