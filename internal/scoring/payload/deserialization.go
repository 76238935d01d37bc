package payload

import (
	"regexp"
	"strings"
)

// Serialised-object and gadget-chain rules (reason payload.deserialization).
const (
	ruleDeserJava      = "payload.deserialization.java"       // rO0AB…, aced0005…
	ruleDeserJavaClass = "payload.deserialization.java_class" // java.lang.Runtime, ysoserial gadgets
	ruleDeserPHP       = "payload.deserialization.php"        // O:8:"stdClass":1:{
	ruleDeserDotNet    = "payload.deserialization.dotnet"     // AAEAAAD/////, "$type":"System.…"
	ruleDeserPython    = "payload.deserialization.python"     // pickle: cos\nsystem, __reduce__
)

// javaGadgetClasses are classes that only appear in exploit payloads.
var javaGadgetClasses = []string{
	"java.lang.runtime", "java.lang.processbuilder", "java.lang.process", "getruntime()",
	"javax.script.scriptenginemanager", "org.apache.commons.collections", "ysoserial",
	"com.sun.org.apache.xalan", "java.beans.xmldecoder", "bsh.interpreter", "java.lang.reflect.",
	"com.sun.rowset.jdbcrowsetimpl", "org.codehaus.groovy.runtime", "java.net.urlclassloader",
	"java.lang.classloader", "com.mchange.v2.c3p0", "org.springframework.beans.factory.objectfactory",
	"javax.management.", "java.rmi.server", "clojure.core$", "org.apache.xbean.naming",
}

var (
	phpObjectRe = regexp.MustCompile(`(?:^|[;{\s"'(])[oc]:\d{1,4}:"[a-z_\\][\w\\]*":\d{1,4}:\{`)
	dotnetRe    = regexp.MustCompile(`"\$type"\s*:\s*"system\.|objectdataprovider|system\.windows\.data|typeconfusedelegate|system\.diagnostics\.process|windowsidentity|claimsidentity`)
	pickleRe    = regexp.MustCompile(`c(?:os|posix|nt|subprocess|__builtin__|builtins)\n(?:system|popen|check_output|call|eval|exec)\n|__reduce(?:_ex)?__`)
)

// phpObjectShape: "o:" or "c:" followed by a digit, the start of a PHP
// serialised object.
func phpObjectShape(s string) bool {
	for i := strings.IndexByte(s, ':'); i >= 0; {
		if i > 0 && (s[i-1] == 'o' || s[i-1] == 'c') && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			return true
		}
		j := strings.IndexByte(s[i+1:], ':')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

func detectDeserialization(norm, lower string, cls uint64) hit {
	// Base64 of the Java stream magic (AC ED 00 05) is case-sensitive.
	if cls&kwSerial != 0 && (strings.Contains(norm, "rO0AB") || strings.Contains(lower, "aced0005")) ||
		cls&cNonASCII != 0 && strings.Contains(norm, "\xac\xed\x00\x05") {
		return mk(weightBlock, ruleDeserJava)
	}
	if cls&cSlash != 0 && strings.Contains(norm, "AAEAAAD/////") {
		return mk(weightBlock, ruleDeserDotNet)
	}
	if cls&cDot != 0 && cls&kwJava != 0 {
		for _, c := range javaGadgetClasses {
			if strings.Contains(lower, c) {
				return mk(weightBlock, ruleDeserJavaClass)
			}
		}
	}
	if cls&kwJava != 0 && dotnetRe.MatchString(lower) {
		return mk(weightBlock, ruleDeserDotNet)
	}
	if cls&cColon != 0 && cls&cBrace != 0 && cls&cQuote != 0 && phpObjectShape(lower) && phpObjectRe.MatchString(lower) {
		return mk(weightBlock, ruleDeserPHP)
	}
	if (cls&cNewline != 0 || strings.Contains(lower, "__reduce")) && pickleRe.MatchString(lower) {
		return mk(weightBlock, ruleDeserPython)
	}
	return hit{}
}
