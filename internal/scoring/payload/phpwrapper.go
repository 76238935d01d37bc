package payload

import "strings"

// PHP stream-wrapper inclusion (reason payload.php_wrapper).
const rulePHPWrapperStream = "payload.php_wrapper.stream" // php://filter, phar://, expect://, data://

// phpWrappers are stream wrappers that read source, run commands or
// unpack archives when a PHP include or file function receives them.
var phpWrappers = map[string]bool{
	"php": true, "phar": true, "expect": true, "zip": true, "data": true, "glob": true, "zlib": true,
	"compress.zlib": true, "compress.bzip2": true, "ogg": true, "rar": true, "ssh2.shell": true, "ssh2.exec": true,
}

// phpWrapperFirst marks the first bytes of phpWrappers: "http" and
// "https", the schemes nearly every URL has, skip the map lookup
// (detectPHPWrapper on an https URL: 370 instructions, 250; callgrind).
var phpWrapperFirst = func() (t [256]bool) {
	for w := range phpWrappers {
		t[w[0]] = true
	}
	return t
}()

func detectPHPWrapper(lower string, cls uint64) hit {
	if cls&cColon == 0 || cls&cSlash == 0 {
		return hit{}
	}
	for off := 0; ; {
		i := strings.Index(lower[off:], "://")
		if i < 0 {
			return hit{}
		}
		i += off
		st := i
		for st > 0 && (isLetterOrUnderscore(lower[st-1]) || lower[st-1] == '.' || lower[st-1] >= '0' && lower[st-1] <= '9') {
			st--
		}
		if st < i && phpWrapperFirst[lower[st]] && phpWrappers[lower[st:i]] {
			return mk(weightBlock, rulePHPWrapperStream)
		}
		off = i + 3
	}
}
