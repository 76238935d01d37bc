package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a private Redis Cluster of masters only, on loopback.
type RedisCluster struct {
	// Addrs are the nodes' client addresses, the seeds a client is given.
	Addrs []string
	Nodes []*Server
}

// StartRedisCluster starts masters redis-server nodes with cluster mode
// on, joins them with `redis-cli --cluster create` (slots spread evenly,
// no replicas) and waits until every node reports cluster_state:ok. The
// nodes are stopped when the test ends. Only the tests that call it pay
// for it (about a second).
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	bin := lookBin(t, "redis-server")
	cli := lookBin(t, "redis-cli")
	rc := &RedisCluster{}
	for range masters {
		dir := t.TempDir()
		port, bus := FreePort(t), FreePort(t)
		s := &Server{t: t, dir: dir, bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
		s.args = func() []string {
			return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--save", "", "--appendonly", "no", "--protected-mode", "no",
				"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "2000"}
		}
		s.ready = func() error { return redisPing(s.Addr) }
		s.Start()
		t.Cleanup(s.Stop)
		rc.Nodes = append(rc.Nodes, s)
		rc.Addrs = append(rc.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, rc.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "redis cluster state ok", func(ctx context.Context) error {
		for _, a := range rc.Addrs {
			info, err := clusterInfo(ctx, a)
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)) {
				return fmt.Errorf("%s: %s", a, firstLine(info, "cluster_state"))
			}
		}
		return nil
	})
	return rc
}

func clusterInfo(ctx context.Context, addr string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	return c.ClusterInfo(ctx).Result()
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// RedisSentinel is a private master, one replica and three Sentinels
// watching them (quorum 2), on loopback.
type RedisSentinel struct {
	MasterName string
	// Sentinels are the Sentinels' addresses, what a client is given.
	Sentinels []string
	// Master and Replica are the servers as started; after a failover
	// Replica is the master.
	Master, Replica *Server
	sentinels       []*Server
}

// DownAfter is how long the Sentinels of StartRedisSentinel wait before
// they call a silent master down.
const DownAfter = time.Second

// StartRedisSentinel starts a master, a replica of it and three Sentinels
// (`redis-server sentinel.conf --sentinel`) that call the master down
// after DownAfter, and waits until the replica is in sync and every
// Sentinel knows the replica and the other two Sentinels (about 2–4 s:
// they discover each other through hello messages). Stopped when the test
// ends.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	bin := lookBin(t, "redis-server")
	rs := &RedisSentinel{MasterName: "smartlayer"}
	node := func(extra ...string) *Server {
		dir := t.TempDir()
		port := FreePort(t)
		s := &Server{t: t, dir: dir, bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
		s.args = func() []string {
			return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--save", "", "--appendonly", "no", "--protected-mode", "no"}, extra...)
		}
		s.ready = func() error { return redisPing(s.Addr) }
		s.Start()
		t.Cleanup(s.Stop)
		return s
	}
	rs.Master = node()
	host, mport, _ := strings.Cut(rs.Master.Addr, ":")
	rs.Replica = node("--replicaof", host, mport)
	waitUntil(t, 30*time.Second, "replica in sync", func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: rs.Replica.Addr, MaxRetries: -1})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica: %s", firstLine(info, "master_link_status"))
		}
		return nil
	})
	for range 3 {
		dir := t.TempDir()
		port := FreePort(t)
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
dir %s
sentinel monitor %s %s %s 2
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, dir, rs.MasterName, host, mport, rs.MasterName, DownAfter.Milliseconds(), rs.MasterName, rs.MasterName)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		s := &Server{t: t, dir: dir, bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
		s.args = func() []string { return []string{conf, "--sentinel"} }
		s.ready = func() error { return redisPing(s.Addr) }
		s.Start()
		t.Cleanup(s.Stop)
		rs.sentinels = append(rs.sentinels, s)
		rs.Sentinels = append(rs.Sentinels, s.Addr)
	}
	waitUntil(t, 30*time.Second, "sentinels know the replica and each other", func(ctx context.Context) error {
		for _, a := range rs.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
			reps, err1 := c.Replicas(ctx, rs.MasterName).Result()
			sents, err2 := c.Sentinels(ctx, rs.MasterName).Result()
			c.Close()
			if err1 != nil || err2 != nil {
				return fmt.Errorf("%s: %v %v", a, err1, err2)
			}
			if len(reps) != 1 || len(sents) != 2 {
				return fmt.Errorf("%s knows %d replicas and %d other sentinels", a, len(reps), len(sents))
			}
		}
		return nil
	})
	return rs
}

// MasterAddr asks the first Sentinel that answers which address is the
// master now.
func (rs *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, a := range rs.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		hp, err := c.GetMasterAddrByName(ctx, rs.MasterName).Result()
		c.Close()
		if err == nil && len(hp) == 2 {
			return hp[0] + ":" + hp[1], nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel named the master: %v", last)
}

// WaitReplicated waits until the replica has every write the master has
// taken so far (its acknowledged offset reaches the master's), so a
// failover after it loses nothing.
func (rs *RedisSentinel) WaitReplicated(t testing.TB) {
	t.Helper()
	waitUntil(t, 10*time.Second, "replica caught up", func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: rs.Master.Addr, MaxRetries: -1})
		defer c.Close()
		n, err := c.Do(ctx, "WAIT", 1, 1000).Int64()
		if err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("WAIT: %d replicas acknowledged", n)
		}
		return nil
	})
}

// waitUntil polls f (each call with a 2 s context) until it succeeds, or
// fails the test after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, f func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
