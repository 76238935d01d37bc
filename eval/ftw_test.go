package eval

import (
	"encoding/base64"
	"reflect"
	"testing"
)

func str(s string) *string { return &s }

func TestParseFTW(t *testing.T) {
	tests := map[string]struct {
		yaml    string
		want    []Case
		wantErr bool
	}{
		"attack with form data": {
			yaml: `
rule_id: 942100
tests:
  - test_id: 1
    desc: "Simple SQL Injection"
    stages:
      - input:
          dest_addr: 127.0.0.1
          headers:
            Host: localhost
          method: POST
          uri: "/post"
          data: "var=1234 OR 1=1"
        output:
          log:
            expect_ids: [942100]
`,
			want: []Case{{RuleID: 942100, TestID: 1, Desc: "Simple SQL Injection", Family: "942", Expect: Attack,
				Req: Request{Method: "POST", URI: "/post", Version: "HTTP/1.1", Body: []byte("var=1234+OR+1%3D1"), Headers: []Header{
					{"Host", "localhost"}, {"Content-Type", "application/x-www-form-urlencoded"},
					{"Connection", "close"}, {"Content-Length", "17"}}}}},
		},
		"must-not-match, defaults, no test_id": {
			yaml: `
rule_id: 941100
tests:
  - stages:
      - input:
          headers: {User-Agent: ua}
        output:
          log:
            no_expect_ids: [941100]
`,
			want: []Case{{RuleID: 941100, TestID: 1, Family: "941", Expect: MustNotMatch,
				Req: Request{Method: "GET", URI: "/", Version: "HTTP/1.1", Headers: []Header{{"User-Agent", "ua"}, {"Connection", "close"}}}}},
		},
		"status-only test is other; last stage mentioning the rule decides": {
			yaml: `
rule_id: 921110
tests:
  - test_id: 2
    stages:
      - input: {uri: "/setup"}
        output: {log: {expect_ids: [921110]}}
      - input: {uri: "/second"}
        output: {status: 200}
  - test_id: 3
    stages:
      - input: {uri: "/x"}
        output: {status: 400}
`,
			want: []Case{
				{RuleID: 921110, TestID: 2, Family: "921", Expect: Attack,
					Req: Request{Method: "GET", URI: "/setup", Version: "HTTP/1.1", Headers: []Header{{"Connection", "close"}}}},
				{RuleID: 921110, TestID: 3, Family: "921", Expect: Other,
					Req: Request{Method: "GET", URI: "/x", Version: "HTTP/1.1", Headers: []Header{{"Connection", "close"}}}},
			},
		},
		"no rule id": {yaml: "tests: []\n", wantErr: true},
		"bad yaml":   {yaml: "rule_id: [\n", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFTW([]byte(tc.yaml))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestBuildRequest(t *testing.T) {
	f := false
	raw := "POST /a?b=1 HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\ntest=xEXTRA"
	tests := map[string]struct {
		in   ftwInput
		want Request
	}{
		"json body keeps its content type and is not encoded": {
			in: ftwInput{Method: str("POST"), Headers: map[string]string{"Content-Type": "application/json"}, Data: str(`{"a":"b c"}`)},
			want: Request{Method: "POST", URI: "/", Version: "HTTP/1.1", Body: []byte(`{"a":"b c"}`), Headers: []Header{
				{"Content-Type", "application/json"}, {"Connection", "close"}, {"Content-Length", "11"}}},
		},
		"already encoded form data is left alone": {
			in: ftwInput{Method: str("POST"), Data: str("a=%27x%27&b=1")},
			want: Request{Method: "POST", URI: "/", Version: "HTTP/1.1", Body: []byte("a=%27x%27&b=1"), Headers: []Header{
				{"Content-Type", "application/x-www-form-urlencoded"}, {"Connection", "close"}, {"Content-Length", "13"}}},
		},
		"form pieces without = are encoded whole": {
			in: ftwInput{Method: str("POST"), Data: str("<script>&a=b c")},
			want: Request{Method: "POST", URI: "/", Version: "HTTP/1.1", Body: []byte("%3Cscript%3E&a=b+c"), Headers: []Header{
				{"Content-Type", "application/x-www-form-urlencoded"}, {"Connection", "close"}, {"Content-Length", "18"}}},
		},
		"autocomplete off sends exactly what is given": {
			in:   ftwInput{Method: str("POST"), URI: str("/p"), AutocompleteHeaders: &f, Data: str("a=b c"), Headers: map[string]string{"Host": "h"}},
			want: Request{Method: "POST", URI: "/p", Version: "HTTP/1.1", Body: []byte("a=b c"), Headers: []Header{{"Host", "h"}}},
		},
		"empty POST gets Content-Length 0": {
			in: ftwInput{Method: str("POST")},
			want: Request{Method: "POST", URI: "/", Version: "HTTP/1.1", Headers: []Header{
				{"Connection", "close"}, {"Content-Length", "0"}}},
		},
		"encoded_request is parsed, body cut at Content-Length": {
			in: ftwInput{EncodedRequest: base64.StdEncoding.EncodeToString([]byte(raw))},
			want: Request{Method: "POST", URI: "/a?b=1", Version: "HTTP/1.0", Body: []byte("test=x"), Headers: []Header{
				{"Host", "localhost"}, {"Content-Type", "application/x-www-form-urlencoded"}, {"Content-Length", "6"}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := BuildRequest(&tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseLevels(t *testing.T) {
	conf := `# SecRule ARGS "@rx x" "id:1,tag:'paranoia-level/4'"
SecRule ARGS "@rx a" \
    "id:942100,\
    phase:2,\
    tag:'paranoia-level/1',\
    chain"
    SecRule ARGS "@rx b" "t:none"
SecRule ARGS "@rx c" "id:942200,phase:2,tag:'paranoia-level/2'"
SecRule TX:X "@lt 1" "id:942011,phase:1,pass,nolog"
`
	got := map[int]int{}
	parseLevels(conf, got)
	want := map[int]int{942100: 1, 942200: 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
