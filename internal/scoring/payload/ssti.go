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
