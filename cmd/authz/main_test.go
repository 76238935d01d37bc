package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfigSubcommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(good, []byte("server: {decision_budget: 20ms}\n"), 0o600)
	_ = os.WriteFile(bad, []byte("store: {backend: redis, redis: {timeout: -5ms}}\n"), 0o600)
	moduleBad := filepath.Join(dir, "module.yaml")
	_ = os.WriteFile(moduleBad, []byte("behavior: {grey_threshold: 9, block_threshold: 8}\n"), 0o600)
	quotaBad := filepath.Join(dir, "quota.yaml")
	_ = os.WriteFile(quotaBad, []byte("quota: {plans: {free: {/x: {per_minute: -1}}}}\n"), 0o600)
	tests := map[string]struct {
		args []string
		code int
		out  string
	}{
		"valid":                  {[]string{"check-config", "--config", good}, 0, "configuration OK"},
		"invalid value":          {[]string{"check-config", "--config", bad}, 1, "store.redis.timeout"},
		"missing file":           {[]string{"check-config", "--config", filepath.Join(dir, "nope.yaml")}, 1, "nope.yaml"},
		"bad flag":               {[]string{"check-config", "--store", "etcd"}, 1, "store.backend"},
		"module rule":            {[]string{"check-config", "--config", moduleBad}, 1, "behavior."},
		"bad quota":              {[]string{"check-config", "--config", quotaBad}, 1, "per_minute"},
		"unknown cmd":            {[]string{"frobnicate"}, 2, "unknown command"},
		"version flag":           {[]string{"--version"}, 0, "smartlayer authz "},
		"version cmd":            {[]string{"version"}, 0, "smartlayer authz "},
		"help lists subcommands": {[]string{"--help"}, 0, "check-config   load and validate"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
				t.Fatalf("code %d, output %q %q; want %d containing %q", code, stdout.String(), stderr.String(), tc.code, tc.out)
			}
		})
	}
}

func TestServeFailsOnBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--authz-addr", l.Addr().String(), "--admin-addr", ""}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "server.authz_addr") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}

// check-config and serve go through one validation path: every bad
// configuration is rejected by both, with the same words, before serve
// opens a listener.
func TestCheckConfigAndServeRejectTheSame(t *testing.T) {
	bad := map[string]string{
		"unknown key":         "server: {authz_adr: ':1'}",
		"bare duration":       "server: {decision_budget: 50}",
		"empty anon plan":     "identity: {anonymous_plan: ''}",
		"behaviour rule":      "behavior: {grey_threshold: 9, block_threshold: 8}",
		"behaviour cidr":      "behavior: {allow_cidrs: [10.0.0.0/33]}",
		"payload rule":        "payload: {block_score: 0, max_json_depth: 0}",
		"payload llm mode":    "payload: {llm: {mode: sometimes}}",
		"payload llm (old)":   "payload: {llm_mode: sometimes}",
		"quota plan":          "quota: {plans: {free: {/x: {per_minute: -1}}}}",
		"quota memory":        "quota: {memory: {shards: 0}}",
		"store":               "store: {backend: redis, redis: {addr: ''}}",
		"llm":                 "llm: {base_url: 'http://127.0.0.1:1/v1'}",
		"accesslog":           "accesslog: {batch_rows: 0, store_client_ip: sometimes}",
		"report":              "report: {timezone: Mars/Olympus}",
		"report health":       "report: {health: {degraded_p95: 3s, critical_p95: 1s}}",
		"log":                 "log: {level: loud}",
		"tls half":            "server: {tls: {cert_file: /x.pem}}",
		"several at once":     "server: {fail_mode: maybe}\nbehavior: {rate_block: 5, rate_suspect: 9}",
		"not yaml":            "server: [",
		"llm narrative (old)": "llm: {narrative_timeout: 0s}\nreport: {narrative_timeout: 0s}",
	}
	dir := t.TempDir()
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(file, []byte(body+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var checkOut, checkErr, serveOut, serveErr bytes.Buffer
			checkCode := run(context.Background(), []string{"check-config", "--config", file}, &checkOut, &checkErr)
			// Were the file accepted, serve would bind these ports and block.
			serveCode := run(context.Background(), []string{"serve", "--config", file, "--authz-addr", "127.0.0.1:0",
				"--als-addr", "", "--admin-addr", ""}, &serveOut, &serveErr)
			if checkCode != 1 || serveCode != 1 {
				t.Fatalf("check-config exit %d, serve exit %d; want both 1\ncheck: %s\nserve: %s", checkCode, serveCode, checkErr.String(), serveErr.String())
			}
			if checkErr.String() != serveErr.String() || checkErr.Len() == 0 {
				t.Errorf("different rejections:\ncheck-config: %s\nserve:        %s", checkErr.String(), serveErr.String())
			}
		})
	}
}

// authz explain decides one request as serve would and prints the signals
// an operator needs to understand (or exempt) a denial.
func TestExplain(t *testing.T) {
	dir := t.TempDir()
	checkReq := filepath.Join(dir, "check.json")
	_ = os.WriteFile(checkReq, []byte(`{"attributes":{"source":{"address":{"socketAddress":{"address":"198.51.100.7"}}},
		"request":{"http":{"method":"GET","path":"/files?name=../../etc/passwd","host":"api.example.com",
		"headers":{"user-agent":"Mozilla/5.0"}}}}}`), 0o600)
	tests := map[string]struct {
		args []string
		code int
		out  []string
	}{
		"sqli in the query": {[]string{"explain", "http://api.example.com/search?q=1%27%20union%20select%20password%20from%20users--"}, 0,
			[]string{"decision", "deny", "payload.sqli", "query:q", "union select", "weight 3"}},
		"benign with a tool's user agent": {[]string{"explain", "-H", "User-Agent: curl/8", "http://api.example.com/products/7"}, 0,
			[]string{"allow", "suspicious_user_agent", "score 0"}},
		"json body and claims": {[]string{"explain", "-H", "Content-Type: application/json", "-d", `{"c":"<script>alert(1)</script>"}`,
			"--claims", `{"sub":"u1","plan":"free"}`, "http://api.example.com/comments"}, 0,
			[]string{`user "u1"`, "plan free", "payload.xss", "body:$.c"}},
		"a CheckRequest file": {[]string{"explain", "--check-request", checkReq}, 0, []string{"client 198.51.100.7", "path_traversal"}},
		"no url":              {[]string{"explain"}, 1, []string{"one URL"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
