package payload

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The channel parsers take attacker bytes: none may panic, loop or
// allocate out of proportion, and every result must stay consistent.

func FuzzDecodeUTF7(f *testing.F) {
	for _, s := range []string{"Hi Mom -+Jjo--!", "+ZeVnLIqe-", "+ADw-script+AD4-", "+-", "+", "++", "+2D3eAA-", "+2D0-", "a+/+/+/-b", "\xff+AP8-"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := decodeUTF7(b)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 from %q", b)
		}
		// Every input byte yields at most one rune of at most 4 bytes.
		if len(got) > 3*len(b)+4 {
			t.Fatalf("%d bytes from %d", len(got), len(b))
		}
		// Text without '+' or non-ASCII bytes is its own UTF-7.
		if !strings.ContainsRune(string(b), '+') && utf8.ValidString(string(b)) && isASCII(b) && got != string(b) {
			t.Fatalf("%q changed to %q", b, got)
		}
		// The encoder's output decodes back.
		if s := strings.ToValidUTF8(string(b), ""); decodeUTF7([]byte(utf7(s))) != s {
			t.Fatalf("round trip of %q", s)
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fuzzInspect checks the invariants every Inspect result keeps.
func fuzzInspect(t *testing.T, v *Validator, in *Input) {
	res := v.Inspect(context.Background(), in)
	if (res.Action == Block) != (res.Score >= 3) {
		t.Errorf("action %v with score %d", res.Action, res.Score)
	}
	if len(res.Findings) > maxFindings+1 {
		t.Errorf("%d findings", len(res.Findings))
	}
}

func FuzzMultipart(f *testing.F) {
	f.Add("form-data; boundary=B", []byte("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--B--\r\n"))
	f.Add("form-data; boundary=B", []byte("--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../a\"\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n--B--"))
	f.Add("mixed; boundary=\"x y\"", []byte("--x y\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nq\r\n--z--\r\n--x y--"))
	f.Add("form-data", []byte("no boundary"))
	f.Add("form-data; boundary=B", []byte("--B\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=3Cscript=3E\r\n--B"))
	v := newTestValidator(f, DefaultConfig())
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		fuzzInspect(t, v, &Input{Path: "/", ContentType: "multipart/" + ct, Body: body})
	})
}

func FuzzXMLBody(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="utf-7"?><a b="+ADw-">t<![CDATA[x]]></a>`))
	f.Add([]byte(`<!DOCTYPE r [<!ENTITY a "&b;&b;"><!ENTITY b SYSTEM 'file:///x'>]><r>&a;</r>`))
	f.Add([]byte(`<?xml version="1.0" encoding="x-unknown"?><a/>`))
	f.Add([]byte(`<a><b></a></b><<<>>&&&;`))
	f.Add([]byte(`<s:Envelope xmlns:s="urn:x"><s:Body><q>1</q></s:Body></s:Envelope>`))
	v := newTestValidator(f, DefaultConfig())
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzInspect(t, v, &Input{Path: "/", ContentType: "application/soap+xml", Body: body})
	})
}

func FuzzLenientJSON(f *testing.F) {
	for _, s := range []string{`{a: 1, 'b': "c" /* d */} // e`, "{\"a\":1}\n{\"b\":2}\n\x1e[3]", `{"a":"\u00`, `'unterminated`, `/* open`, `{"a":[1,2,}`, "{\"a\":1}}}]]\"x\"'y'"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cfg := DefaultConfig()
		s := &scan{cfg: &cfg}
		m, err := newCostMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		s.b.start(context.Background(), &cfg.Limits, time.Minute, cfg.Limits.heavySlots(), m)
		defer s.b.finish()
		for i := range s.clean {
			s.clean[i] = map[memoKey]uint32{}
		}
		s.jsonSeq(string(body)) // must return
		if len(s.findings) > maxFindings {
			t.Errorf("%d findings", len(s.findings))
		}
	})
}

func FuzzCharsetBody(f *testing.F) {
	f.Add("utf-7", []byte(`{"a":"+ADw-"}`))
	f.Add("cp037", []byte{0xc0, 0x7f, 0x81, 0x7f, 0x7a, 0x7f, 0x4c, 0x7f, 0xd0})
	f.Add("utf-16", []byte{0xff, 0xfe, '{', 0, '}', 0})
	f.Add("utf-32", []byte{0, 0, 0xfe, 0xff, 0, 0})
	f.Add("shift_jis", []byte("a=\x82\xa0"))
	f.Add("\"bogus\"", []byte("x"))
	v := newTestValidator(f, DefaultConfig())
	f.Fuzz(func(t *testing.T, cs string, body []byte) {
		for _, media := range []string{"application/json", "application/x-www-form-urlencoded", "text/plain"} {
			fuzzInspect(t, v, &Input{Path: "/", ContentType: media + "; charset=" + cs, Body: body})
		}
	})
}

func FuzzHeaders(f *testing.F) {
	f.Add("Basic amFuZTpwdw==", "1.2.3.4, x", "text/html;q=0.9, */*")
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[::1]:80", "*/*")
	f.Add(`Digest username="a", realm="b"`, "", "a/b;c=d")
	f.Add("Bearer a.b.c.d.e", ",,,", ";;;")
	v := newTestValidator(f, DefaultConfig())
	f.Fuzz(func(t *testing.T, auth, xff, accept string) {
		fuzzInspect(t, v, &Input{Path: "/", Headers: map[string]string{"authorization": auth, "x-forwarded-for": xff, "accept": accept}})
	})
}
