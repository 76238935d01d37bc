package payload

import (
	"strconv"
	"strings"
)

// Server-side request forgery rules (reason payload.ssrf).
const (
	ruleSSRFMetadata   = "payload.ssrf.metadata"         // 169.254.169.254, metadata.google.internal
	ruleSSRFScheme     = "payload.ssrf.scheme"           // gopher://, dict://, ldap://, tftp://, jar:
	ruleSSRFFileScheme = "payload.ssrf.file_scheme"      // file:// (borderline; blocks with a sensitive file)
	ruleSSRFObfuscated = "payload.ssrf.ip_obfuscation"   // http://2130706433/, http://0x7f000001/
	ruleSSRFLoopback   = "payload.ssrf.loopback"         // http://localhost/, http://127.0.0.1/ (weak)
	ruleSSRFInternal   = "payload.ssrf.internal_service" // http://127.0.0.1:6379/ (Redis, Memcached, Docker…)
	ruleSSRFRemoteFile = "payload.ssrf.remote_include"   // http://66.240.183.75/crash.php: a script fetched from a bare IP
)

// scriptExts are server-side script files that a remote file inclusion
// points an include() at.
var scriptExts = []string{".php", ".asp", ".aspx", ".jsp", ".pl", ".cgi", ".sh", ".py", ".inc"}

// remoteScript reports a URL remainder (after "://") whose host is an
// IP literal (v4 dotted quad or v6) and whose path names a script file.
func remoteScript(rest string, end int) bool {
	hp := rest[:end]
	if at := strings.LastIndexByte(hp, '@'); at >= 0 {
		hp = hp[at+1:]
	}
	v6 := strings.Count(hp, ":") >= 2
	if !v6 {
		h, _, _ := strings.Cut(hp, ":")
		if strings.Count(h, ".") != 3 || strings.Trim(h, "0123456789.") != "" {
			return false
		}
	} else if strings.Trim(hp, "0123456789abcdef:[]") != "" {
		return false
	}
	path := rest[end:]
	if v6 && !strings.HasPrefix(hp, "[") {
		// http://2001:db8::1/x.php: the path starts at the first '/'.
		if k := strings.IndexByte(rest, '/'); k >= 0 {
			path = rest[k:]
		}
	}
	if k := strings.IndexAny(path, "?#"); k >= 0 {
		path = path[:k]
	}
	for _, e := range scriptExts {
		if strings.HasSuffix(path, e) {
			return true
		}
	}
	return false
}

// metadataHosts are cloud instance-metadata endpoints, never a legitimate
// value for a client to send.
var metadataHosts = []string{
	"169.254.169.254", "metadata.google.internal", "fd00:ec2::254", "100.100.100.200",
	"169.254.170.2", "metadata.azure.internal", "instance-data.ec2.internal", "metadata.packet.net",
	"169.254.169.123", "192.0.0.192",
}

// dangerousSchemes reach non-HTTP services through an HTTP client.
var dangerousSchemes = map[string]bool{
	"gopher": true, "dict": true, "tftp": true, "ldap": true, "ldaps": true, "ldapi": true,
	"netdoc": true, "jar": true, "sftp": false, "smb": true, "rmi": true, "iiop": true, "corba": true,
}

// metadataAddr reports "169.254.", "192.0.0.192", "100.100.100.200" or
// "fd00:ec2" in s. The first three are looked for where a '.' follows
// three digits instead of by three scans: an https URL with a digit cost
// detectSSRF 1,780 instructions, 1,680 this way (callgrind;
// TestFastPathsRandom and FuzzFastPaths compare it with the scans).
func metadataAddr(s string) bool {
	for i := strings.IndexByte(s, '.'); i >= 0; {
		if i >= 3 {
			switch s[i-3 : i] {
			case "169":
				if strings.HasPrefix(s[i-3:], "169.254.") {
					return true
				}
			case "192":
				if strings.HasPrefix(s[i-3:], "192.0.0.192") {
					return true
				}
			case "100":
				if strings.HasPrefix(s[i-3:], "100.100.100.200") {
					return true
				}
			}
		}
		j := strings.IndexByte(s[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return strings.IndexByte(s, ':') >= 0 && strings.Contains(s, "fd00:ec2")
}

// dangerousFirst marks the first bytes of dangerousSchemes, so http and
// https skip the map lookup.
var dangerousFirst = func() (t [256]bool) {
	for s := range dangerousSchemes {
		t[s[0]] = true
	}
	return t
}()

func detectSSRF(lower string, cls uint64) hit {
	if cls&(cDot|cColon) == 0 {
		return hit{}
	}
	var h hit
	if cls&cDigit != 0 && metadataAddr(lower) ||
		cls&kwMetadata != 0 {
		for _, m := range metadataHosts {
			if strings.Contains(lower, m) {
				return mk(weightBlock, ruleSSRFMetadata)
			}
		}
	}
	if cls&cColon == 0 {
		return h
	}
	if cls&kwMetadata != 0 && (strings.Contains(lower, "jar:") && strings.Contains(lower, "!/") || strings.Contains(lower, "netdoc:")) {
		return mk(weightBlock, ruleSSRFScheme)
	}
	for off := 0; ; {
		i := strings.Index(lower[off:], "://")
		if i < 0 {
			break
		}
		i += off
		off = i + 3
		st := i
		for st > 0 && (isLetterOrUnderscore(lower[st-1]) || lower[st-1] >= '0' && lower[st-1] <= '9' || lower[st-1] == '+' || lower[st-1] == '.' || lower[st-1] == '-') {
			st--
		}
		scheme := lower[st:i]
		switch {
		case scheme != "" && dangerousFirst[scheme[0]] && dangerousSchemes[scheme]:
			return mk(weightBlock, ruleSSRFScheme)
		case scheme == "file":
			h = h.or(mk(weightBorderline, ruleSSRFFileScheme))
			continue
		case scheme != "http" && scheme != "https" && scheme != "ftp" && !strings.HasSuffix(scheme, "http") && !strings.HasSuffix(scheme, "https"):
			continue
		}
		rest := lower[i+3:]
		end := strings.IndexAny(rest, "/?#\\ \t\r\n")
		if end < 0 {
			end = len(rest)
		}
		if remoteScript(rest, end) {
			return mk(weightBlock, ruleSSRFRemoteFile)
		}
		if (scheme == "ftp" || scheme == "ftps") && dottedQuad(rest[:end]) {
			return mk(weightBlock, ruleSSRFRemoteFile) // ftp://1.2.3.4: an include fetched over FTP
		}
		host := rest[:end]
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		if strings.HasPrefix(host, "[") {
			if e := strings.IndexByte(host, ']'); e > 0 {
				host = host[1:e]
			}
		} else if c := strings.LastIndexByte(host, ':'); c >= 0 {
			host = host[:c]
		}
		port := ""
		if c := strings.LastIndexByte(rest[:end], ':'); c >= 0 && !strings.Contains(rest[c:end], "]") {
			port = rest[c+1 : end]
		}
		switch ipHostKind(host) {
		case hostObfuscated:
			return mk(weightBlock, ruleSSRFObfuscated)
		case hostLoopback:
			if internalPorts[port] {
				return mk(weightBlock, ruleSSRFInternal)
			}
			h = h.or(mk(weightWeak, ruleSSRFLoopback))
		}
	}
	return h
}

// internalPorts are loopback services an SSRF reaches for: Redis,
// Memcached, Elasticsearch, Docker, CouchDB, MongoDB, MySQL, PostgreSQL,
// Consul, kubelet, etcd.
var internalPorts = map[string]bool{
	"6379": true, "11211": true, "9200": true, "2375": true, "2376": true, "5984": true, "27017": true,
	"3306": true, "5432": true, "8500": true, "10250": true, "2379": true,
}

const (
	hostOther = iota
	hostLoopback
	hostObfuscated
)

// ipHostKind classifies a URL host: loopback names and addresses (weak:
// developers use them), or an IPv4 address written as one decimal, hex or
// octal number or with hex/octal parts, which only evasion produces.
func ipHostKind(host string) int {
	switch host {
	case "localhost", "127.0.0.1", "0.0.0.0", "0", "::1", "::", "::ffff:127.0.0.1", "localhost.localdomain", "127.1":
		return hostLoopback
	}
	if host == "" || host[0] < '0' || host[0] > '9' {
		return hostOther // a name (loopback names are handled above)
	}
	if len(host) > 64 || strings.Count(host, ".") > 3 {
		return hostOther
	}
	var buf [4]string
	parts := buf[:0]
	for rest := host; ; {
		p, r, more := strings.Cut(rest, ".")
		parts = append(parts, p)
		if !more {
			break
		}
		rest = r
	}
	odd := false
	for _, p := range parts {
		if p == "" {
			return hostOther
		}
		if strings.HasPrefix(p, "0x") {
			if _, err := strconv.ParseUint(p[2:], 16, 32); err != nil {
				return hostOther
			}
			odd = true
			continue
		}
		for k := 0; k < len(p); k++ {
			if p[k] < '0' || p[k] > '9' {
				return hostOther
			}
		}
		if len(p) > 1 && p[0] == '0' {
			odd = true // octal
		}
	}
	if len(parts) == 1 {
		// One number: http://2130706433/ is 127.0.0.1.
		if n, err := strconv.ParseUint(parts[0], 0, 64); err == nil && n > 0xffffff && n <= 0xffffffff {
			return hostObfuscated
		}
		return hostOther
	}
	if odd {
		return hostObfuscated
	}
	if strings.HasPrefix(host, "127.") {
		return hostLoopback
	}
	return hostOther
}

const (
	ruleSSRFBareHost  = "payload.ssrf.internal_host"  // localhost/, host.docker.internal/ with no scheme
	ruleSSRFQueryTail = "payload.ssrf.rfi_query_tail" // http://evil/x? : a "?" that turns the app's suffix into a query
	ruleSSRFDataURI   = "payload.ssrf.data_uri"       // data:text/plain;base64,… handed to a fetcher
)

// internalHostNames name the local machine, the container host or the
// cluster; a value that opens with one and a '/' is a URL without scheme.
var internalHostNames = []string{
	"localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4", "localhost6",
	"ipv6-localhost", "ip6-localhost", "ip6-loopback", "host.docker.internal", "gateway.docker.internal",
	"kubernetes.docker.internal", "host.containers.internal", "kubernetes.default.svc.cluster.local",
	"kubernetes.default.svc", "kubernetes.default", "localtest.me", "lvh.me",
}

// internalHostMin is the length of the shortest internalHostNames entry:
// the "https:" of a URL is shorter, and skips the 17 comparisons
// (detectBareHost on an https URL: 240 instructions, 140; callgrind).
var internalHostMin = func() int {
	m := len(internalHostNames[0])
	for _, n := range internalHostNames {
		m = min(m, len(n))
	}
	return m
}()

// detectBareHost reports a value that is "<internal host>/…" or
// "<internal host>:port/…".
// bareHostFirst: the first bytes detectBareHost looks at (runDetectors
// tests it before the call).
var bareHostFirst = [256]bool{'l': true, 'i': true, 'h': true, 'g': true, 'k': true}

func detectBareHost(lower string) hit {
	if len(lower) < 7 || lower[0] != 'l' && lower[0] != 'i' && lower[0] != 'h' && lower[0] != 'g' && lower[0] != 'k' {
		return hit{}
	}
	e := strings.IndexByte(lower, '/')
	if e <= 0 {
		return hit{}
	}
	host := lower[:e]
	if c := strings.IndexByte(host, ':'); c > 0 {
		if strings.Trim(host[c+1:], "0123456789") != "" {
			return hit{}
		}
		host = host[:c]
	}
	if len(host) < internalHostMin {
		return hit{} // "http:" of a URL with a scheme
	}
	for _, n := range internalHostNames {
		if host == n {
			return mk(weightBlock, ruleSSRFBareHost)
		}
	}
	return hit{}
}

// rfiSchemes are what a remote include is fetched over.
var rfiSchemes = []string{"http", "https", "ftp", "ftps", "file"}

// ssrfShapes: a value that is a scheme and "?" (the RFI probe), a URL
// ending in "?", "http:127.0.0.1" (loopback with the slashes dropped),
// or a textual data: URI.
func ssrfShapes(lower string) hit {
	if len(lower) < 4 {
		return hit{}
	}
	switch {
	case strings.HasPrefix(lower, "data:text/") || strings.HasPrefix(lower, "data:application/"):
		return mk(weightBlock, ruleSSRFDataURI)
	case strings.HasPrefix(lower, "http:127.") || strings.HasPrefix(lower, "https:127.") ||
		strings.HasPrefix(lower, "http:localhost") || strings.HasPrefix(lower, "https:localhost"):
		return mk(weightBlock, ruleSSRFObfuscated)
	}
	if lower[len(lower)-1] != '?' {
		return hit{}
	}
	for _, s := range rfiSchemes {
		if !strings.HasPrefix(lower, s) {
			continue
		}
		if len(lower) == len(s)+1 || strings.HasPrefix(lower[len(s):], "://") && strings.IndexByte(lower, '?') == len(lower)-1 &&
			!strings.ContainsAny(lower, " \t") {
			return mk(weightBlock, ruleSSRFQueryTail)
		}
	}
	return hit{}
}

// pathParamSuffixes end parameter names that carry a local path or
// directory; a remote URL there is a remote file include.
var pathParamSuffixes = []string{"_path", "path]", "_dir", "dir]", "_root", "root]", "_include", "include]"}

// remoteIncludeParam reports an http(s)/ftp URL in a parameter whose
// name says it holds a filesystem path (mosConfig_absolute_path=http://…).
func remoteIncludeParam(name, lower string) hit {
	if !strings.HasPrefix(lower, "http") && !strings.HasPrefix(lower, "ftp") {
		return hit{}
	}
	sch, _, ok := strings.Cut(lower, "://")
	if !ok || sch != "http" && sch != "https" && sch != "ftp" && sch != "ftps" {
		return hit{}
	}
	n := strings.ToLower(name)
	for _, suf := range pathParamSuffixes {
		if strings.HasSuffix(n, suf) {
			return mk(weightBlock, ruleSSRFRemoteFile)
		}
	}
	return hit{}
}

// dottedQuad reports a host[:port] that is an IPv4 address literal.
func dottedQuad(hp string) bool {
	if at := strings.LastIndexByte(hp, '@'); at >= 0 {
		hp = hp[at+1:]
	}
	h, _, _ := strings.Cut(hp, ":")
	return strings.Count(h, ".") == 3 && len(h) >= 7 && strings.Trim(h, "0123456789.") == ""
}
