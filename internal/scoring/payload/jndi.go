package payload

import (
	"regexp"
	"strings"
)

// Log4Shell-style lookup rules (reason payload.jndi).
const (
	ruleJNDILookup     = "payload.jndi.lookup"       // ${jndi:ldap://…}
	ruleJNDIObfuscated = "payload.jndi.obfuscated"   // ${${lower:j}ndi:…}, ${${::-j}ndi:…}
	ruleJNDILog4j      = "payload.jndi.log4j_lookup" // ${env:…}, ${sys:…}, ${ctx:…}, nested ${${
)

// log4jLookupRe: a Log4j 2 lookup prefix, or a nested lookup, right after
// "${". Template placeholders ("${firstName}") have neither.
var log4jLookupRe = regexp.MustCompile(`\$\{\s*(?:(?:jndi|ctx|env|sys|java|lower|upper|base64|main|log4j|docker|k8s|kubernetes|spring|bundle|web|marker|map|date|sd|event|jvmrunargs)\s*:|::-|\$\{)`)

// maxLookupRounds bounds how many nested lookups resolveLookups unwraps.
const maxLookupRounds = 16

func detectJNDI(lower string, cls uint64) hit {
	if cls&cDollar == 0 || cls&cBrace == 0 {
		return hit{}
	}
	i := strings.Index(lower, "${")
	if i < 0 {
		return hit{}
	}
	if strings.Contains(lower, "${jndi:") {
		return mk(weightBlock, ruleJNDILookup)
	}
	if strings.Contains(resolveLookups(lower[i:]), "${jndi:") {
		return mk(weightBlock, ruleJNDIObfuscated)
	}
	if log4jLookupRe.MatchString(lower) {
		return mk(weightBlock, ruleJNDILog4j)
	}
	return hit{}
}

// resolveLookups evaluates the Log4j lookups attackers use to spell
// "jndi" without writing it: ${lower:j}, ${upper:j}, ${x:-j}, ${::-j},
// ${date:'j'}; other lookups vanish. The outer "${jndi:" then appears.
func resolveLookups(s string) string {
	for range maxLookupRounds {
		// The innermost lookup: the last "${" before the first "}".
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return s
		}
		start := strings.LastIndex(s[:end], "${")
		if start < 0 {
			return s
		}
		body := s[start+2 : end]
		var out string
		switch {
		case strings.HasPrefix(body, "jndi:"):
			return s // an inner ${jndi: is already a hit for the caller
		case strings.Contains(body, ":-"):
			out = body[strings.Index(body, ":-")+2:]
		case strings.HasPrefix(body, "lower:"), strings.HasPrefix(body, "upper:"):
			out = body[6:]
		case strings.HasPrefix(body, "date:"):
			out = strings.Trim(body[5:], "'")
		}
		s = s[:start] + out + s[end+1:]
		if strings.Contains(s, "${jndi:") {
			return s
		}
	}
	return s
}
