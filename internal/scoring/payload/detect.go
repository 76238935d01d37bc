package payload

import (
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
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
	detJNDI
	detSSTI
	detNoSQLi
	detLDAPi
	detSSRF
	detCRLF
	detPHPWrapper
	detDeserialization
	detPrompt
	detNull
	detEncoding
	numDetectors
)

var detectorNames = [numDetectors]string{
	detSQLi:            "sqli",
	detXSS:             "xss",
	detShell:           "shell_injection",
	detTraversal:       "path_traversal",
	detJNDI:            "jndi",
	detSSTI:            "ssti",
	detNoSQLi:          "nosqli",
	detLDAPi:           "ldapi",
	detSSRF:            "ssrf",
	detCRLF:            "crlf",
	detPHPWrapper:      "php_wrapper",
	detDeserialization: "deserialization",
	detPrompt:          "prompt_injection",
	detNull:            "null_byte",
	detEncoding:        "encoding_trick",
}

func (d detector) String() string { return detectorNames[d] }

// Weights a detector gives one value, named relative to the default
// block_score (3): weightBlock on its own blocks; weightWeak and
// weightBorderline are borderline (asked to the LLM, allowed when it is
// off) unless other detectors add up to the block score.
const (
	weightWeak       uint8 = 1 // a hint: a lone keyword, one "../"
	weightBorderline uint8 = 2 // suspicious, but seen in benign traffic
	weightBlock      uint8 = 3 // an unambiguous attack
)

// hit is what a detector found in one value: a weight and the stable name
// of the rule that gave it ("payload.sqli.union"), reported in
// Finding.Rule and Result.Rule.
type hit struct {
	w    uint8
	rule string
}

// or returns the stronger of h and o (h on a tie).
func (h hit) or(o hit) hit {
	if o.w > h.w {
		return o
	}
	return h
}

func mk(w uint8, rule string) hit { return hit{w: w, rule: rule} }

// Character classes, computed in one pass over a normalised value so each
// detector can skip values that cannot match it.
const (
	cLT uint64 = 1 << iota
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
	cBrace   // { or }
	cBracket // [ or ]
	cQuestion
	cUnderscore
)

var classTable = func() (t [256]uint64) {
	set := func(chars string, c uint64) {
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
	set("{}", cBrace)
	set("[]", cBracket)
	set("?", cQuestion)
	set("_", cUnderscore)
	for i := 0x80; i < 0x100; i++ {
		t[i] |= cNonASCII
	}
	return t
}()

// punctClasses are the punctuation classes: a value with none is words,
// digits and spaces.
const punctClasses = cLT | cGT | cQuote | cBacktick | cEq | cSemi | cPipe | cAmp | cDollar | cParen |
	cDot | cSlash | cBackslash | cHash | cDash | cStar | cComma | cAt | cNewline | cColon | cBang |
	cBrace | cBracket | cQuestion

// newFamilyClasses: without one of these, the JNDI, SSTI, NoSQL, LDAP,
// CRLF and PHP-wrapper detectors cannot fire.
const newFamilyClasses = cDollar | cBrace | cLT | cParen | cAt | cNewline | cColon

// Keyword hints share the class mask: one pass over a value's words sets a
// bit per family of rare words that some rule needs, so those rules (and
// their regexps) skip the values that lack them.
const (
	kwPowerShell uint64 = 1 << (32 + iota) // iex, invoke, webclient, certutil…
	kwJSCall                               // alert, eval, settimeout…
	kwJava                                 // java, ysoserial, getruntime…
	kwRevShell                             // netcat, socat, mkfifo, fsockopen…
	kwCSS                                  // expression, binding, behavior, import
	kwSQLBlind                             // sleep, benchmark, waitfor…
	kwSQLRoutine                           // xp_cmdshell, information_schema, load_file…
	kwScriptURI                            // javascript, vbscript, livescript
	kwDataURI                              // data
	kwMetadata                             // metadata, instance, jar, netdoc (SSRF words)
	kwSerial                               // a word starting rO0AB or aced0005 (Java streams)
	kwCodeExec                             // system, shell_exec, passthru, popen…
	kwSQLFunc                              // group_concat, extractvalue, updatexml… (sqlFuncRe)
	kwSQLCatalog                           // information_schema, pg_catalog, tempdb… (sqlDBNames)
	kwDOM                                  // document, window, self… (xssDOMRe)
	kwSQLFrag                              // select, union, exec, declare, alter… (sqlExtraRules)
	kwSQLCond                              // if, div, from, json_extract (sqlExtraRules)
	kwXSSExtra                             // call, apply, function, url, vmlframe… (xssTplCallRe)
	kwPrompt                               // the first word of a prompt-injection phrase (prompt.go)
)

var keywordTable = func() map[string]uint64 {
	m := map[string]uint64{}
	add := func(words string, bit uint64) {
		for _, w := range strings.Fields(words) {
			m[w] |= bit
		}
	}
	add(`iex iwr irm invoke downloadstring downloadfile downloaddata webclient process enc ec
		encodedcommand executionpolicy ep bypass frombase64string powershell pwsh cmd certutil
		bitsadmin mshta rundll32 regsvr32 wmic`, kwPowerShell)
	add(`alert prompt confirm eval settimeout setinterval atob fromcharcode execscript msgbox`, kwJSCall)
	add(`java javax apache sun codehaus springframework mchange xbean rowset xalan ysoserial bsh
		clojure getruntime system objectdataprovider processbuilder omg opensymphony typeconfusedelegate windowsidentity claimsidentity`, kwJava)
	add(`sleep pg_sleep benchmark waitfor dbms_pipe dbms_lock randomblob`, kwSQLBlind)
	add(`javascript vbscript livescript`, kwScriptURI)
	add(`data`, kwDataURI)
	add(`metadata instance jar netdoc`, kwMetadata)
	add(`system shell_exec passthru popen proc_open pcntl_exec exec execsync spawnsync check_output child_process`, kwCodeExec)
	add(`xp_cmdshell xp_regread xp_regwrite xp_dirtree xp_fileexist sp_oacreate sp_oamethod
		sp_executesql sp_makewebtask sp_password sp_configure utl_http utl_inaddr utl_file load_file
		outfile dumpfile information_schema pg_read_file pg_ls_dir pg_read_binary_file sqlite_master
		sys lo_import program`, kwSQLRoutine)
	add(`nc ncat netcat socat socket mkfifo fsockopen proc_open pty sh bash zsh ksh tcp udp`, kwRevShell)
	add(`expression binding behavior import`, kwCSS)
	add(`document window self top parent frames globalthis`, kwDOM)
	add(`concat_ws group_concat extractvalue updatexml xmltype name_const make_set unhex ifnull pg_sleep
		sysdate db_name schema_name find_in_set jsonb_pretty json_build_object unistr lo_get strcmp
		char_length sys_context utl_inaddr`, kwSQLFunc)
	add(`select union exec execute declare procedure truncate replace alter create regexp`, kwSQLFrag)
	add(`if div from json_extract json_value json_query json_contains`, kwSQLCond)
	add(`call apply bind function btoa url formaction onzoom vmlframe importimplementation`, kwXSSExtra)
	for first := range prompts.byFirst {
		if promptWord(first) {
			m[first] |= kwPrompt
		}
	}
	add(`information_schema pg_catalog msysaccessobjects msysobjects sysobjects syscolumns tempdb msdb
		northwind schema_name pg_shadow pg_user mysql sqlite_master all_tables user_tables`, kwSQLCatalog)
	return m
}()

// keywordFirstLen / keywordLastLen: bit n of [c] is set when a keyword of
// length n starts / ends with c, so most words are rejected without a map
// lookup.
var keywordFirstLen, keywordLastLen = func() (f, l [256]uint32) {
	for w := range keywordTable {
		f[w[0]] |= 1 << len(w)
		l[w[len(w)-1]] |= 1 << len(w)
	}
	return f, l
}()

// classesAndKeywords returns classes(lower) and the keyword-hint bits of
// lower's words, in one pass.
// Lowercasing changes no class: A-Z have none and non-ASCII stays so.
//
// Words are [a-z][a-z0-9_]* runs; the inner loop walks a word without
// re-testing whether one is open, and kwByte answers "starts a word" /
// "continues one" with one load: on BenchmarkInspect/json_8k this pass
// cost 32,300 instructions per request as one loop with comparisons,
// 27,600 so (callgrind). refClassesAndKeywords in fastpath_test.go is
// the plain loop it is checked against.
func classesAndKeywords(lower string) uint64 {
	var m uint64
	for i := 0; i < len(lower); {
		c := lower[i]
		m |= classTable[c]
		if kwByte[c] != kwStart {
			i++
			continue
		}
		j := i + 1
		for j < len(lower) && kwByte[lower[j]] != 0 {
			m |= classTable[lower[j]]
			j++
		}
		m |= wordKeyword(lower[i:j])
		i = j
	}
	return m
}

// kwByte: kwStart for a-z (a letter starts or continues a word), kwCont
// for 0-9 and '_' (they only continue one), 0 for the rest.
const (
	kwCont  = 1
	kwStart = 2
)

var kwByte = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = kwCont
	}
	t['_'] = kwCont
	for c := 'a'; c <= 'z'; c++ {
		t[c] = kwStart
	}
	return t
}()

func wordKeyword(w string) uint64 {
	n := len(w)
	if n < 32 && keywordFirstLen[w[0]]&keywordLastLen[w[n-1]]&(1<<n) != 0 {
		return keywordTable[w]
	}
	if n >= 5 && (w[0] == 'r' && strings.HasPrefix(w, "ro0ab") || w[0] == 'a' && strings.HasPrefix(w, "aced0005")) {
		return kwSerial
	}
	return 0
}

func classes(s string) uint64 {
	var m uint64
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

// isWordByte: letters, digits, '_' and every non-ASCII byte (so accented
// and CJK text stays inside words).
func isWordByte(c byte) bool { return wordByte[c] }

// wordByte is isWordByte as a table: nextWord walks every byte of a value
// for several detectors, and one load beats five comparisons.
var wordByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = b >= 0x80 || b == '_' || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9')
	}
	return t
}()

// lowerFlags marks A-Z and the non-ASCII bytes for toLower; lowerASCII
// maps A-Z to a-z and every other byte to itself.
const (
	lowerUpper    = 1
	lowerNonASCII = 2
)

var lowerFlags, lowerASCII = func() (f, m [256]uint8) {
	for c := range 256 {
		m[c] = uint8(c)
		switch {
		case 'A' <= c && c <= 'Z':
			f[c], m[c] = lowerUpper, uint8(c+'a'-'A')
		case c >= utf8.RuneSelf:
			f[c] = lowerNonASCII
		}
	}
	return f, m
}()

// toLower is strings.ToLower, which detect calls on every value, with a
// cheaper ASCII path: strings.ToLower writes byte by byte through a
// Builder (3,450 instructions on a 120-byte User-Agent), this converts
// into buf (2,270 with a new buffer each time; callgrind). Non-ASCII text
// goes to strings.ToLower; lowercase ASCII comes back as s, as there.
// The result may share buf's memory: it is valid until buf is next used.
func toLower(s string, buf *[]byte) string {
	var f uint8
	for i := 0; i < len(s); i++ {
		f |= lowerFlags[s[i]]
	}
	switch {
	case f&lowerNonASCII != 0:
		return strings.ToLower(s)
	case f == 0:
		return s
	}
	b := slices.Grow((*buf)[:0], len(s))[:len(s)]
	for i := 0; i < len(s); i++ {
		b[i] = lowerASCII[s[i]]
	}
	*buf = b
	return unsafe.String(&b[0], len(b))
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
