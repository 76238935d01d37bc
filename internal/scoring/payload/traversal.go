package payload

import "strings"

// Sensitive files named in traversal and local-file-inclusion attacks,
// lowercased with '/' separators.
var sensitiveFiles = []string{
	"/etc/passwd", "/etc/shadow", "/etc/hosts", "/etc/group", "/etc/issue",
	"/proc/self/", "/proc/version", "boot.ini", "win.ini", "system.ini",
	"/windows/system32", "/winnt/", "global.asa", "web.config", ".htaccess",
	".htpasswd", "/.ssh/", "id_rsa", "/.aws/credentials", "/.git/config",
	"wp-config.php", "conf/server.xml", "localstart.asp", "/bin/sh", "/bin/bash",
	"/bin/id", "/bin/cat", "/var/log/", "desktop.ini", "web-inf/web.xml", "meta-inf/manifest.mf",
	"/.env", ".git/head", "/.git/", ".bash_history", "/etc/motd", "/etc/crontab", "/.docker/config.json",
	"/.kube/config", "/proc/1/", "/etc/environment",
	// Kernel and process information, account databases.
	"/sys/class", "/sys/kernel", "/sys/devices", "/sys/firmware", "/sys/block/", "/sys/module/",
	"/proc/interrupts", "/proc/cpuinfo", "/proc/meminfo", "/proc/mounts", "/proc/net/", "/proc/sched_debug",
	"/etc/subuid", "/etc/subgid", "/etc/sudoers", "/etc/master.passwd", "/etc/security/",
	// Keys, dumps, logs and tool configuration left in a web root.
	"id_dsa", "id_ecdsa", "id_ed25519", "/.docker/", ".aiignore", ".cursorignore",
	"wp-content/debug.log", "wp-content/error.log", "wp-content/errors.log",
	".sql.zip", ".sql.gz", ".sql.bz2", ".sql.xz", ".sql.tar", ".sql.7z", ".sql.rar",
}

// fileReaders are commands that print a file: "cat /etc/subuid" names
// the file as plainly as a value that starts with it.
var fileReaders = []string{"cat", "tac", "more", "less", "head", "tail", "nl", "type", "strings", "base64", "xxd", "od", "grep", "sort", "uniq", "vi", "vim", "nano"}

// readerBefore reports s[:i] ending in a file reader command and spaces.
func readerBefore(s string, i int) bool {
	t := strings.TrimRight(s[:i], " \t")
	if len(t) == i {
		return false
	}
	for _, r := range fileReaders {
		if strings.HasSuffix(t, r) && (len(t) == len(r) || !isLetterOrUnderscore(t[len(t)-len(r)-1])) {
			return true
		}
	}
	return false
}

// sensitiveIndex finds sensitiveFiles in one pass: each file is keyed by
// the three bytes at its first '/', '.' or '_' (its anchor), so a value is
// only compared where it has such a byte and the next two match.
type sensitivePattern struct {
	file   string
	anchor int
}

var sensitiveIndex = func() map[string][]sensitivePattern {
	m := map[string][]sensitivePattern{}
	for _, f := range sensitiveFiles {
		i := strings.IndexAny(f, "/._")
		if i < 0 || i+3 > len(f) {
			panic("sensitive file without an anchor: " + f)
		}
		m[f[i:i+3]] = append(m[f[i:i+3]], sensitivePattern{file: f, anchor: i})
	}
	return m
}()

// sensitivePair[a][c] is set when a key of sensitiveIndex starts with the
// anchor byte a ('/', '.', '_' as 0, 1, 2) and then c: most anchors in a
// value (every '/' of a URL) are rejected without a map lookup
// (findSensitive on "https://shop.example.com/p/17": 1,270 instructions
// with a lookup per anchor, 1,010 with the filter; callgrind).
var sensitivePair = func() (t [3][256]bool) {
	for k := range sensitiveIndex {
		t[anchorIndex(k[0])][k[1]] = true
	}
	return t
}()

// anchorByte is anchorIndex+1 as a table, 0 for the other bytes.
var anchorByte = func() (t [256]uint8) {
	for c := range t {
		t[c] = uint8(anchorIndex(byte(c)) + 1)
	}
	return t
}()

// anchorIndex numbers the anchor bytes '/', '.', '_'; -1 for the rest.
func anchorIndex(c byte) int {
	switch c {
	case '/':
		return 0
	case '.':
		return 1
	case '_':
		return 2
	}
	return -1
}

// sensitiveDirs are the entries of sensitiveFiles that name a directory:
// "C:\Windows\System32" on its own is a path people type, not an attack.
var sensitiveDirs = map[string]bool{"/windows/system32": true, "/winnt/": true, "/var/log/": true}

// findSensitive calls found with the index of every sensitive file in s.
func findSensitive(s string, found func(i int, file string) bool) {
	for i := 0; i+3 <= len(s); i++ {
		a := anchorByte[s[i]]
		if a == 0 || !sensitivePair[a-1][s[i+1]] {
			continue
		}
		for _, p := range sensitiveIndex[s[i:i+3]] {
			start := i - p.anchor
			if start >= 0 && strings.HasPrefix(s[start:], p.file) && found(start, p.file) {
				return
			}
		}
	}
}

// Path traversal and file-access rules.
const (
	ruleTraversalDotDot    = "payload.traversal.dotdot"         // ../ segments (3+ block)
	ruleTraversalPath      = "payload.traversal.path"           // a dot segment in the request path
	ruleTraversalSemicolon = "payload.traversal.semicolon"      // Tomcat's /..;/
	ruleTraversalFile      = "payload.traversal.sensitive_file" // /etc/passwd, win.ini, .htaccess
	ruleTraversalHidden    = "payload.traversal.hidden_path"    // /.git/, /.claude/settings.json in the request path
	ruleTraversalDevServer = "payload.traversal.dev_server"     // Vite's /@fs/ and /@id/__x00__
	ruleTraversalTmpWrite  = "payload.traversal.tmp_write"      // >/tmp/x: a shell redirection into /tmp
)

// hiddenSegment reports a path segment that starts with a dot and a
// letter (/.git/, /.env, /.claude/), other than /.well-known/ and
// ".NET" in a slug (/tags/.net-core): servers
// never mean to publish them.
func hiddenSegment(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '/' || p[i+1] != '.' {
			continue
		}
		c := p[i+2]
		if (c >= 'a' && c <= 'z' || c >= '0' && c <= '9') && !strings.HasPrefix(p[i+2:], "well-known/") && !strings.HasPrefix(p[i+2:], "net") {
			return true
		}
	}
	return false
}

func detectTraversal(lower string, cls uint64, inPath bool) hit {
	if cls&(cDot|cSlash|cBackslash) == 0 {
		return hit{}
	}
	s := lower
	if cls&cBackslash != 0 {
		s = strings.ReplaceAll(s, `\`, "/")
	}
	// Count dot-only segments of two or more dots ("..", "..." — the
	// latter is an old Windows alias for ../..). Tomcat and Jetty read
	// "..;x" as ".." (the ';' starts a path parameter).
	levels, dotSlash, semi := 0, 0, false
	for i := 0; i < len(s); {
		if s[i] != '.' || (i > 0 && s[i-1] != '/') {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '.' {
			j++
		}
		if (j < len(s) && (s[j] == '/' || s[j] == ';')) || (j == len(s) && i > 0) {
			if j-i >= 2 {
				levels++
				semi = semi || j < len(s) && s[j] == ';'
			} else if j < len(s) && s[j] == '/' {
				dotSlash++ // "./"
			}
		}
		i = j
	}
	var h hit
	switch {
	case semi:
		h = mk(weightBlock, ruleTraversalSemicolon)
	case levels >= 3:
		h = mk(weightBlock, ruleTraversalDotDot)
	case levels == 2:
		h = mk(weightBorderline, ruleTraversalDotDot)
	case levels == 1:
		h = mk(weightWeak, ruleTraversalDotDot)
	case dotSlash >= 3:
		h = mk(weightWeak, ruleTraversalDotDot)
	}
	if inPath && levels > 0 {
		// Envoy and browsers normalise dot segments; one that reaches us
		// was sent on purpose.
		h = mk(weightBlock, ruleTraversalPath)
	}
	if inPath {
		switch {
		case strings.Contains(s, "/@fs/") || strings.Contains(s, "/@id/__x00__"):
			return mk(weightBlock, ruleTraversalDevServer)
		case hiddenSegment(s):
			return mk(weightBlock, ruleTraversalHidden)
		}
	}
	if i := strings.Index(s, ">/tmp/"); i >= 0 && i+6 < len(s) {
		h = h.or(mk(weightBlock, ruleTraversalTmpWrite))
	}
	drive := len(s) >= 3 && s[0] >= 'a' && s[0] <= 'z' && s[1] == ':' && s[2] == '/'
	traversal := h.w > 0
	// \\server\share\…: a Windows share, where "drivers\etc\hosts" is
	// the hosts file of a machine, not a probe.
	unc := cls&cBackslash != 0 && strings.HasPrefix(s, "//")
	findSensitive(s, func(i int, file string) bool {
		// Under a drive letter a Unix file counts only at the drive's
		// root: "C:\Program Files\App\drivers\etc\hosts" is a path.
		atDrive := drive && (i == 2 || file[0] != '/' && !strings.HasPrefix(file, ".sql."))
		// One token (no spaces, not under a drive letter): a file
		// name, not prose that mentions one.
		token := !drive && !unc && strings.IndexAny(s, " \t\n") < 0
		if traversal || (i == 0 || atDrive || s[0] == '/' && i <= 1 || inPath || token || readerBefore(s, i)) && !sensitiveDirs[file] {
			// After a traversal, at the start of the value, after a
			// drive letter or a file reader, in the path or as the
			// whole value: the value names the file.
			h = mk(weightBlock, ruleTraversalFile)
			return true
		}
		if sensitiveDirs[file] {
			h = h.or(mk(weightWeak, ruleTraversalFile))
		} else {
			h = h.or(mk(weightBorderline, ruleTraversalFile))
		}
		return false
	})
	return h
}
