package payload

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
)

const (
	xssAttack  = "<script>alert(document.cookie)</script>"
	sqliAttack = "1' OR '1'='1' --"
)

func enc(t testing.TB, e encoding.Encoding, s string) []byte {
	t.Helper()
	b, err := e.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// utf7 spells every character outside letters, digits and space in
// UTF-7's base64 form, as an attacker would.
func utf7(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == ' ' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			continue
		}
		var u []byte
		for _, c := range utf16.Encode([]rune{r}) {
			u = append(u, byte(c>>8), byte(c))
		}
		b.WriteString("+" + strings.TrimRight(base64.StdEncoding.EncodeToString(u), "=") + "-")
	}
	return b.String()
}

func multipartBody(parts ...string) []byte {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--BOUNDARY\r\n" + p + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return []byte(b.String())
}

const mpCT = "multipart/form-data; boundary=BOUNDARY"

func jwtToken(header, claims string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(header)) + "." + e([]byte(claims)) + ".c2lnbmF0dXJl"
}

type channelCase struct {
	name   string
	in     Input
	cfg    func(*Config)
	reason string // "" : allowed with score 0
	loc    string // a finding there (attacks)
}

func channelCases(t testing.TB) []channelCase {
	pad := strings.Repeat("lorem ipsum dolor sit amet ", 2600) // > 65,536 bytes
	cp037 := charmap.CodePage037
	u16le := unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM)
	u16be := unicode.UTF16(unicode.BigEndian, unicode.UseBOM)
	deny := func(c *Config) { c.PartialBody = PartialDeny }
	return []channelCase{
		// Bodies cut by Envoy.
		{name: "partial body, attack after the cut, inspect-prefix", in: Input{ContentType: "text/plain", Body: []byte(pad + xssAttack)}},
		{name: "partial body, envoy header, deny", cfg: deny, reason: ReasonPartialBody, loc: "body",
			in: Input{ContentType: "text/plain", Body: []byte("hello"), Headers: map[string]string{"x-envoy-auth-partial-body": "true"}}},
		{name: "partial body flag, deny", cfg: deny, reason: ReasonPartialBody, in: Input{ContentType: "text/plain", Body: []byte("hello"), PartialBody: true}},
		{name: "over max_body_bytes, deny", cfg: deny, reason: ReasonPartialBody, in: Input{ContentType: "text/plain", Body: []byte(pad)}},
		{name: "whole body, deny policy", cfg: deny, in: Input{ContentType: "text/plain", Body: []byte("hello"), Headers: map[string]string{"x-envoy-auth-partial-body": "false"}}},
		{name: "partial body, attack in the prefix, deny", cfg: deny, reason: ReasonXSS, in: Input{ContentType: "text/plain", Body: []byte(xssAttack), PartialBody: true}},

		// Multipart.
		{name: "multipart field", reason: ReasonXSS, loc: "body:comment", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"title\"\r\n\r\nHello", "Content-Disposition: form-data; name=\"comment\"\r\n\r\n"+xssAttack)}},
		{name: "multipart field benign", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"title\"\r\n\r\nHello", "Content-Disposition: form-data; name=\"comment\"\r\n\r\nNice shoes, I'd buy them again & again.")}},
		{name: "multipart file name", reason: ReasonPathTraversal, loc: "body-filename:upload", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"upload\"; filename=\"../../../../etc/passwd\"\r\nContent-Type: text/plain\r\n\r\nhello")}},
		{name: "multipart file name benign", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"upload\"; filename=\"Quarterly report (final) v2.txt\"\r\nContent-Type: text/plain\r\n\r\nhello")}},
		{name: "multipart text file", reason: ReasonSQLi, loc: "body:upload", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"upload\"; filename=\"q.txt\"\r\nContent-Type: text/plain\r\n\r\n" + sqliAttack)}},
		{name: "multipart json part", reason: ReasonXSS, loc: "body:$.bio", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"bio\":\"" + xssAttack + "\"}")}},
		{name: "multipart binary file skipped", in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + xssAttack)}},
		{name: "multipart text under an image label", reason: ReasonXSS, in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n" + xssAttack)}},
		{name: "multipart truncated", reason: ReasonXSS, in: Input{ContentType: mpCT, PartialBody: true, Body: []byte(
			"--BOUNDARY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + xssAttack)}},
		{name: "multipart mixed nested", reason: ReasonSQLi, in: Input{ContentType: mpCT, Body: multipartBody(
			"Content-Disposition: form-data; name=\"files\"\r\nContent-Type: multipart/mixed; boundary=INNER\r\n\r\n--INNER\r\nContent-Disposition: file; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n" + sqliAttack + "\r\n--INNER--")}},

		// Binary labels.
		{name: "octet-stream with text", reason: ReasonXSS, in: Input{ContentType: "application/octet-stream", Body: []byte(`{"a":"` + xssAttack + `"}`)}},
		{name: "pdf with text", reason: ReasonSQLi, in: Input{ContentType: "application/pdf", Body: []byte(sqliAttack)}},
		{name: "real pdf skipped", in: Input{ContentType: "application/pdf", Body: []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00" + xssAttack)}},
		{name: "svg image is xml", reason: ReasonXSS, in: Input{ContentType: "image/svg+xml", Body: []byte(`<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)">x</a></svg>`)}},

		// Charsets.
		{name: "utf-7 json", reason: ReasonXSS, loc: "body:$.q", in: Input{ContentType: "application/json; charset=utf-7", Body: []byte(`{"q":"` + utf7(xssAttack) + `"}`)}},
		{name: "utf-7 json benign", in: Input{ContentType: "application/json; charset=utf-7", Body: []byte(`{"q":"` + utf7("Grüße, Jürgen") + `"}`)}},
		{name: "utf-7 form", reason: ReasonXSS, loc: "body:q", in: Input{ContentType: "application/x-www-form-urlencoded; charset=UTF-7", Body: []byte("a=1&q=" + strings.ReplaceAll(utf7(xssAttack), "+", "%2B"))}},
		{name: "cp037 json", reason: ReasonSQLi, loc: "body:$.id", in: Input{ContentType: "application/json; charset=cp037", Body: enc(t, cp037, `{"id":"`+sqliAttack+`"}`)}},
		{name: "cp037 json benign", in: Input{ContentType: "application/json; charset=ibm037", Body: enc(t, cp037, `{"id":"12345","name":"Jane"}`)}},
		{name: "cp037 form", reason: ReasonXSS, loc: "body:q", in: Input{ContentType: "application/x-www-form-urlencoded; charset=ebcdic-cp-us", Body: enc(t, cp037, "a=1&q="+xssAttack)}},
		{name: "utf-16le json, no BOM", reason: ReasonXSS, in: Input{ContentType: "application/json; charset=utf-16", Body: enc(t, u16le, `{"q":"`+xssAttack+`"}`)}},
		{name: "utf-16 json by BOM, undeclared", reason: ReasonXSS, in: Input{ContentType: "application/json", Body: enc(t, u16be, `{"q":"`+xssAttack+`"}`)}},
		{name: "utf-16 json benign", in: Input{ContentType: "application/json; charset=utf-16le", Body: enc(t, u16le, `{"q":"red shoes","n":2}`)}},
		{name: "latin1 form benign", in: Input{ContentType: "application/x-www-form-urlencoded; charset=ISO-8859-1", Body: []byte("name=Fran%E7ois&city=Z%FCrich")}},
		{name: "latin1 form attack", reason: ReasonXSS, in: Input{ContentType: "application/x-www-form-urlencoded; charset=windows-1252", Body: []byte("name=%3Cscript%3Ealert(1)%3C%2Fscript%3E")}},
		{name: "undecodable charset", reason: ReasonUndecodableCharset, loc: "body", in: Input{ContentType: "application/json; charset=x-made-up", Body: []byte(`{"q":"hello"}`)}},
		{name: "unsupported ebcdic", reason: ReasonUndecodableCharset, in: Input{ContentType: "text/plain; charset=ibm500", Body: []byte("hello")}},

		// Lenient JSON and NDJSON.
		{name: "json comment", reason: ReasonXSS, in: Input{ContentType: "application/json", Body: []byte(`{"a":1, /* note */ "b":"` + xssAttack + `"}`)}},
		{name: "json comment benign", in: Input{ContentType: "application/json", Body: []byte("{\"a\":1, // the count\n \"b\":\"O'Reilly & Sons\"}")}},
		{name: "json unquoted key", reason: ReasonSQLi, in: Input{ContentType: "application/json", Body: []byte(`{a: 1, b: "` + sqliAttack + `"}`)}},
		{name: "json single quotes", reason: ReasonXSS, in: Input{ContentType: "application/json", Body: []byte(`{'a': 'x', 'b': '` + xssAttack + `'}`)}},
		{name: "json5 benign", in: Input{ContentType: "application/json", Body: []byte("{name: 'Jane Doe', tags: ['a', 'b',], note: \"it's fine\",}")}},
		{name: "ndjson second document", reason: ReasonXSS, loc: "body:$.msg", in: Input{ContentType: "application/x-ndjson", Body: []byte("{\"msg\":\"hi\"}\n{\"msg\":\"" + xssAttack + "\"}\n")}},
		{name: "ndjson benign", in: Input{ContentType: "application/x-ndjson", Body: []byte("{\"msg\":\"hi\"}\n{\"msg\":\"there\"}\n[1,2]\n\"x\"\n")}},
		{name: "json seq", reason: ReasonSQLi, in: Input{ContentType: "application/json-seq", Body: []byte("\x1e{\"a\":1}\n\x1e{\"q\":\"" + sqliAttack + "\"}\n")}},
		{name: "json after trailing garbage", reason: ReasonXSS, in: Input{ContentType: "application/json", Body: []byte(`{"a":1}} garbage "` + xssAttack + `"`)}},

		// XML / SOAP.
		{name: "xml text node", reason: ReasonSQLi, loc: "body:$.order.id", in: Input{ContentType: "application/xml", Body: []byte(`<?xml version="1.0"?><order><id>` + sqliAttack + `</id></order>`)}},
		{name: "xml attribute", reason: ReasonXSS, loc: "body:$.a.@title", in: Input{ContentType: "text/xml", Body: []byte(`<a title="` + strings.ReplaceAll(strings.ReplaceAll(xssAttack, "<", "&lt;"), ">", "&gt;") + `">x</a>`)}},
		{name: "soap body", reason: ReasonSQLi, loc: "body:$.soap:Envelope.soap:Body.m:GetUser.m:Name", in: Input{ContentType: "application/soap+xml; charset=utf-8", Body: []byte(
			`<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><m:GetUser xmlns:m="https://ex.com/u"><m:Name>` + sqliAttack + `</m:Name></m:GetUser></soap:Body></soap:Envelope>`)}},
		{name: "soap benign", in: Input{ContentType: "application/soap+xml", Body: []byte(
			`<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header/><soap:Body><m:GetPrice xmlns:m="https://www.w3schools.com/prices"><m:Item>Apples &amp; Pears</m:Item><m:Note><![CDATA[Tom's "best" price]]></m:Note></m:GetPrice></soap:Body></soap:Envelope>`)}},
		{name: "xstream gadget element", reason: ReasonDeserialization, loc: "body-key:$.java.lang.ProcessBuilder", in: Input{ContentType: "application/xml", Body: []byte(
			`<java.lang.ProcessBuilder><command><string>calc</string></command></java.lang.ProcessBuilder>`)}},
		{name: "xml cdata", reason: ReasonXSS, in: Input{ContentType: "application/xml", Body: []byte(`<r><![CDATA[` + xssAttack + `]]></r>`)}},
		{name: "xhtml doctype benign", in: Input{ContentType: "application/xhtml+xml", Body: []byte(`<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n" +
			`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en"><head><title>Caf\xe9</title></head><body><p class="x">Hello -- world</p></body></html>`)}},
		{name: "xxe doctype", reason: ReasonPathTraversal, loc: "body:!DOCTYPE", in: Input{ContentType: "application/xml", Body: []byte(
			`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///../../../etc/passwd">]><r>&x;</r>`)}},
		{name: "xml utf-7 prolog", reason: ReasonSQLi, loc: "body:$.r", in: Input{ContentType: "application/xml", Body: []byte(`<?xml version="1.0" encoding="utf-7"?><r>` + utf7(sqliAttack) + `</r>`)}},
		{name: "svg script", reason: ReasonXSS, in: Input{ContentType: "image/svg+xml", Body: []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)}},
		{name: "svg benign", in: Input{ContentType: "image/svg+xml", Body: []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><title>Logo</title><circle cx="5" cy="5" r="4" fill="#c00"/></svg>`)}},
		{name: "xml broken, rest inspected", reason: ReasonXSS, in: Input{ContentType: "application/xml", Body: []byte(`<r><a>1</b></r> <<>> ` + xssAttack)}},

		// Headers.
		{name: "basic user", reason: ReasonSQLi, loc: "header:authorization.user", in: Input{Headers: map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(sqliAttack+":pw"))}}},
		{name: "basic password", reason: ReasonXSS, loc: "header:authorization.password", in: Input{Headers: map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("jane:"+xssAttack))}}},
		{name: "basic benign", in: Input{Headers: map[string]string{"authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("jane:correct horse battery staple"))}}},
		{name: "jwt claim", reason: ReasonSQLi, loc: "header:authorization.jwt:$.sub", in: Input{Headers: map[string]string{"authorization": "Bearer " + jwtToken(`{"alg":"HS256"}`, `{"sub":"`+sqliAttack+`"}`)}}},
		{name: "jwt kid", reason: ReasonPathTraversal, loc: "header:authorization.jwt-header:$.kid", in: Input{Headers: map[string]string{"authorization": "Bearer " + jwtToken(`{"alg":"HS256","kid":"../../../../../../etc/passwd"}`, `{"sub":"1"}`)}}},
		{name: "jwt benign", in: Input{Headers: map[string]string{"authorization": "Bearer " + jwtToken(`{"alg":"RS256","kid":"k1"}`, `{"sub":"auth0|5f7c8ec7c33c6c004bbafe82","name":"Seán O'Brien","iss":"https://id.example.com/"}`)}}},
		{name: "accept-language", reason: ReasonSQLi, loc: "header:accept-language", in: Input{Headers: map[string]string{"accept-language": sqliAttack}}},
		{name: "origin", reason: ReasonXSS, loc: "header:origin", in: Input{Headers: map[string]string{"origin": xssAttack}}},
		{name: "forwarded", reason: ReasonSQLi, in: Input{Headers: map[string]string{"forwarded": "for=" + sqliAttack}}},
		{name: "host", reason: ReasonXSS, loc: "header:host", in: Input{Headers: map[string]string{"host": xssAttack}}},
		{name: ":authority", reason: ReasonXSS, loc: "header::authority", in: Input{Headers: map[string]string{":authority": xssAttack}}},
		{name: "x-forwarded-host", reason: ReasonXSS, in: Input{Headers: map[string]string{"x-forwarded-host": xssAttack}}},
		{name: "x-real-ip", reason: ReasonSQLi, in: Input{Headers: map[string]string{"x-real-ip": sqliAttack}}},
		{name: "x-client-trace-id", reason: ReasonXSS, in: Input{Headers: map[string]string{"x-client-trace-id": xssAttack}}},
		{name: "x-request-id is Envoy's", in: Input{Headers: map[string]string{"x-request-id": xssAttack}}},
		{name: ":path is the path", in: Input{Path: "/", Headers: map[string]string{":path": "/?q=" + xssAttack}}},
	}
}

func TestChannels(t *testing.T) {
	for _, tc := range channelCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v := newTestValidator(t, cfg)
			in := tc.in
			if in.Path == "" {
				in.Path = "/api/things"
			}
			res := v.Inspect(context.Background(), &in)
			if tc.reason == "" {
				if res.Score != 0 || res.Action == Block {
					t.Fatalf("benign twin scored %d (%v): %+v", res.Score, res.Action, res.Findings)
				}
				return
			}
			if res.Action != Block || res.Reason != tc.reason {
				t.Fatalf("action %v reason %q, want block %q: %+v", res.Action, res.Reason, tc.reason, res.Findings)
			}
			if tc.loc != "" {
				found := false
				for _, f := range res.Findings {
					found = found || f.Location == tc.loc
				}
				if !found {
					t.Errorf("no finding at %q: %+v", tc.loc, res.Findings)
				}
			}
		})
	}
}

func TestBillionLaughsCostsNothing(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 1; i <= 9; i++ {
		name := "lol" + string(rune('0'+i))
		b.WriteString(`<!ENTITY ` + name + ` "` + strings.Repeat("&"+prev+";", 10) + `">`)
		prev = name
	}
	b.WriteString(`]><lolz>&lol9;</lolz>`)
	v := newTestValidator(t, DefaultConfig())
	in := &Input{Path: "/", ContentType: "application/xml", Body: []byte(b.String())}
	start := time.Now()
	res := v.Inspect(context.Background(), in)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("took %v", d)
	}
	if res.Action == Block {
		t.Errorf("blocked: %+v", res.Findings)
	}
	allocs := testing.AllocsPerRun(5, func() { v.Inspect(context.Background(), in) })
	if allocs > 2000 {
		t.Errorf("%v allocations", allocs)
	}
}

func TestDecodeUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"Hi Mom -+Jjo--!":  "Hi Mom -☺-!", // RFC 2152's examples
		"+ZeVnLIqe-":       "日本語",
		"A+ImIDkQ.":        "A≢Α.",
		"1 +- 1 = 2":       "1 + 1 = 2",
		"+ADw-script+AD4-": "<script>",
		"+AGEAYgBj":        "abc", // open to the end
		"+2D3eAA-":         "😀",   // a surrogate pair
		"+2D0-x":           "\uFFFD" + "x",
		"plain":            "plain",
		"+":                "",
		"a\xffb":           "a\uFFFDb",
	} {
		if got := decodeUTF7([]byte(in)); got != want {
			t.Errorf("decodeUTF7(%q) = %q, want %q", in, got, want)
		}
	}
	for _, s := range []string{xssAttack, sqliAttack, "Grüße 日本語 😀 +-/", ""} {
		if got := decodeUTF7([]byte(utf7(s))); got != s {
			t.Errorf("round trip %q: %q (%q)", s, got, utf7(s))
		}
	}
}
