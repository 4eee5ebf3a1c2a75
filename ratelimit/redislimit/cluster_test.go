package redislimit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/limitertest"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// redisCluster is a Redis Cluster of three masters, each with one replica,
// that a test started for itself from the redis-server on this machine.
type redisCluster struct {
	t     *testing.T
	addrs []string
	nodes map[string]*exec.Cmd // by host:port
}

// startRedisCluster starts six redis-server processes with cluster mode on
// and joins them with redis-cli --cluster create. It skips when
// redis-server is not installed, except under CI, where it fails.
func startRedisCluster(t *testing.T) *redisCluster {
	t.Helper()
	testenv.RedisURL(t) // the Redis suites' skip-or-fail rule
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" is not installed")
		}
	}
	dir := t.TempDir()
	c := &redisCluster{t: t, nodes: map[string]*exec.Cmd{}}
	var addrs []string
	for range 6 {
		port := freeLowPort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"),
			"--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no", "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		c.nodes[addr] = cmd
		addrs = append(addrs, addr)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, addr := range addrs {
		waitPing(t, addr)
	}
	create := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "1", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.addrs = addrs
	c.waitHealthy(addrs[0], 3)
	return c
}

// client returns a cluster client made by redislimit.Connect, as keygate
// makes it from rate_limiter settings listing every node as a seed.
func (c *redisCluster) client() redis.UniversalClient {
	c.t.Helper()
	client, err := redislimit.Connect(redislimit.Connection{
		URL: "redis://" + c.addrs[0], Mode: redislimit.ModeCluster, Addrs: c.addrs,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { client.Close() })
	return client
}

// killMasterOf kills the master that holds key's slot, as a crash would,
// and returns its address.
func (c *redisCluster) killMasterOf(client redis.UniversalClient, key string) string {
	c.t.Helper()
	addr, _ := c.nodesOf(client, key)
	cmd := c.nodes[addr]
	if cmd == nil {
		c.t.Fatalf("%s serves %q, but this test did not start it", addr, key)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return addr
}

// waitHealthy waits until the cluster, seen from addr, serves every slot
// with the given number of masters.
func (c *redisCluster) waitHealthy(addr string, masters int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(addr), "cluster", "info").Output()
		if strings.Contains(string(info), "cluster_state:ok") &&
			strings.Contains(string(info), fmt.Sprintf("cluster_size:%d", masters)) && c.replicasInSync() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the Redis Cluster did not become healthy in 30s:\n%s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replicasInSync reports whether every replica's link to its master is up:
// a replica that never synced cannot be promoted.
func (c *redisCluster) replicasInSync() bool {
	replicas := 0
	for _, addr := range c.addrs {
		info, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(addr), "info", "replication").Output()
		if strings.Contains(string(info), "role:slave") {
			if !strings.Contains(string(info), "master_link_status:up") {
				return false
			}
			replicas++
		}
	}
	return replicas == len(c.addrs)/2
}

// TestRedisClusterContract runs the limiter contract on a real three-master
// Redis Cluster.
func TestRedisClusterContract(t *testing.T) {
	runContractOnRealClock(t, startRedisCluster(t).client())
}

// runContractOnRealClock runs the limiter contract through client on the
// wall clock (a multi-node Redis cannot share a test's fake one), each
// limiter under a prefix of its own.
func runContractOnRealClock(t *testing.T, client redis.UniversalClient) {
	limitertest.Run(t, limitertest.Backend{
		New: func(t *testing.T) (ratelimit.Limiter, limitertest.Clock) {
			return redislimit.New(client, redislimit.Options{Prefix: clusterPrefix()}), limitertest.RealClock{}
		},
		NewAt: func(t *testing.T, now func() time.Time) ratelimit.Limiter {
			return redislimit.New(client, redislimit.Options{Prefix: clusterPrefix(), Now: now})
		},
		Period:    time.Second,
		Tolerance: 100 * time.Millisecond,
	})
}

// TestRedisClusterMasterFailover kills the master holding a busy key while
// requests keep coming: decisions fail while no node serves the slot (the
// gateway's fallback mode covers that), and once the replica is promoted the
// same client limits again, with no restart.
func TestRedisClusterMasterFailover(t *testing.T) {
	cluster := startRedisCluster(t)
	client := cluster.client()
	prefix := clusterPrefix()
	limiter := redislimit.New(client, redislimit.Options{Prefix: prefix})
	ctx := context.Background()
	const limit, period = 1_000_000, time.Minute

	load := startBusyKey(t, limiter, "busy", limit, period)
	// Every request allowed so far reaches the replica before the kill.
	before := load.allowed.Load()
	cluster.waitReplicated(client, prefix+"busy")
	killed := cluster.killMasterOf(client, prefix+"busy")
	killedAt := time.Now()

	// Once the replica is promoted, decisions succeed again.
	var recovered time.Duration
	for {
		n := load.allowed.Load()
		time.Sleep(200 * time.Millisecond)
		if load.allowed.Load() > n+10 && time.Since(killedAt) > time.Second {
			recovered = time.Since(killedAt)
			break
		}
		if time.Since(killedAt) > 30*time.Second {
			for _, a := range cluster.addrs {
				if a != killed {
					nodes, _ := exec.Command("redis-cli", "-p", portOf(a), "cluster", "nodes").CombinedOutput()
					t.Logf("cluster nodes from %s:\n%s", a, nodes)
					break
				}
			}
			_, err := limiter.Allow(ctx, "busy", limit, period)
			t.Logf("last error: %v", err)
			t.Fatalf("no decision succeeded within 30s of killing master %s (%d failed)", killed, load.failed.Load())
		}
	}
	load.halt()

	// The key's window survived on the promoted replica: what was counted
	// before the kill (less what had not reached the replica) is still
	// there. (Retried: on a loaded machine one call may still time out
	// while the client settles on the new topology.)
	res := allowEventually(t, limiter, "busy", limit, period)
	counted := int64(limit - res.Remaining)
	if counted < before {
		t.Errorf("after the failover the window holds %d requests, but %d were allowed before the kill and replicated", counted, before)
	}
	// And limits hold on the promoted master.
	for i := range 5 {
		if res := allowEventually(t, limiter, "after", 3, period); res.Allowed != (i < 3) {
			t.Fatalf("request %d on the promoted master: allowed %v", i+1, res.Allowed)
		}
	}
	t.Logf("master %s killed: decisions failed for %s (%d failures), %d allowed before the kill, %d still counted after",
		killed, recovered.Round(10*time.Millisecond), load.failed.Load(), before, counted)
}

// allowEventually retries a decision that fails for up to 5 s.
func allowEventually(t *testing.T, l ratelimit.Limiter, key string, limit int, period time.Duration) ratelimit.Result {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := l.Allow(context.Background(), key, limit, period)
		if err == nil {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("Allow(%q) kept failing: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReplicated waits until the replicas of the master holding key have
// applied every write that master took so far, whatever the load.
//
// WAIT would not do: it waits only for the writes of the connection that
// sends it, and returns at its timeout without an error when the
// replicas lag, as they do on a loaded machine. The master's replication
// offset, read after the requests counted so far were answered, covers
// their writes; each replica reports how far it has applied the stream.
func (c *redisCluster) waitReplicated(client redis.UniversalClient, key string) {
	c.t.Helper()
	master, replicas := c.nodesOf(client, key)
	target := replicationOffset(c.t, master, "master_repl_offset")
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range replicas {
		for replicationOffset(c.t, r, "slave_repl_offset") < target {
			if time.Now().After(deadline) {
				c.t.Fatalf("replica %s did not reach offset %d of master %s within 30s", r, target, master)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// nodesOf returns the addresses of the master serving key's slot and of
// its replicas.
func (c *redisCluster) nodesOf(client redis.UniversalClient, key string) (master string, replicas []string) {
	c.t.Helper()
	ctx := context.Background()
	slot, err := client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	slots, err := client.ClusterSlots(ctx).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			for _, n := range s.Nodes[1:] {
				replicas = append(replicas, n.Addr)
			}
			return s.Nodes[0].Addr, replicas
		}
	}
	c.t.Fatalf("no node serves slot %d", slot)
	return "", nil
}

// replicationOffset reads one offset field of INFO replication from the
// node at addr.
func replicationOffset(t *testing.T, addr, field string) int64 {
	t.Helper()
	node := redis.NewClient(&redis.Options{Addr: addr})
	defer node.Close()
	info, err := node.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s of %s: %v", field, addr, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s in INFO replication:\n%s", addr, field, info)
	return 0
}

// clusterPrefix gives a test keys no other test shares.
func clusterPrefix() string {
	return fmt.Sprintf("keygate:test:rl:%d:", rand.Int64())
}

func waitPing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server at %s did not start", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// freeLowPort returns a free port below the ephemeral range, for servers
// that must be told their port.
func freeLowPort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 10000 + rand.IntN(10000)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			// The cluster bus listens on port+10000 too.
			if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
				l.Close()
				return port
			}
		}
	}
	t.Fatal("no free port found")
	return 0
}

// busyKey is traffic on one key through a failover: four clients asking
// the limiter without pause, counting the decisions allowed and those that
// failed (a failed one waits 10ms before the next).
type busyKey struct {
	allowed, failed atomic.Int64
	stop            chan struct{}
	wg              sync.WaitGroup
}

// startBusyKey starts the clients and returns once 100 were allowed.
func startBusyKey(t *testing.T, limiter ratelimit.Limiter, key string, limit int, period time.Duration) *busyKey {
	t.Helper()
	b := &busyKey{stop: make(chan struct{})}
	for range 4 {
		b.wg.Go(func() {
			for {
				select {
				case <-b.stop:
					return
				default:
				}
				if _, err := limiter.Allow(context.Background(), key, limit, period); err != nil {
					b.failed.Add(1)
					time.Sleep(10 * time.Millisecond)
				} else {
					b.allowed.Add(1)
				}
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); b.allowed.Load() < 100; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests allowed in 10s before the failover (%d failed)", b.allowed.Load(), b.failed.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

// halt stops the clients and waits for them.
func (b *busyKey) halt() {
	close(b.stop)
	b.wg.Wait()
}
