package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisCPU is the CPU time (user + system) the Redis server at addr has
// used so far, from INFO cpu. Benchmarks report its difference per
// operation: what a script costs the server does not show in the client's
// ns/op, and on a shared machine CPU time is steadier than wall time.
func RedisCPU(t testing.TB, addr string) time.Duration {
	t.Helper()
	d, err := redisCPU(addr)
	if err != nil {
		t.Fatalf("redis INFO cpu at %s: %v", addr, err)
	}
	return d
}

func redisCPU(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO cpu\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("unexpected reply %q", head)
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		return 0, fmt.Errorf("reply length %q: %w", head, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	var total float64
	found := 0
	for line := range strings.Lines(string(body)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", k, v, err)
		}
		total += f
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("INFO cpu lacks used_cpu_sys/used_cpu_user: %q", body)
	}
	return time.Duration(total * float64(time.Second)), nil
}
