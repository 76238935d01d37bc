package payload

import "strings"

var shellCommands = map[string]bool{
	"cat": true, "ls": true, "id": true, "whoami": true, "uname": true, "pwd": true,
	"wget": true, "curl": true, "nc": true, "ncat": true, "netcat": true, "bash": true,
	"sh": true, "zsh": true, "ksh": true, "rm": true, "ping": true, "nslookup": true,
	"dig": true, "sleep": true, "echo": true, "chmod": true, "chown": true,
	"python": true, "python3": true, "perl": true, "ruby": true, "php": true,
	"powershell": true, "cmd": true, "ifconfig": true, "ipconfig": true,
	"netstat": true, "ps": true, "kill": true, "mkfifo": true, "telnet": true,
	"base64": true, "printenv": true, "hostname": true, "systeminfo": true,
	"head": true, "tail": true, "uptime": true, "xterm": true,
}

// detectShell looks for a command separator followed by a known command
// that takes arguments the way a shell would see them.
func detectShell(lower string, cls uint32) uint8 {
	if cls&(cSemi|cPipe|cAmp|cBacktick|cDollar|cNewline) == 0 {
		return 0
	}
	var w uint8
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		var sep uint8 // weight if a command follows
		start := i + 1
		switch c {
		case '$':
			if i+1 < len(lower) && lower[i+1] == '(' {
				sep, start = weightBlock, i+2
			}
		case '`':
			// Inline code in Markdown uses backticks too: in prose the
			// LLM decides; at the start of a value or after a quote or
			// '=' it is command substitution. A fence (```) is followed
			// by a language name, not a command.
			if i+1 < len(lower) && lower[i+1] == '`' {
				for i+1 < len(lower) && lower[i+1] == '`' {
					i++
				}
				continue
			}
			sep = weightWeak
			if i == 0 || strings.IndexByte(`'"=(`, lower[i-1]) >= 0 {
				sep = weightBlock
			}
		case ';', '|', '\n', '\r':
			sep = weightBorderline
		case '&':
			if i+1 < len(lower) && lower[i+1] == '&' {
				sep, start = weightBorderline, i+2
			}
		}
		if sep == 0 {
			continue
		}
		if cw, ok := commandAt(lower, start, sep); ok {
			w = max(w, cw)
			if w >= weightBlock {
				return w
			}
		}
	}
	return w
}

// commandAt reads an optional path and a command word at i; it reports the
// weight when the word is a known command followed by what a shell would
// take as arguments (nothing, an option, a path, a variable, a redirection)
// rather than more prose ("cats; cat food").
func commandAt(s string, i int, sep uint8) (uint8, bool) {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	absolute := false
	// /bin/cat, /usr/bin/id: an absolute path to a binary is a command.
	for _, p := range []string{"/usr/local/bin/", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"} {
		if strings.HasPrefix(s[i:], p) {
			i += len(p)
			absolute = true
			break
		}
	}
	j := i
	for j < len(s) && (('a' <= s[j] && s[j] <= 'z') || ('0' <= s[j] && s[j] <= '9')) {
		j++
	}
	if j == i || !shellCommands[s[i:j]] {
		return 0, false
	}
	if absolute || sep >= weightBlock {
		// "/bin/cat", or any command right inside $( or a quoted `.
		return max(sep, weightBlock), true
	}
	if j == len(s) {
		return sep, true
	}
	switch s[j] {
	case '|', ';', '&', '>', '<', '`', ')', '\n':
		return sep, true
	case ' ', '\t':
		k := j
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k == len(s) {
			return sep, true
		}
		switch s[k] {
		case '-', '/', '$', '~', '.', '|', ';', '&', '>', '<', '`', '\'', '"':
			return sep, true
		}
		if s[k] >= '0' && s[k] <= '9' && s[i:j] == "sleep" {
			return sep, true // time-based blind injection: "; sleep 5"
		}
	}
	return 0, false
}
