package payload

import (
	"regexp"
	"strings"
)

// NoSQL (MongoDB) operator injection rules (reason payload.nosqli).
const (
	ruleNoSQLiOperatorKey   = "payload.nosqli.operator_key"   // u_id[$ne]=, a JSON key "$gt"
	ruleNoSQLiOperatorValue = "payload.nosqli.operator_value" // {"$where": …} or [$ne] inside a value
)

// mongoOperators are the query operators an attacker slips into a filter.
var mongoOperators = map[string]bool{
	"ne": true, "eq": true, "gt": true, "gte": true, "lt": true, "lte": true, "in": true, "nin": true,
	"regex": true, "where": true, "exists": true, "expr": true, "not": true, "nor": true, "or": true,
	"and": true, "all": true, "size": true, "type": true, "mod": true, "elemmatch": true, "text": true,
	"function": true, "accumulator": true, "jsonschema": true, "options": true, "comment": true,
	"lookup": true, "unionwith": true, "merge": true, "out": true,
}

var mongoValueRe = regexp.MustCompile(`(?:[{,]\s*['"]?|\[)\$(ne|eq|gte?|lte?|n?in|regex|where|exists|expr|not|nor|or|and|all|size|type|mod|elemmatch|function|accumulator|jsonschema)(?:['"]?\s*:|\])`)

func detectNoSQLi(lower string, cls uint64, key bool) hit {
	if cls&cDollar == 0 {
		return hit{}
	}
	if key {
		// "u_id[$ne]", "a[b][$gt]", or a JSON key "$where".
		for i := strings.IndexByte(lower, '$'); i >= 0; {
			j := i + 1
			for j < len(lower) && 'a' <= lower[j] && lower[j] <= 'z' {
				j++
			}
			op := lower[i+1 : j]
			bracketed := i > 0 && lower[i-1] == '[' && j < len(lower) && lower[j] == ']'
			whole := i == 0 && j == len(lower)
			if mongoOperators[op] && (bracketed || whole) {
				return mk(weightBlock, ruleNoSQLiOperatorKey)
			}
			n := strings.IndexByte(lower[j:], '$')
			if n < 0 {
				break
			}
			i = j + n
		}
		return hit{}
	}
	if cls&(cBrace|cBracket) != 0 && mongoValueRe.MatchString(lower) {
		return mk(weightBlock, ruleNoSQLiOperatorValue)
	}
	return hit{}
}
