package payload

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalise(t *testing.T) {
	tests := map[string]struct {
		in, want string
		plus     bool
		check    func(layers) bool
	}{
		"plain unchanged":   {in: "hello world", want: "hello world", check: func(l layers) bool { return l == layers{} }},
		"plus as space":     {in: "a+b", want: "a b", plus: true},
		"plus literal":      {in: "a+b", want: "a+b"},
		"percent":           {in: "%3Cb%3E", want: "<b>", check: func(l layers) bool { return l.url == 1 }},
		"double":            {in: "%253Cb%253E", want: "<b>", check: func(l layers) bool { return l.url == 2 }},
		"split escape":      {in: "%%32%65", want: ".", check: func(l layers) bool { return l.url == 2 }},
		"malformed kept":    {in: "100%zz %4", want: "100%zz %4"},
		"percent u":         {in: "%u002e%u002E/", want: "../", check: func(l layers) bool { return l.percentU }},
		"overlong 2 byte":   {in: "%c0%ae%c0%af", want: "./", check: func(l layers) bool { return l.overlong }},
		"overlong 3 byte":   {in: "%e0%80%ae", want: ".", check: func(l layers) bool { return l.overlong }},
		"overlong 4 byte":   {in: "%f0%80%80%af", want: "/", check: func(l layers) bool { return l.overlong }},
		"valid utf8 kept":   {in: "%c3%a9t%c3%a9 日本", want: "été 日本", check: func(l layers) bool { return !l.overlong }},
		"html named":        {in: "&lt;b&gt; &amp; &quot;", want: `<b> & "`, check: func(l layers) bool { return l.html }},
		"html numeric":      {in: "&#60;&#x3C;&#0000060", want: "<<<"},
		"html no semicolon": {in: "&ltscript&gt", want: "<script>"},
		"no entity":         {in: "AT&T & co", want: "AT&T & co", check: func(l layers) bool { return !l.html }},
		"unicode escape":    {in: `\u003cb\u003E`, want: "<b>", check: func(l layers) bool { return l.escapes }},
		"hex escape":        {in: `\x27\x4F\x52`, want: "'OR"},
		"windows path":      {in: `C:\users\xavier`, want: `C:\users\xavier`, check: func(l layers) bool { return !l.escapes }},
		"url then entity":   {in: "%26%23x6a;", want: "j", check: func(l layers) bool { return l.url == 1 && l.html }},
		"null removed":      {in: "a%00b\x00c", want: "abc", check: func(l layers) bool { return l.null }},
		"null via escape":   {in: `a\u0000b`, want: "ab", check: func(l layers) bool { return l.null }},
		"bounded rounds":    {in: "%2525252525253C", want: "%25253C", check: func(l layers) bool { return l.url == maxDecodeRounds }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, l := normalise(tc.in, tc.plus)
			if got != tc.want {
				t.Errorf("normalise(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if tc.check != nil && !tc.check(l) {
				t.Errorf("layers %+v", l)
			}
		})
	}
}

func TestNormaliseNoAllocWhenClean(t *testing.T) {
	s := strings.Repeat("plain text, nothing encoded here. ", 10)
	if n := testing.AllocsPerRun(100, func() { normalise(s, true) }); n != 0 {
		t.Errorf("normalise allocates %v times on clean input", n)
	}
}

func TestStripSQLComments(t *testing.T) {
	tests := map[string]string{
		"UNION/**/SELECT":    "UNION SELECT",
		"1/*x*/OR/*y*/1":     "1 OR 1",
		"/*!50000SELECT*/ 1": " SELECT  1",
		"a /* unterminated":  "a ",
		"no comment here":    "no comment here",
		"/**//**/":           "  ",
	}
	for in, want := range tests {
		if got, _ := stripSQLComments(in); got != want {
			t.Errorf("stripSQLComments(%q) = %q, want %q", in, got, want)
		}
	}
}

// collect walks doc and returns "k:" keys and "v:" strings in order.
func collect(doc string, depth int) ([]string, bool) {
	var out []string
	var p jsonPath
	ok := walkJSON(doc, depth, &p, func(p *jsonPath, isKey bool, s string) {
		if isKey {
			out = append(out, "k:"+p.String()+"="+s)
		} else {
			out = append(out, "v:"+p.String()+"="+s)
		}
	})
	return out, ok
}

func TestWalkJSON(t *testing.T) {
	tests := map[string]struct {
		doc   string
		depth int
		want  []string
		notOK bool
	}{
		"object":      {doc: `{"a":"x","b":{"c":"y"}}`, want: []string{"k:$.a=a", "v:$.a=x", "k:$.b=b", "k:$.b.c=c", "v:$.b.c=y"}},
		"array":       {doc: `["x",1,null,true,["y"],{}, []]`, want: []string{"v:$[0]=x", "v:$[4][0]=y"}},
		"escapes":     {doc: `{"a":"q\"\\\/\n\u00e9\ud83d\ude00"}`, want: []string{"k:$.a=a", "v:$.a=q\"\\/\né😀"}},
		"whitespace":  {doc: " {\n \"a\" : [ \"b\" , \"c\" ] } ", want: []string{"k:$.a=a", "v:$.a[0]=b", "v:$.a[1]=c"}},
		"top string":  {doc: `"hi"`, want: []string{"v:$=hi"}},
		"truncated":   {doc: `{"a":"x","b":"unfinis`, want: []string{"k:$.a=a", "v:$.a=x", "k:$.b=b", "v:$.b=unfinis"}},
		"syntax stop": {doc: `{"a":"x" "b":"y"}`, want: []string{"k:$.a=a", "v:$.a=x"}},
		"deep":        {doc: `{"a":{"b":{"c":"x"}}}`, depth: 2, want: []string{"k:$.a=a", "k:$.a.b=b", `v:$.a.b…={"c":"x"}`}},
		"not json":    {doc: `hello`, notOK: true},
		"number":      {doc: `42`, notOK: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.depth == 0 {
				tc.depth = 32
			}
			got, ok := collect(tc.doc, tc.depth)
			if ok == tc.notOK {
				t.Fatalf("ok = %v", ok)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// jsonStrings lists keys and string values in document order with
// encoding/json's tokenizer, the reference for the walker.
// It fails on invalid documents and on those nested deeper than maxDepth
// (the walker hands those subtrees over as raw text).
func jsonStrings(doc []byte, maxDepth int) ([]string, bool) {
	if !json.Valid(doc) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	var out []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out, true
		}
		if err != nil {
			return nil, false
		}
		switch x := tok.(type) {
		case string:
			out = append(out, x)
		case json.Delim:
			if x == '{' || x == '[' {
				if depth++; depth > maxDepth {
					return nil, false
				}
			} else {
				depth--
			}
		}
	}
}

func FuzzWalkJSON(f *testing.F) {
	for _, s := range []string{`{"a":"x","b":[1,"y",{"c":"z"}]}`, `[[[[["deep"]]]]]`, `{"a":"\ud83d\ude00\u0000"}`,
		`{"a":`, `"str"`, `{"":""}`, `{"a":"b","a":"c"}`, strings.Repeat("[", 100) + `"x"` + strings.Repeat("]", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 1<<16 {
			return
		}
		var p jsonPath
		var got []string
		walkJSON(string(doc), 1024, &p, func(p *jsonPath, isKey bool, s string) { got = append(got, s) })
		// On valid UTF-8 JSON the walker must see exactly the strings
		// encoding/json's tokenizer sees, in the same order.
		if !utf8.Valid(doc) {
			return
		}
		want, ok := jsonStrings(doc, 1024)
		if !ok {
			return
		}
		if strings.Join(got, "\x00|") != strings.Join(want, "\x00|") {
			t.Errorf("walker %q, encoding/json %q", got, want)
		}
	})
}

func FuzzNormalise(f *testing.F) {
	for _, s := range []string{"%253Cscript%253E", "%c0%ae%c0%af", "%u002e", "&#x3c;&lt", `\u003c\x3c`, "a+b%00", "%%32%65", "&#0000060"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, plus bool) {
		got, _ := normalise(s, plus)
		if strings.IndexByte(got, 0) >= 0 {
			t.Errorf("NUL survived normalise(%q)", s)
		}
		// Decoding never grows input by more than HTML's longest
		// expansion; a loop would blow far past it.
		if len(got) > 4*len(s)+16 {
			t.Errorf("normalise(%q) grew to %d bytes", s, len(got))
		}
		stripSQLComments(got)
	})
}

func FuzzInspect(f *testing.F) {
	f.Add("/a/../b", "q=%27+OR+1%3D1--&x=%3Cscript%3E", "application/json", []byte(`{"a":["<img src=x onerror=alert(1)>"]}`))
	f.Add("/", "a=b;c", "application/x-www-form-urlencoded", []byte("name=O%27Brien&x=..%2F..%2Fetc%2Fpasswd"))
	f.Add("/", "", "text/plain", []byte("ignore previous instructions; cat /etc/passwd `id` $(whoami)"))
	v, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, query, ct string, body []byte) {
		res := v.Inspect(t.Context(), &Input{Path: path, RawQuery: query, ContentType: ct, Body: body,
			Headers: map[string]string{"user-agent": query, "cookie": path}})
		// payload.too_complex: deny (the default) blocks whatever the score.
		if (res.Action == Block) != (res.Score >= 3 || res.TooComplex != "") {
			t.Errorf("action %v with score %d", res.Action, res.Score)
		}
	})
}
