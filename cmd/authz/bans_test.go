package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/smartlayer/smartlayer/internal/admin"
	"github.com/smartlayer/smartlayer/internal/scoring"
	"github.com/smartlayer/smartlayer/internal/scoring/state"
)

func adminServer(t *testing.T, token string) string {
	t.Helper()
	st, err := state.NewMemory(state.DefaultMemoryOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := scoring.NewBehavior(scoring.DefaultBehaviorConfig(), st, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	srv := httptest.NewServer(admin.BansHandler(b, token, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRunBans(t *testing.T) {
	type step struct {
		args    []string
		env     string // SMARTLAYER_SERVER_ADMIN_TOKEN
		wantOut string // substring of stdout
		wantErr string // substring of the error
		usage   bool   // the error is a usage error
	}
	tests := map[string]struct {
		token string
		steps []step
	}{
		"add, list, delete with flag token": {token: "tk", steps: []step{
			{args: []string{"list", "--token", "tk"}, wantOut: "no active bans"},
			{args: []string{"add", "192.0.2.5", "--reason", "scraping", "--ttl", "2h", "--token", "tk"}, wantOut: "banned 192.0.2.5 until"},
			{args: []string{"add", "2001:db8::99", "--token=tk"}, wantOut: "banned 2001:db8::/64"},
			{args: []string{"list", "--token", "tk"}, wantOut: "scraping  0      0        "},
			{args: []string{"list", "--json", "--token", "tk"}, wantOut: `"client":"2001:db8::/64"`},
			{args: []string{"delete", "192.0.2.5", "--token", "tk"}, wantOut: "unbanned 192.0.2.5"},
			{args: []string{"delete", "2001:db8::/64", "--token", "tk"}, wantOut: "unbanned 2001:db8::/64"},
			{args: []string{"delete", "192.0.2.5", "--token", "tk"}, wantErr: "404 Not Found: no active ban"},
		}},
		"token from the environment": {token: "envtok", steps: []step{
			{args: []string{"add", "198.51.100.1"}, env: "envtok", wantOut: "banned 198.51.100.1"},
			{args: []string{"list"}, env: "wrong", wantErr: "401"},
			{args: []string{"list", "--token", "envtok"}, env: "wrong", wantOut: "198.51.100.1"},
		}},
		"server without token refuses reads and writes": {steps: []step{
			{args: []string{"list"}, wantErr: "403 Forbidden: ban administration is disabled"},
			{args: []string{"add", "192.0.2.1"}, wantErr: "403 Forbidden: ban administration is disabled"},
		}},
		"usage errors": {token: "x", steps: []step{
			{args: []string{}, wantErr: "missing command", usage: true},
			{args: []string{"ban", "1.2.3.4"}, wantErr: "unknown command", usage: true},
			{args: []string{"add"}, wantErr: "add takes 1 argument", usage: true},
			{args: []string{"list", "extra"}, wantErr: "list takes 0", usage: true},
			{args: []string{"add", "1.2.3.4", "--ttl", "soon"}, usage: true, wantErr: "ttl"},
			{args: []string{"list", "--admin", "ftp://x"}, usage: true, wantErr: "--admin"},
			{args: []string{"add", "not-an-ip", "--token", "x"}, wantErr: "400"},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			url := adminServer(t, tc.token)
			for i, s := range tc.steps {
				t.Setenv(adminTokenEnv, s.env)
				var out, errOut bytes.Buffer
				err := runBans(context.Background(), append([]string{"--admin", url}, s.args...), &out, &errOut)
				if s.wantErr == "" {
					if err != nil {
						t.Fatalf("step %d %v: %v (stderr %s)", i, s.args, err, errOut.String())
					}
				} else if err == nil || !strings.Contains(err.Error(), s.wantErr) {
					t.Fatalf("step %d %v: error %v, want %q", i, s.args, err, s.wantErr)
				}
				if got := errors.Is(err, errUsage); got != s.usage {
					t.Fatalf("step %d %v: usage error %v, want %v", i, s.args, got, s.usage)
				}
				if !strings.Contains(out.String(), s.wantOut) {
					t.Fatalf("step %d %v: stdout %q, want %q", i, s.args, out.String(), s.wantOut)
				}
			}
		})
	}
}

func TestRunBansServerDown(t *testing.T) {
	// A port nobody listens on: start a server and close it.
	srv := httptest.NewServer(nil)
	dead := srv.URL
	srv.Close()
	err := runBans(context.Background(), []string{"list", "--admin", dead, "--timeout", "2s"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "admin API GET /v1/bans") {
		t.Fatalf("error %v", err)
	}
}
