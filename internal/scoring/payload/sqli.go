package payload

import (
	_ "embed"
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

// detectSQLi: libinjection decides (weightBlock); the probe heuristics
// add weightWeak, except on keys, where "limit" or "order" are field names.
func detectSQLi(norm, lower string, cls uint32, key bool) uint8 {
	if !sqliGate(lower, cls) {
		if t := strings.TrimSpace(lower); !key && t != "" && sqlProbeShort(t) {
			return weightWeak
		}
		return 0
	}
	if ok, _ := libinjection.IsSQLi(norm); ok {
		return weightBlock
	}
	if stripped, ok := stripSQLComments(norm); ok {
		if hit, _ := libinjection.IsSQLi(stripped); hit {
			return weightBlock
		}
	}
	// libinjection tries the value as-is and after a quote; a value that
	// starts with a logical operator was written for a numeric context
	// ("id=1 or 1=1--"), so try it after a number too.
	if st, en := nextWord(lower, 0); st >= 0 && strings.TrimSpace(lower[:st]) == "" {
		switch lower[st:en] {
		case "or", "and", "xor", "union", "having", "order", "group", "procedure", "limit":
			if hit, _ := libinjection.IsSQLi("1 " + norm); hit {
				return weightBlock
			}
		}
	}
	if !key && sqlProbe(lower) {
		return weightWeak
	}
	return 0
}
