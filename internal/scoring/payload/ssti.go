package payload

import (
	"regexp"
	"strings"
)

// Server-side template injection rules (reason payload.ssti).
const (
	ruleSSTIExpression = "payload.ssti.expression" // {{7*7}}, ${7*7}, #{7*7}, <%= 7*7 %>
	ruleSSTIObject     = "payload.ssti.object"     // {{''.__class__}}, {{config}}, T(java.lang.Runtime)
	ruleSSTIDirective  = "payload.ssti.directive"  // <#assign, ?new(), #set($x=…), {php}
)

// sstiOpeners are the template delimiters; a value without one is skipped.
var sstiOpeners = []struct{ open, close string }{
	{"{{", "}}"}, {"{%", "%}"}, {"${", "}"}, {"#{", "}"}, {"*{", "}"}, {"<%", "%>"}, {"@(", ")"},
}

var (
	// sstiArithRe: arithmetic on literals, the classic probe ({{7*7}}).
	sstiArithRe = regexp.MustCompile(`^\s*=?\s*['"]?\d+['"]?\s*[*+\-/%]\s*['"]?\d+['"]?\s*$`)
	// sstiObjectRe: reaching into the runtime from a template expression.
	sstiObjectRe    = regexp.MustCompile(`__\w+__|\|\s*attr\s*\(|\b(?:config|self|request|lipsum|cycler|joiner|namespace|url_for|get_flashed_messages)\b\s*[.\[|(]|\bt\s*\(\s*java\.|\bnew\s+java\.|\.getclass\s*\(|\bclass\.forname|\bgetruntime\s*\(|\.exec\s*\(|\bpopen\s*\(|\bsystem\s*\(|\bos\.|\bsubprocess\b|\bimport\s+os\b|\brequire\s*\(|\bprocess\.mainmodule|\bconstructor\s*\.\s*constructor|\bconstructor\s*\(|\bfreemarker\.template|\bexecute\s*\(|\bfile\.(?:read|open|write)|\bio\.popen|\bkernel\.|` + "`")
	sstiDirectiveRe = regexp.MustCompile(`<#assign\b|\?new\s*\(|#set\s*\(\s*\$\w+\s*=|\{php\}|\{system\s*\(|\{\s*\$smarty\.|<#include\b|\$class\.inspect\s*\(`)
)

// sstiOpenerClass is the class an opener's first byte belongs to.
func sstiOpenerClass(c byte) uint64 {
	switch c {
	case '<':
		return cLT
	case '@':
		return cAt
	}
	return cBrace
}

func detectSSTI(lower string, cls uint64) hit {
	if cls&(cBrace|cLT|cParen|cQuestion) == 0 {
		return hit{}
	}
	if cls&(cHash|cQuestion|cBrace|cDollar) != 0 && (strings.Contains(lower, "<#") || strings.Contains(lower, "?new") ||
		strings.Contains(lower, "#set") || strings.Contains(lower, "{php}") || strings.Contains(lower, "{system") ||
		strings.Contains(lower, "$smarty") || strings.Contains(lower, "$class")) && sstiDirectiveRe.MatchString(lower) {
		return mk(weightBlock, ruleSSTIDirective)
	}
	var h hit
	for _, d := range sstiOpeners {
		if need := sstiOpenerClass(d.open[0]); cls&need == 0 {
			continue
		}
		for off := 0; off < len(lower); {
			i := strings.Index(lower[off:], d.open)
			if i < 0 {
				break
			}
			i += off + len(d.open)
			j := strings.Index(lower[i:], d.close)
			if j < 0 || j > 512 {
				break
			}
			body := lower[i : i+j]
			off = i + j
			switch {
			case sstiArithRe.MatchString(body):
				return mk(weightBlock, ruleSSTIExpression)
			case d.open != "@(" && strings.ContainsAny(body, "_|(.[`") && sstiObjectRe.MatchString(body):
				return mk(weightBlock, ruleSSTIObject)
			case d.open == "<%" && strings.HasPrefix(body, "="):
				h = h.or(mk(weightBorderline, ruleSSTIExpression)) // <%= x %> with no code
			}
		}
	}
	return h
}

// Server-side JavaScript injection rules (reason payload.ssti): what a
// value passed to eval(), vm or a Node deserializer carries.
const (
	ruleSSTINodeObject = "payload.ssti.node_object"         // process.env, require.main, this.constructor.constructor
	ruleSSTIPrototype  = "payload.ssti.prototype_pollution" // __proto__[x], constructor.prototype.x
	ruleSSTILoop       = "payload.ssti.dos_loop"            // while(true), while(!0)
)

var (
	// nodeLoopRe: a loop whose condition is a constant, the whole value.
	nodeLoopRe = regexp.MustCompile(`^\s*while\s*\(+\s*(!*)\s*[-+]?\s*(true|false|infinity|nan|null|undefined|this|string|new\s+date|\d+|""|''|` + "``" + `|\{\}|\[\])\s*\)+\s*;?\s*$`)
	// nodeCallRe: a function value or a call into the Node runtime.
	nodeCallRe = regexp.MustCompile(`^\s*console\s*(?:\.\s*[a-z]+(?:\s*\.\s*(?:call|apply))?|\[\s*['"][a-z]+['"]\s*\])\s*\([^()\n]*\)\s*;?\s*$|\bnew\s+function\s*\(|\bstring\s*\.\s*fromcharcode\s*\(|\bmodule\s*\.\s*exports\s*=|\b(?:process|require)\s*(?:\[|\.\s*(?:env|binding|mainmodule|main|spawn|exit|kill|dlopen)\b)`)
	// nodeRefRe: a React Flight style "$1:constructor" reference chain.
	nodeRefRe = regexp.MustCompile(`\$\d+:(?:[a-z_]+:)*(?:constructor|prototype|__proto__)\b`)
)

// detectNode finds server-side JavaScript: Node deserializer markers,
// prototype pollution paths, runtime calls and constant loops.
func detectNode(lower string, cls uint64) hit {
	if cls&(cUnderscore|cDot|cBracket|cParen|cDollar) == 0 {
		return hit{}
	}
	if cls&cUnderscore != 0 {
		if strings.Contains(lower, "_$$nd_func$$_") || strings.Contains(lower, "__js_function") {
			return mk(weightBlock, ruleSSTINodeObject)
		}
		if i := strings.Index(lower, "__proto__"); i >= 0 {
			r := strings.TrimLeft(lower[i+9:], " ")
			if r == "" && i == 0 || r != "" && (r[0] == '.' || r[0] == '[') {
				return mk(weightBlock, ruleSSTIPrototype)
			}
		}
	}
	if strings.Contains(lower, "constructor") {
		if cls&cDollar != 0 && nodeRefRe.MatchString(lower) {
			return mk(weightBlock, ruleSSTINodeObject)
		}
		for _, p := range [...]string{"constructor.prototype", "constructor[prototype]", "constructor.constructor", "constructor][prototype]"} {
			if strings.Contains(lower, p) {
				return mk(weightBlock, ruleSSTIPrototype)
			}
		}
	} else if cls&cDollar != 0 && strings.Contains(lower, "prototype") && nodeRefRe.MatchString(lower) {
		return mk(weightBlock, ruleSSTINodeObject)
	}
	if cls&cParen != 0 && strings.Contains(lower, "while") {
		if m := nodeLoopRe.FindStringSubmatch(lower); m != nil && loopTruthy(len(m[1]), m[2]) {
			return mk(weightBlock, ruleSSTILoop)
		}
	}
	if nodeCallCandidate(lower, cls) && nodeCallRe.MatchString(lower) {
		return mk(weightBlock, ruleSSTINodeObject)
	}
	return hit{}
}

// nodeCallCandidate is a necessary condition of nodeCallRe: a word of
// one of its branches with the byte that branch needs: console(,
// function(, fromcharcode( a '('; exports= a '='; process and require a
// '[' or '.'. A URL has dots and no parentheses: two scans instead of
// six (detectNode on an https URL: 700 instructions, 300; callgrind).
// TestFastPathsRandom and FuzzFastPaths check it.
func nodeCallCandidate(lower string, cls uint64) bool {
	return cls&cParen != 0 && (strings.Contains(lower, "console") || strings.Contains(lower, "function") ||
		strings.Contains(lower, "fromcharcode")) ||
		cls&cEq != 0 && strings.Contains(lower, "exports") ||
		cls&(cBracket|cDot) != 0 && (strings.Contains(lower, "process") || strings.Contains(lower, "require"))
}

// loopTruthy reports whether a loop condition of bangs negations of
// the constant c is always true: while(!0) spins, while(!true) does not.
func loopTruthy(bangs int, c string) bool {
	falsy := false
	switch c {
	case "false", "0", "nan", "null", "undefined", `""`, "''", "``":
		falsy = true
	}
	return falsy == (bangs%2 == 1)
}
