// Package e2e runs smartlayer end to end: the authz binary with a real
// Redis and ClickHouse, driven by envoysim playing Envoy, then the reporter
// on what landed in ClickHouse.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/smartlayer/smartlayer/internal/testenv"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds cmd/authz and cmd/reporter once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "smartlayer-e2e-bin")
		if binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/", "../../cmd/...").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// authzProcess is a running authz binary.
type authzProcess struct {
	cmd                *exec.Cmd
	out                *testenv.Buffer
	authz, als, admin  string
	configFile         string
	authzConn, alsConn *grpc.ClientConn
}

// startAuthz runs authz with the YAML config and waits until /readyz says
// ready (so Redis answers).
func startAuthz(t *testing.T, config string) *authzProcess {
	t.Helper()
	dir := binaries(t)
	p := &authzProcess{
		authz: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		als:   fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		out:   &testenv.Buffer{},
	}
	cfgFile := filepath.Join(t.TempDir(), "smartlayer.yaml")
	p.configFile = cfgFile
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(filepath.Join(dir, "authz"), "serve", "--config", cfgFile,
		"--authz-addr", p.authz, "--als-addr", p.als, "--admin-addr", p.admin)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("authz output:\n%s", p.out)
		}
	})
	waitFor(t, 30*time.Second, "authz ready", func() error {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	var err error
	if p.authzConn, err = grpc.NewClient(p.authz, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	if p.alsConn, err = grpc.NewClient(p.als, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.authzConn.Close(); p.alsConn.Close() })
	return p
}

// waitFor polls f until it succeeds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
