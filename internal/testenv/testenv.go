// Package testenv gives tests the real Redis and ClickHouse that `make test`
// starts (scripts/testenv.sh), and private instances for tests that need to
// stop and restart a server.
//
// Outside CI a test whose service is missing is skipped; with CI=true it fails,
// so a broken environment never passes as green.
package testenv

import (
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// RedisAddrEnv, ClickHouseAddrEnv and ModernClickHouseAddrEnv are
	// exported by scripts/testenv.sh.
	RedisAddrEnv      = "SMARTLAYER_TEST_REDIS_ADDR"
	ClickHouseAddrEnv = "SMARTLAYER_TEST_CLICKHOUSE_ADDR"
	// ClickHouseClusterNameEnv and ClickHouseClusterAddrsEnv name the
	// 2-shard cluster scripts/testenv.sh starts and its nodes' addresses
	// (comma-separated, shard 1 first).
	ClickHouseClusterNameEnv  = "SMARTLAYER_TEST_CLICKHOUSE_CLUSTER_NAME"
	ClickHouseClusterAddrsEnv = "SMARTLAYER_TEST_CLICKHOUSE_CLUSTER_ADDRS"
	// ModernClickHouseAddrEnv is the HTTP address of chdbhttp: ClickHouse
	// 26.x as chDB (internal/testenv/chdbhttp).
	ModernClickHouseAddrEnv = "SMARTLAYER_TEST_CHDB_ADDR"
)

//go:embed clickhouse-config.xml
var clickhouseConfig string

//go:embed clickhouse-users.xml
var clickhouseUsers string

// InCI reports whether the tests run under CI, where missing services fail.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// need skips (or, in CI, fails) the test with msg.
func need(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true: run the tests through `make test`)", msg)
	}
	t.Skipf("%s; run through `make test`", msg)
}

// RedisAddr returns the shared test Redis address.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return envAddr(t, RedisAddrEnv)
}

// ClickHouseAddr returns the shared test ClickHouse native-protocol address.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	return envAddr(t, ClickHouseAddrEnv)
}

// ClickHouseCluster returns the shared test cluster's name and its nodes'
// native-protocol addresses, one per shard.
func ClickHouseCluster(t testing.TB) (name string, addrs []string) {
	t.Helper()
	name = envAddr(t, ClickHouseClusterNameEnv)
	return name, strings.Split(envAddr(t, ClickHouseClusterAddrsEnv), ",")
}

// ModernClickHouseAddr returns the HTTP address of the test's current
// ClickHouse (26.x, chDB behind internal/testenv/chdbhttp).
func ModernClickHouseAddr(t testing.TB) string {
	t.Helper()
	return envAddr(t, ModernClickHouseAddrEnv)
}

// envAddr returns the address in the environment variable name, skipping
// (or, in CI, failing) the test when it is not set.
func envAddr(t testing.TB, name string) string {
	t.Helper()
	addr := os.Getenv(name)
	if addr == "" {
		need(t, name+" is not set")
	}
	return addr
}

// Server is a private server process that a test may stop and start again on
// the same address and data directory.
type Server struct {
	Addr string

	t    testing.TB
	dir  string
	args func() []string
	bin  string
	// ready reports whether the process answers on Addr.
	ready func() error

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts the process and waits until it is ready.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, s.args()...)
	out, err := os.OpenFile(filepath.Join(s.dir, "out.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testenv: start %s: %v", s.bin, err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "out.log"))
			s.t.Fatalf("testenv: %s not ready on %s: %v\n%s", s.bin, s.Addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the process (SIGKILL: the harshest failure) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func lookBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		need(t, name+" is not installed")
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// StartRedis starts a private redis-server, stopped when the test ends.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	bin := lookBin(t, "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	s := &Server{t: t, dir: dir, bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.args = func() []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--protected-mode", "no"}
	}
	s.ready = func() error { return redisPing(s.Addr) }
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "+PONG") {
		return fmt.Errorf("unexpected reply %q", buf[:n])
	}
	return nil
}

// StartClickHouse starts a private clickhouse-server, stopped when the test
// ends. Its data survives Stop/Start.
func StartClickHouse(t testing.TB) *Server {
	t.Helper()
	bin := lookBin(t, "clickhouse-server")
	client := lookBin(t, "clickhouse-client")
	dir := t.TempDir()
	port, httpPort := FreePort(t), FreePort(t)
	conf := strings.NewReplacer("@DIR@", dir, "@TCP_PORT@", strconv.Itoa(port),
		"@HTTP_PORT@", strconv.Itoa(httpPort)).Replace(clickhouseConfig)
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(conf), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(clickhouseUsers), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s := &Server{t: t, dir: dir, bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.args = func() []string { return []string{"--config-file=" + filepath.Join(dir, "config.xml")} }
	s.ready = func() error {
		if err := dial(s.Addr); err != nil {
			return err
		}
		out, err := exec.Command(client, "--port", strconv.Itoa(port), "-q", "SELECT 1").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}
