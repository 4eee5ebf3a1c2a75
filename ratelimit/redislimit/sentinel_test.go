package redislimit_test

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

	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// sentinelMaster is the master's name the sentinels monitor.
const sentinelMaster = "keygate-test"

// redisSentinel is a master, its replica and three sentinels that a test
// started for itself from the redis-server on this machine (run as
// `redis-server <file> --sentinel`, which is what redis-sentinel is).
type redisSentinel struct {
	t         *testing.T
	sentinels []string
	servers   map[string]*exec.Cmd // master and replica, by host:port
}

func startRedisSentinel(t *testing.T) *redisSentinel {
	t.Helper()
	testenv.RedisURL(t) // the Redis suites' skip-or-fail rule
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" is not installed")
		}
	}
	dir := t.TempDir()
	s := &redisSentinel{t: t, servers: map[string]*exec.Cmd{}}
	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command("redis-server", args...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	master, replica := freeLowPort(t), freeLowPort(t)
	for _, port := range []int{master, replica} {
		args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--dir", dir, "--dbfilename", fmt.Sprintf("dump-%d.rdb", port)}
		if port == replica {
			args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(master))
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		s.servers[addr] = start(args...)
		waitPing(t, addr)
	}
	for i := range 3 {
		port := freeLowPort(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		// Sentinels rewrite their file as they learn of replicas, other
		// sentinels and failovers.
		err := os.WriteFile(conf, []byte(fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
sentinel parallel-syncs %s 1
`, port, dir, sentinelMaster, master, sentinelMaster, sentinelMaster, sentinelMaster)), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		start(conf, "--sentinel")
		addr := "127.0.0.1:" + strconv.Itoa(port)
		waitPing(t, addr)
		s.sentinels = append(s.sentinels, addr)
	}
	s.waitReady()
	return s
}

// waitReady waits until every sentinel knows the replica (it can promote
// it) and the two other sentinels (they can agree), and the replica has
// synced.
func (s *redisSentinel) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, addr := range s.sentinels {
			out, _ := exec.Command("redis-cli", "-p", portOf(addr), "sentinel", "master", sentinelMaster).Output()
			fields := strings.Fields(string(out))
			get := func(name string) string {
				for i := 0; i+1 < len(fields); i++ {
					if fields[i] == name {
						return fields[i+1]
					}
				}
				return ""
			}
			if get("num-slaves") != "1" || get("num-other-sentinels") != "2" {
				ready = false
			}
		}
		for addr := range s.servers {
			info, _ := exec.Command("redis-cli", "-p", portOf(addr), "info", "replication").Output()
			if strings.Contains(string(info), "role:slave") && !strings.Contains(string(info), "master_link_status:up") {
				ready = false
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the sentinels did not see the replica and each other within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client returns a client made by redislimit.Connect in sentinel mode, as
// keygate makes it from rate_limiter settings.
func (s *redisSentinel) client() redis.UniversalClient {
	s.t.Helper()
	client, err := redislimit.Connect(redislimit.Connection{
		URL: "redis://127.0.0.1/0", Mode: redislimit.ModeSentinel, Addrs: s.sentinels,
		MasterName: sentinelMaster, Timeout: time.Second,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { client.Close() })
	return client
}

// master asks a sentinel which server is the master now.
func (s *redisSentinel) master() string {
	s.t.Helper()
	out, err := exec.Command("redis-cli", "-p", portOf(s.sentinels[0]), "sentinel", "get-master-addr-by-name", sentinelMaster).Output()
	if err != nil {
		s.t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		s.t.Fatalf("sentinel get-master-addr-by-name: %q", out)
	}
	return f[0] + ":" + f[1]
}

// TestRedisSentinelContract runs the limiter contract through Redis
// Sentinel: a master found by asking three sentinels.
func TestRedisSentinelContract(t *testing.T) {
	runContractOnRealClock(t, startRedisSentinel(t).client())
}

// TestRedisSentinelMasterFailover kills the master while requests keep
// coming: decisions fail until the sentinels agree it is down and promote
// the replica, then the same client follows them to it, with no restart,
// and the window's count is still there.
func TestRedisSentinelMasterFailover(t *testing.T) {
	sentinel := startRedisSentinel(t)
	client := sentinel.client()
	prefix := clusterPrefix()
	limiter := redislimit.New(client, redislimit.Options{Prefix: prefix})
	ctx := context.Background()
	const limit, period = 1_000_000, time.Minute

	load := startBusyKey(t, limiter, "busy", limit, period)
	old := sentinel.master()
	// Every request allowed so far reaches the replica before the kill.
	before := load.allowed.Load()
	if acked, err := client.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || acked != 1 {
		t.Fatalf("WAIT for the replica: %d acknowledged, %v", acked, err)
	}
	cmd := sentinel.servers[old]
	if cmd == nil {
		t.Fatalf("the master %s is not a server this test started", old)
	}
	cmd.Process.Kill()
	cmd.Wait()
	killedAt := time.Now()

	var recovered time.Duration
	for {
		n := load.allowed.Load()
		time.Sleep(200 * time.Millisecond)
		if load.allowed.Load() > n+10 && time.Since(killedAt) > time.Second {
			recovered = time.Since(killedAt)
			break
		}
		if time.Since(killedAt) > 60*time.Second {
			_, err := limiter.Allow(ctx, "busy", limit, period)
			t.Fatalf("no decision succeeded within 60s of killing master %s (%d failed; last error %v)", old, load.failed.Load(), err)
		}
	}
	load.halt()
	if now := sentinel.master(); now == old {
		t.Fatalf("decisions succeed again, but the sentinels still name %s master", old)
	}

	res := allowEventually(t, limiter, "busy", limit, period)
	counted := int64(limit - res.Remaining)
	if counted < before {
		t.Errorf("after the failover the window holds %d requests, but %d were allowed before the kill and replicated", counted, before)
	}
	for i := range 5 {
		if res := allowEventually(t, limiter, "after", 3, period); res.Allowed != (i < 3) {
			t.Fatalf("request %d on the promoted master: allowed %v", i+1, res.Allowed)
		}
	}
	t.Logf("master %s killed: decisions failed for %s (%d failures) until the sentinels promoted %s; %d allowed before the kill, %d counted after",
		old, recovered.Round(10*time.Millisecond), load.failed.Load(), sentinel.master(), before, counted)
}
