package payload

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
	cBrace   // { or }
	cBracket // [ or ]
	cPercent
	cQuestion
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
	set("{}", cBrace)
	set("[]", cBracket)
	set("%", cPercent)
	set("?", cQuestion)
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
