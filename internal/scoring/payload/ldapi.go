package payload

import "regexp"

// LDAP filter injection (reason payload.ldapi).
const ruleLDAPiFilter = "payload.ldapi.filter" // *)(uid=*, *(|(mail=*)), admin)(&)

// ldapFilterRe: a filter closed and a new clause opened, or an OR/AND
// clause started, followed by an attribute test.
var ldapFilterRe = regexp.MustCompile(`\)\s*\(\s*[|&!]?\s*\(?\s*[a-z][\w\-.;]*\s*[~<>]?=|\(\s*[|&!]\s*\(\s*[a-z][\w\-.;]*\s*[~<>]?=|\)\s*\(\s*[|&]\s*\)|^\*\)\s*\(`)

func detectLDAPi(lower string, cls uint32) hit {
	if cls&cParen == 0 || cls&(cEq|cStar|cPipe|cAmp) == 0 {
		return hit{}
	}
	if ldapFilterRe.MatchString(lower) {
		return mk(weightBlock, ruleLDAPiFilter)
	}
	return hit{}
}
