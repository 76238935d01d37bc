package payload

import "regexp"

// LDAP filter injection (reason payload.ldapi).
const ruleLDAPiFilter = "payload.ldapi.filter" // *)(uid=*, *(|(mail=*)), admin)(&)

// ldapFilterRe: a filter closed and a new clause opened, or an OR/AND
// clause started, followed by an attribute test.
var ldapFilterRe = regexp.MustCompile(`\)[|&!]\(\s*[a-z][\w\-.;]*\s*[~<>]?=|\)\s*\(\s*[|&!]\s*$|\)\s*\(\s*[|&!]?\s*\(?\s*[a-z][\w\-.;]*\s*[~<>]?=|\(\s*[|&!]\s*\(\s*[a-z][\w\-.;]*\s*[~<>]?=|\)\s*\(\s*[|&]\s*\)|^\*\)\s*\(`)

// ldapShape: ")(", ")|(" (and & !), or "(|" / "(&" / "(!" (blanks allowed), which every
// alternative of ldapFilterRe contains.
func ldapShape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ')':
			j := i + 1
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			if j+1 < len(s) && (s[j] == '|' || s[j] == '&' || s[j] == '!') {
				j++
				for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
					j++
				}
			}
			if j < len(s) && s[j] == '(' {
				return true
			}
		case '(':
			j := i + 1
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			if j < len(s) && (s[j] == '|' || s[j] == '&' || s[j] == '!') {
				return true
			}
		}
	}
	return false
}

func detectLDAPi(lower string, cls uint64) hit {
	if cls&cParen == 0 || cls&(cEq|cStar|cPipe|cAmp) == 0 {
		return hit{}
	}
	if ldapShape(lower) && ldapFilterRe.MatchString(lower) {
		return mk(weightBlock, ruleLDAPiFilter)
	}
	return hit{}
}
