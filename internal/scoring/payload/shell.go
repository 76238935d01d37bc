package payload

import (
	"regexp"
	"strings"
)

// Command-injection rules (reason payload.shell_injection).
const (
	ruleCmdiSubstitution = "payload.cmdi.substitution"    // $(cmd), `cmd`
	ruleCmdiChain        = "payload.cmdi.chain"           // ; cmd, | cmd, && cmd, newline cmd
	ruleCmdiReverseShell = "payload.cmdi.reverse_shell"   // /dev/tcp, nc -e, bash -i
	ruleCmdiGlob         = "payload.cmdi.glob"            // /e?c/pa*wd, /etc/pa[s]swd
	ruleCmdiPowerShell   = "payload.cmdi.powershell"      // iex, iwr, Invoke-Expression, cmd /c
	ruleCmdiLeading      = "payload.cmdi.leading_command" // the value is a command line: weak
	ruleCmdiCodeExec     = "payload.cmdi.code_exec"       // system('id'), shell_exec(, passthru(
	ruleCmdiInline       = "payload.cmdi.inline_code"     // `cmd` in prose: weak
	ruleCmdiBatch        = "payload.cmdi.batch"           // FOR %a IN (…) DO, IF EXIST/DEFINED/ERRORLEVEL
	ruleCmdiBashSyntax   = "payload.cmdi.bash_syntax"     // <(cmd), $[1+1], $((, ${x##*}, () {, cmd<<<x
	ruleCmdiShellC       = "payload.cmdi.shell_c"         // sh -c cmd, $SHELL -c
	ruleCmdiAlias        = "payload.cmdi.alias"           // alias x=cmd
)

// cmdProse marks commands that are also English words ("cat", "head",
// "sleep"): alone after a separator they are borderline, not an attack.
const (
	cmdPlain uint8 = 1 + iota
	cmdProse
	cmdAdmin // not an English word, rarely typed into a form: a leading command line blocks
)

// cmdWrappers run the command that follows them: "time ifconfig",
// "strace id".
var cmdWrappers = map[string]bool{"time": true, "strace": true, "ltrace": true, "nohup": true, "sudo": true, "cpulimit": true}

var shellCommands = func() map[string]uint8 {
	m := map[string]uint8{}
	for _, c := range strings.Fields(`ls id whoami uname pwd wget curl nc ncat netcat bash sh zsh ksh csh tcsh dash
		rm chmod chown chgrp nslookup python python2 python3 perl ruby php lua node java jshell
		powershell pwsh cmd ifconfig ipconfig netstat ps mkfifo mknod telnet base64 xxd printenv hostname
		systeminfo uptime xterm xargs awk gawk sed socat nohup busybox sudo getent crontab useradd usermod
		passwd nmap tcpdump gcc tftp ftp scp ssh lynx wget2 bzip2 gzip tar zip unzip dd strings
		tasklist taskkill netsh certutil bitsadmin regsvr32 rundll32 mshta wmic cscript wscript
		schtasks reg whoami.exe net iex iwr irm dir ver vol grep egrep fgrep nproc lsof
		getfacl setfacl ulimit wall useradd groups uptime lscpu lsb_release
		gunzip unxz zstdcat zcat xzcat bzcat bsdtar strace ltrace gdb c89 c99 cpulimit flock base32
		c99 perf rmt rmt-tar rmt-dump aptitude regedit bcdboot visudo cscli iwmi aa-disable
		ansible ansible-config ansible-galaxy ansible-console ansible-doc ansible-inventory ip
		ansible-pull ansible-vault ansible-playbook chef chef-vault chef-shell chef-run chef-client`) {
		m[c] = cmdPlain
	}
	// Administration tools whose names are not words: a value that is
	// one of them with arguments (or alone on a line) is a command line.
	for _, c := range strings.Fields(`ansible ansible-config ansible-galaxy ansible-console ansible-doc
		ansible-inventory ansible-pull ansible-vault ansible-playbook chef-vault chef-shell chef-run
		chef-client visudo cscli zstdcat bsdtar busybox gunzip unxz aa-disable c89 c99`) {
		m[c] = cmdAdmin
	}
	for _, c := range strings.Fields(`cat head tail kill sleep echo ping dig find sort type date
		who env export which file touch tee cut su print printf exec eval source
		time column fold comm bridge trap set`) {
		m[c] = cmdProse
	}
	return m
}()

var (
	reverseShellRe = regexp.MustCompile(`/dev/(?:tcp|udp)/|\bn(?:et)?cat\b.{0,40}?\s-[a-z]*[ec]\b|\bnc\s+(?:-\w+\s+)*-[a-z]*[ec]\b|\b(?:ba|z|k)?sh\s+-i\b|\bmkfifo\s+/tmp|\bsocat\b.{0,60}?\bexec:|\bsocket\.socket\s*\(|\bpty\.spawn\s*\(|\bfsockopen\s*\(|\bproc_open\s*\(`)
	powershellRe   = regexp.MustCompile(`\biex\s*[(\$'"]|\b(?:iwr|irm)\s+(?:-uri\s+)?['"]?(?:https?:|\\\\)|\binvoke-(?:expression|webrequest|restmethod|command|item|shellcode|mimikatz|wmimethod)\b|\bdownload(?:string|file|data)\s*\(|net\.webclient|\bstart-process\b|\s-(?:e|ec|enc|encodedcommand)\s+[a-z0-9+/=]{16,}|-executionpolicy\s+bypass|-ep\s+bypass|frombase64string\s*\(|\b(?:powershell|pwsh)(?:\.exe)?\s+-|\bcmd(?:\.exe)?\s+/[ck]\b|\bcertutil(?:\.exe)?\s+-(?:urlcache|decode)|\bbitsadmin(?:\.exe)?\s+/transfer|\bmshta(?:\.exe)?\s+(?:https?|vbscript|javascript):|\brundll32(?:\.exe)?\s+\S+,|\bregsvr32(?:\.exe)?\s+/s|\bwmic(?:\.exe)?\s+(?:process|os|shadowcopy)\b`)
)

// Windows batch control flow at the start of a value (or after '&'):
// FOR loops with a %variable, IF with cmd.exe's conditions.
var (
	batchForRe = regexp.MustCompile(`^for\s+(?:/[dlrf]\s+)*(?:"[^"]*"\s+|[a-z]:\\\S*\s+)*%%?\S{1,24}\s+in\s*\(`)
	batchIfRe  = regexp.MustCompile(`^if(?:\s+|\s*/i\s+)(?:not\s+)?(?:(?:exist|defined)\s+\S|(?:errorlevel|cmdextversion)\s+\d|(?:%[\w~]+%|"[^"]*"|\[[^\]]*\]|\(%[^)]*\)|\(\s*\d+|[^\s("]+)(?:\s*==|\s+(?:equ|neq|lss|leq|gtr|geq)\s))`)
)

// batchControl reports a value that starts (after '&' or '|') with a
// Windows batch FOR or IF statement.
func batchControl(lower string) bool {
	if lower == "" {
		return false
	}
	switch lower[0] {
	case ' ', '\t', '&', '|', 'f', 'i':
	default:
		// TrimLeft leaves lower as it is, and no "for" or "if" starts it:
		// skip the cutset scan (14,500 of BenchmarkInspect/json_8k's
		// 1,005,000 instructions; callgrind).
		return false
	}
	t := strings.TrimLeft(lower, " \t&|")
	switch {
	case strings.HasPrefix(t, "for ") || strings.HasPrefix(t, "for\t"):
		return strings.IndexByte(t, '%') >= 0 && batchForRe.MatchString(t)
	case strings.HasPrefix(t, "if ") || strings.HasPrefix(t, "if\t") || strings.HasPrefix(t, "if/"):
		return batchIfRe.MatchString(t)
	}
	return false
}

// codeExecRe: a script-language call that runs a shell command with a
// string argument (PHP, Perl, Python, Ruby, Node).
var codeExecRe = regexp.MustCompile(`\b(?:system|shell_exec|passthru|popen|proc_open|pcntl_exec|exec|execsync|spawnsync|check_output)\s*\(\s*(?:'[^']*'|"[^"]*"|\x60[^\x60]*\x60|\$\w+)\s*[),.]|\bos\.(?:system|popen)\s*\(|\brequire\s*\(\s*['"]child_process['"]\s*\)`)

// shellView undoes quoting tricks a shell would undo: c'a't, c\at, $@
// and $IFS / ${IFS} as a separator. Only the command-injection rules read it.
func shellView(lower string) string {
	if strings.IndexAny(lower, "'\"\\$") < 0 {
		return lower
	}
	v := lower
	if strings.Contains(v, "ifs") {
		v = strings.NewReplacer("${ifs}", " ", "$ifs", " ", "${ifs%??}", " ").Replace(v)
	}
	if strings.Contains(v, "$@") {
		v = strings.ReplaceAll(v, "$@", "")
	}
	var b []byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c == '\'' || c == '"' || c == '\\') && i > 0 && i+1 < len(v) && isShellWordByte(v[i-1]) && (isShellWordByte(v[i+1]) || v[i+1] == c) {
			if b == nil {
				b = append(make([]byte, 0, len(v)), v[:i]...)
			}
			if i+1 < len(v) && v[i+1] == c && c != '\\' {
				i++ // an empty pair: c''at
			}
			continue
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b != nil {
		v = string(b)
	}
	return v
}

func isShellWordByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '/' || c == '_' || c == '-' || c == '.'
}

// detectShell looks for a command separator followed by a known command
// that takes arguments the way a shell would see them, and for shapes
// that only shells take: substitution, /dev/tcp, globbed system paths,
// PowerShell download-and-run.
// bashSyntaxRe: constructs only a POSIX shell (mostly bash) reads:
// process substitution, $[…] and $((…)) arithmetic, ${var} expansion
// operators, a Shellshock function prologue, a here-string fed to a
// command.
var bashSyntaxRe = regexp.MustCompile(`(?:^|[\s;&|(\x60])[<>]\(\s*[a-z]|\$\[\s*(?:\]|\d+\s*[-+*/%]\s*\d)|\$\(\(|\$\{[a-z_]\w*(?:##?|%%?|\^\^?|,,?)|^\s*\(\)\s*\{|(?:^|[;&|\x60(])\s*[a-z][\w.+-]*\s*<<<`)

// shellCRe: a shell started on a command string.
var shellCRe = regexp.MustCompile(`(?:^|[\s;&|'"(\x60])(?:(?:ba|da|z|k|c|tc)?sh|\$\{?shell\}?)(?:\$\w+|\$\{\w*\})?\s+-c\s+\S`)

// aliasRe: a shell alias defined at the start of the value.
var aliasRe = regexp.MustCompile(`^[;&|\s]*alias\s+(?:[-+][a-z+]+\s+)*['"]?[\w.-]+['"]?=`)

// bashShape: the cheap substring test every bashSyntaxRe branch needs.
// Each substring is looked for only when s has its first byte's class
// (cls is classes(s) or a superset): a User-Agent has parentheses but no
// '<', '>' or '$': seven scans of it cost 1,040 instructions, now one.
func bashShape(s string, cls uint64) bool {
	return cls&cLT != 0 && (strings.Contains(s, "<(") || strings.Contains(s, "<<<")) ||
		cls&cGT != 0 && strings.Contains(s, ">(") ||
		cls&cDollar != 0 && (strings.Contains(s, "$[") || strings.Contains(s, "$((") || strings.Contains(s, "${")) ||
		cls&cParen != 0 && strings.Contains(s, "() {")
}

// spaceDashC is shellCRe's pre-check: "-c" after whitespace as RE2's \s
// has it ([\t\n\f\r ]), so "sh\t-c" is not skipped.
func spaceDashC(s string) bool {
	for i := 1; ; {
		j := strings.Index(s[i:], "-c")
		if j < 0 {
			return false
		}
		switch s[i+j-1] {
		case ' ', '\t', '\n', '\f', '\r':
			return true
		}
		i += j + 2
		if i >= len(s) {
			return false
		}
	}
}

func detectShell(norm, lower string, cls uint64, key bool) hit {
	var h hit
	if cls&(cLT|cGT|cDollar|cParen) != 0 && bashShape(lower, cls) && bashSyntaxRe.MatchString(lower) {
		return mk(weightBlock, ruleCmdiBashSyntax)
	}
	if cls&cDash != 0 && spaceDashC(lower) {
		// The command string: quoted, or a known command.
		if loc := shellCRe.FindStringIndex(lower); loc != nil {
			a := loc[1] - 1
			if c := lower[a]; c == '\'' || c == '"' || c == '`' {
				return mk(weightBlock, ruleCmdiShellC)
			}
			if _, ok := commandAt(lower, a, ';', true); ok {
				return mk(weightBlock, ruleCmdiShellC)
			}
		}
	}
	if !key && cls&cEq != 0 && strings.Contains(lower, "alias") && aliasRe.MatchString(lower) {
		return mk(weightBlock, ruleCmdiAlias)
	}
	if cls&(cSemi|cPipe|cAmp|cBacktick|cDollar|cNewline) != 0 {
		view := lower
		if cls&(cQuote|cBackslash|cDollar) != 0 {
			view = shellView(lower)
		}
		h = chainScan(view)
		if h.w >= weightBlock {
			return h
		}
	}
	if cls&cSlash != 0 && cls&(cQuestion|cStar|cBracket) != 0 && globPath(lower) {
		return mk(weightBlock, ruleCmdiGlob)
	}
	if cls&kwRevShell != 0 {
		if reverseShellRe.MatchString(lower) {
			return mk(weightBlock, ruleCmdiReverseShell)
		}
	}
	if cls&kwCodeExec != 0 && cls&cParen != 0 && codeExecRe.MatchString(lower) {
		return mk(weightBlock, ruleCmdiCodeExec)
	}
	if cls&kwPowerShell != 0 && powershellRe.MatchString(lower) {
		return mk(weightBlock, ruleCmdiPowerShell)
	}
	if !key && batchControl(lower) {
		return mk(weightBlock, ruleCmdiBatch)
	}
	if !key && (cls&cBrace != 0 || strings.HasPrefix(lower, "~") || strings.HasPrefix(lower, "!-")) && expansionTrick(lower) {
		return mk(weightBlock, ruleCmdiBashSyntax)
	}
	if !key && h.w > 0 && h.w < weightBlock && loneChained(lower) {
		return mk(weightBlock, ruleCmdiChain)
	}
	if !key && h.w == 0 {
		if w, ok := commandAt(lower, 0, 0, false); ok && w > 0 {
			h = mk(w, ruleCmdiLeading)
		}
	}
	return h
}

// chainScan is the separator scan: $( and backticks, then ; | || & &&
// and newlines, each followed by a known command.
func chainScan(lower string) hit {
	var h hit
	// inCode: inside a Markdown code span opened in prose or a ``` fence,
	// where command lines are documentation: borderline at most.
	inCode := false
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		if !chainByte[c] {
			continue // the switch below ignores it
		}
		var sep uint8 // weight if a command follows
		rule := ruleCmdiChain
		start := i + 1
		switch c {
		case '$':
			if i+1 < len(lower) && lower[i+1] == '(' {
				sep, start, rule = weightBlock, i+2, ruleCmdiSubstitution
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
				inCode = !inCode
				continue
			}
			if inCode {
				inCode = false // a span closed
				continue
			}
			sep, rule = weightWeak, ruleCmdiInline
			if i == 0 || strings.IndexByte(`'"=(`, lower[i-1]) >= 0 {
				sep, rule = weightBlock, ruleCmdiSubstitution
			} else if lower[i-1] == ' ' && strings.IndexByte(lower[i+1:], '`') >= 0 {
				inCode = true
			}
		case ';', '\n', '\r':
			sep = weightBlock
		case '|', '&':
			sep = weightBlock
			if i+1 < len(lower) && lower[i+1] == c {
				start = i + 2 // || and &&
			}
			// A lone '&' runs the command in the background (Unix) or
			// after the first (Windows); "salt & pepper" has no command
			// after it, and prose words stay borderline in commandAt.
		}
		if sep == 0 {
			continue
		}
		if inCode && c != '`' {
			sep = min(sep, weightBorderline)
		}
		if cw, ok := commandAt(lower, start, sep, rule == ruleCmdiSubstitution); ok {
			if inCode {
				cw = min(cw, weightBorderline)
			}
			if c == '|' && cw >= weightBlock && pipeTableCell(lower, start) {
				cw = weightWeak // "| id | name |": a Markdown table
			}
			h = h.or(mk(cw, rule))
			if h.w >= weightBlock {
				return h
			}
		}
		if c == '&' && start == i+2 || c == '|' && start == i+2 {
			i++
		}
	}
	return h
}

// chainByte marks the bytes chainScan's switch acts on; one table load
// per byte instead of the switch's comparisons (chainScan on a
// User-Agent: 3,500 instructions, 1,620 with it; callgrind).
var chainByte = func() (t [256]bool) {
	for _, c := range []byte("$`;\n\r|&") {
		t[c] = true
	}
	return t
}()

// pipeTableCell reports a word between pipes at the start of a line, the
// shape of a Markdown table cell.
func pipeTableCell(s string, i int) bool {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i < len(s) && s[i] == '|'
}

// commandAt reads an optional path and a command word at i; it reports the
// weight when the word is a known command followed by what a shell would
// take as arguments (nothing, an option, a path, a variable, a redirection,
// a URL) rather than more prose ("cats; cat food"). subst: the word is
// inside $( or a quoted backtick, where any known command is an attack.
// sep 0 asks about a value that starts with a command line.
func commandAt(s string, i int, sep uint8, subst bool) (uint8, bool) {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	absolute, start := false, i
	// /bin/cat, /usr/bin/id: an absolute path to a binary is a command.
	for _, p := range binDirs {
		if i < len(s) && s[i] != '/' {
			break // every binDirs entry starts with '/'
		}
		if strings.HasPrefix(s[i:], p) {
			i += len(p)
			absolute = true
			break
		}
	}
	j := i
	for j < len(s) && (('a' <= s[j] && s[j] <= 'z') || ('0' <= s[j] && s[j] <= '9') || s[j] == '_') {
		j++
	}
	// Hyphenated tool names: ansible-vault, chef-client.
	if j < len(s) && s[j] == '-' && j > i {
		k := j + 1
		for k < len(s) && 'a' <= s[k] && s[k] <= 'z' {
			k++
		}
		if k > j+1 && shellCommand(s[i:k]) != 0 {
			j = k
		}
	}
	if sep == 0 {
		if w, ok := leadingAdmin(s, start, i, j, absolute); ok {
			return w, true
		}
	}
	if sep == 0 && (j+1 >= len(s) || s[j] != ' ') {
		return 0, false // not a command line
	}
	kind := shellCommand(s[i:j])
	if kind == 0 || sep == 0 && !argShape(s, j+1, "") {
		return 0, false
	}
	if strings.HasPrefix(s[j:], ".exe") {
		j += 4
	}
	if sep == 0 {
		// A leading command line: "ping -c 1 x", "cat /etc/passwd".
		if j+1 < len(s) && s[j] == ' ' && argShape(s, j+1, "") {
			return weightWeak, true
		}
		return 0, false
	}
	if absolute && sep >= weightBorderline || subst {
		return weightBlock, true
	}
	if strings.TrimSpace(s[j:]) == "" {
		if kind == cmdProse {
			return min(sep, weightBorderline), true
		}
		return sep, true
	}
	switch s[j] {
	case '|', ';', '&', '>', '<', '`', ')', '\n', '\r':
		if kind == cmdProse {
			// "& more;", "| free |": a word between punctuation.
			return min(sep, weightBorderline), true
		}
		return sep, true
	case ' ', '\t':
		k := j
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if kind == cmdAdmin && k < len(s) && isWordByte(s[k]) {
			return sep, true // "; ansible all -m ping"
		}
		if argShape(s, k, s[i:j]) || strings.HasPrefix(s[k:], "passwd") || strings.HasPrefix(s[k:], "shadow") {
			return sep, true
		}
	}
	return 0, false
}

// shellFirstLen / shellLastLen: bit min(n, 63) of [c] is set when a
// shellCommands name of length n starts / ends with c.
var shellFirstLen, shellLastLen = func() (f, l [256]uint64) {
	for w := range shellCommands {
		f[w[0]] |= 1 << min(len(w), 63)
		l[w[len(w)-1]] |= 1 << min(len(w), 63)
	}
	return f, l
}()

// shellCommand is shellCommands[w] behind the first/last byte and length
// filter: commandAt asks about the first word of every value, and most
// are no command ("wireless", "hp"); the filter answers those without
// hashing. Before, commandAt tested the word's arguments first to spare
// the map lookup (commandAt: 26,500 of BenchmarkInspect/json_8k's
// 1,005,000 instructions, 18,800 with the filter; callgrind).
func shellCommand(w string) uint8 {
	if w == "" || shellFirstLen[w[0]]&shellLastLen[w[len(w)-1]]&(1<<min(len(w), 63)) == 0 {
		return 0
	}
	return shellCommands[w]
}

// binDirs hold binaries; each starts with '/'.
var binDirs = []string{"/usr/local/bin/", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"}

// adminFirstLen / adminLastLen: bit n of [c] is set when an admin tool
// or wrapper name of length n starts / ends with c.
var adminFirstLen, adminLastLen = func() (f, l [256]uint32) {
	for w, k := range shellCommands {
		if (k == cmdAdmin || cmdWrappers[w]) && len(w) < 32 {
			f[w[0]] |= 1 << len(w)
			l[w[len(w)-1]] |= 1 << len(w)
		}
	}
	return f, l
}()

// leadingAdmin judges a value that starts with a command word s[i:j]:
// an administration tool (ansible-vault, visudo) with arguments or alone
// on its line, a known command behind an absolute /bin path ("/usr/bin/perl
// -e …"; the bare path is a setting), or a wrapper running a known command ("time
// ifconfig", "strace id") is a command line: weightBlock.
func leadingAdmin(s string, start, i, j int, absolute bool) (uint8, bool) {
	if n := j - i; n == 0 || !absolute && (n >= 32 || adminFirstLen[s[i]]&adminLastLen[s[j-1]]&(1<<n) == 0) {
		return 0, false // not an admin tool or wrapper: no map lookup
	}
	kind := shellCommands[s[i:j]]
	if kind == 0 {
		return 0, false
	}
	for k := 0; k < start; k++ {
		if c := s[k]; c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ';' {
			return 0, false
		}
	}
	rest := s[j:]
	endLine := strings.TrimSpace(rest) == ""
	args := len(rest) > 1 && rest[0] == ' ' && rest[1] != ' '
	if kind == cmdAdmin && (endLine || args) {
		return weightBlock, true
	}
	if absolute && kind != 0 && args && argShape(s, j+1, "") {
		return weightBlock, true
	}
	if cmdWrappers[s[i:j]] && len(rest) > 1 && rest[0] == ' ' {
		k := j + 1
		for k < len(s) && s[k] == ' ' {
			k++
		}
		e := k
		for e < len(s) && (('a' <= s[e] && s[e] <= 'z') || ('0' <= s[e] && s[e] <= '9') || s[e] == '_' || s[e] == '-') {
			e++
		}
		if e > k && shellCommands[s[k:e]] != 0 && shellCommands[s[k:e]] != cmdProse && (e == len(s) || strings.IndexByte(" \n\r;|&", s[e]) >= 0) {
			return weightBlock, true
		}
	}
	return 0, false
}

// expansionTrick: a whole value that is a bash tilde expansion of the
// directory stack ("~+", "~-1") or a brace expansion spelling a command
// ("{,ifconfig}", "c{a,oun}t", "{id,}"), or relative history recall
// ("!-1!-2").
func expansionTrick(lower string) bool {
	t := strings.TrimSpace(lower)
	if strings.HasPrefix(t, "!-") {
		return strings.Trim(t, "!-0123456789") == "" // history: !-1!-2
	}
	if len(t) >= 2 && t[0] == '~' && (t[1] == '+' || t[1] == '-') {
		return strings.TrimLeft(t[2:], "0123456789") == ""
	}
	if len(t) > 64 || strings.ContainsAny(t, " \"'\n:") {
		return false
	}
	o := strings.IndexByte(t, '{')
	c := strings.IndexByte(t, '}')
	if o < 0 || c < o || !strings.Contains(t[o:c], ",") {
		return false
	}
	for _, alt := range strings.Split(t[o+1:c], ",") {
		w := t[:o] + alt + t[c+1:]
		if k := shellCommands[w]; k != 0 && k != cmdProse {
			return true
		}
	}
	return false
}

// loneChained: the whole value is a separator and one known command
// (";env", "|set"), a probe with nothing around it to be prose.
func loneChained(lower string) bool {
	t := strings.TrimSpace(lower)
	if t == "" || (t[0] != ';' && t[0] != '|' && t[0] != '&') {
		return false
	}
	t = strings.TrimSpace(strings.TrimLeft(t, ";|&"))
	return shellCommands[t] != 0
}

// argShape reports whether s[k:] starts like a command's argument: an
// option, a path, a variable, a redirection, a quote, a URL, a drive
// letter, or a number for the commands that take one.
func argShape(s string, k int, cmd string) bool {
	if k >= len(s) {
		return false
	}
	switch s[k] {
	case '-', '/', '$', '~', '.', '|', ';', '&', '>', '<', '`', '\'', '"', '{', '\\', '%':
		return true
	}
	if k+2 < len(s) && s[k+1] == ':' && (s[k+2] == '\\' || s[k+2] == '/') && 'a' <= s[k] && s[k] <= 'z' {
		return true // c:\windows
	}
	if s[k] >= '0' && s[k] <= '9' {
		switch cmd {
		case "sleep", "ping", "nc", "ncat", "telnet", "kill", "timeout", "nslookup", "dig", "wget", "curl", "ssh", "ftp", "tftp":
			return true // "; sleep 5", "| nc 10.0.0.1 4444"
		}
	}
	// The next token is a URL or host:port ("curl http://x", "wget x.sh").
	e := k
	for e < len(s) && s[e] != ' ' && s[e] != '|' && s[e] != ';' && s[e] != '&' {
		e++
	}
	tok := s[k:e]
	return strings.Contains(tok, "://") || (cmd == "wget" || cmd == "curl") && strings.IndexByte(tok, '.') > 0
}

// globTargets are system files and binaries that attackers spell with
// shell wildcards to slip past filters: /e?c/pa*wd, /???/??t.
var globTargets = []string{
	"/etc/passwd", "/etc/shadow", "/etc/hosts", "/etc/group", "/etc/issue", "/etc/hostname",
	"/proc/self/environ", "/proc/version", "/bin/sh", "/bin/bash", "/bin/cat", "/bin/nc",
	"/bin/ls", "/bin/id", "/usr/bin/id", "/usr/bin/whoami", "/usr/bin/wget", "/usr/bin/curl",
	"/usr/bin/nc", "/usr/bin/python", "/usr/bin/perl", "/usr/bin/cat", "/bin/busybox",
	"/usr/bin/uname", "/bin/uname", "/usr/bin/bash", "/usr/sbin/bash", "/etc",
}

// globPath reports a token with a wildcard that a shell would expand to
// one of globTargets.
func globPath(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '?' && c != '*' && c != '[' {
			continue
		}
		st, en := i, i
		for st > 0 && !globStop(s[st-1]) {
			st--
		}
		for en < len(s) && !globStop(s[en]) {
			en++
		}
		tok := s[st:en]
		if len(tok) <= 64 && strings.IndexByte(tok, '/') >= 0 {
			for _, t := range globTargets {
				if globMatch(tok, t) {
					return true
				}
			}
		}
		i = en
	}
	return false
}

func globStop(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ';', '|', '&', '<', '>', '(', ')', '`', '\'', '"', '$', '=':
		return true
	}
	return false
}

// globMatch matches a shell wildcard pattern (* ? [set] [!set] [a-z])
// against name; it backtracks only to the last '*', so it is O(len²) at
// worst on tokens of at most 64 bytes.
func globMatch(pat, name string) bool {
	px, nx := 0, 0
	starP, starN := -1, -1
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starP, starN = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			case '[':
				if nx < len(name) {
					if n, ok := globClass(pat[px:], name[nx]); n > 0 {
						if ok {
							px += n
							nx++
							continue
						}
						break
					}
				}
				if nx < len(name) && name[nx] == '[' {
					px++
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if starP >= 0 && starN < len(name) {
			starN++
			px, nx = starP+1, starN
			continue
		}
		return false
	}
	return true
}

// globClass matches c against the bracket expression at the start of p;
// n is the expression's length (0 when unterminated).
func globClass(p string, c byte) (n int, ok bool) {
	i := 1
	neg := i < len(p) && (p[i] == '!' || p[i] == '^')
	if neg {
		i++
	}
	first := i
	for ; i < len(p); i++ {
		if p[i] == ']' && i > first {
			return i + 1, ok != neg
		}
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			if p[i] <= c && c <= p[i+2] {
				ok = true
			}
			i += 2
			continue
		}
		if p[i] == c {
			ok = true
		}
	}
	return 0, false
}
