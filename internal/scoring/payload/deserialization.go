package payload

import (
	"regexp"
	"strings"
)

// Serialised-object and gadget-chain rules (reason payload.deserialization).
const (
	ruleDeserJava      = "payload.deserialization.java"       // rO0AB…, aced0005…
	ruleDeserJavaClass = "payload.deserialization.java_class" // java.lang.Runtime, ysoserial gadgets
	ruleDeserJavaRef   = "payload.deserialization.java_ref"   // java.io.File, java.Runtime, org.omg.CORBA
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

// javaClassPrefixes: packages whose classes a request value names only
// to have a deserialiser, an expression language or a scripting engine
// load them (Struts OGNL, XStream, SpEL).
var javaClassPrefixes = []string{
	"java.lang.", "java.io.", "java.nio.", "javax.script.", "javax.naming.", "org.apache.commons.",
	"org.omg.corba", "com.sun.org.apache", "com.opensymphony.xwork2", "processbuilder.",
}

// javaClassRef weighs a reference to a Java class that exploits load:
// weightBlock for a bare reference (java.io.File, java.Runtime,
// ProcessBuilder.evil…), weightBorderline inside a stack trace, where
// "at java.lang.Thread.run(Thread.java:748)" is what users paste.
func javaClassRef(lower string) uint8 {
	found := false
	for _, p := range javaClassPrefixes {
		if containsOutsideMarkupName(lower, p) {
			found = true
			break
		}
	}
	for i := strings.Index(lower, "java."); !found && i >= 0; {
		// java.Runtime, java.x.ProcessBuilder: one dotted name.
		end := i + 5
		for end < len(lower) && (isWordByte(lower[end]) || lower[end] == '.') {
			end++
		}
		if tok := lower[i:end]; strings.Contains(tok, "runtime") || strings.Contains(tok, "processbuilder") {
			found = containsOutsideMarkupName(lower, tok)
		}
		j := strings.Index(lower[end:], "java.")
		if j < 0 {
			break
		}
		i = end + j
	}
	if !found {
		return 0
	}
	if strings.Contains(lower, ".java:") || strings.Contains(lower, "at java.") || strings.Contains(lower, "exception") {
		return weightBorderline
	}
	return weightBlock
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

// detectDeserialization: key is true for names (JSON keys, XML element
// names): a bare java.lang.Runtime element carries no call — CRS lets it
// pass — while a gadget class as an element name (XStream reads names as
// classes) still blocks.
// deserClasses: detectDeserialization's rules each need one of these
// (kwSerial or a non-ASCII byte for the Java magic, '/' for .NET's,
// kwJava, ':' for PHP objects, a newline or "__reduce" for pickle).
const deserClasses = kwSerial | cNonASCII | cSlash | kwJava | cColon | cNewline | cUnderscore

func detectDeserialization(norm, lower string, cls uint64, key bool) hit {
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
			if containsOutsideMarkupName(lower, c) {
				if key && lower == "java.lang.runtime" {
					return mk(weightWeak, ruleDeserJavaClass)
				}
				return mk(weightBlock, ruleDeserJavaClass)
			}
		}
	}
	if cls&cDot != 0 && cls&kwJava != 0 {
		if w := javaClassRef(lower); w > 0 {
			return mk(w, ruleDeserJavaRef)
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

// containsOutsideMarkupName reports an occurrence of c in s that is not
// an XML element or attribute name (<java.lang.Runtime>, </…>, a
// java.lang.Runtime="…" attribute): names in a document are structure,
// not a class the server loads; class="java.lang.Runtime" still counts.
func containsOutsideMarkupName(s, c string) bool {
	for i := strings.Index(s, c); i >= 0; {
		end := i + len(c)
		for end < len(s) && (isWordByte(s[end]) || s[end] == '.' || s[end] == '$') {
			end++
		}
		element := i > 0 && (s[i-1] == '<' || s[i-1] == '/' && i > 1 && s[i-2] == '<')
		attr := i > 0 && s[i-1] == ' ' && end < len(s) && s[end] == '=' && strings.LastIndexByte(s[:i], '<') > strings.LastIndexByte(s[:i], '>')
		if !element && !attr {
			return true
		}
		j := strings.Index(s[i+1:], c)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}
