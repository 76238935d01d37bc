package payload

import "strings"

// PHP stream-wrapper inclusion (reason payload.php_wrapper).
const rulePHPWrapperStream = "payload.php_wrapper.stream" // php://filter, phar://, expect://, data://

// phpWrappers are stream wrappers that read source, run commands or
// unpack archives when a PHP include or file function receives them.
var phpWrappers = []string{
	"php://", "phar://", "expect://", "zip://", "data://", "glob://", "zlib://",
	"compress.zlib://", "compress.bzip2://", "ogg://", "rar://", "ssh2.shell://", "ssh2.exec://",
}

func detectPHPWrapper(lower string, cls uint32) hit {
	if cls&cColon == 0 || cls&cSlash == 0 {
		return hit{}
	}
	i := strings.Index(lower, "://")
	if i < 0 {
		return hit{}
	}
	for _, w := range phpWrappers {
		if strings.Contains(lower, w) {
			return mk(weightBlock, rulePHPWrapperStream)
		}
	}
	return hit{}
}
