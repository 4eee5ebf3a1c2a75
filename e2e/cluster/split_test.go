package cluster_test

import (
	"net"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// TestRedisOutageInSharedSplitMode kills the Redis that three instances
// share a limit of 50 per minute per token in, mid-load, then starts it
// again empty. In shared-split mode the instances together stay within the
// limit through the outage, where local mode would let each instance allow
// the whole limit, and after it: the window comes back into Redis.
func TestRedisOutageInSharedSplitMode(t *testing.T) {
	redisServer := startOwnRedis(t)
	c := newCluster(t)
	c.start(3, settings{ttl: "30s", staleIfError: "5m", flushInterval: "10s",
		redisURL: "redis://" + redisServer.addr + "/0", onRedisDown: "shared-split"}, "")
	// Every instance beats at start; a beat later each has counted all three.
	time.Sleep(redislimit.DefaultHeartbeat + 500*time.Millisecond)
	_, secret := c.token(c.instances[0])
	// quiet is used before the outage only: its window must come back from
	// the instances' mirrors although no instance limited it locally.
	_, quiet := c.token(c.instances[0])

	sendWith := func(secret string, n int) int {
		var mu sync.Mutex
		var wg sync.WaitGroup
		allowed := 0
		for i := range n {
			in := c.instances[i%len(c.instances)]
			wg.Go(func() {
				a := in.get("/api/v1/limited", secret)
				if a.status != http.StatusOK && (a.status != http.StatusTooManyRequests || a.body != bodyRateLimited) {
					t.Errorf("%s answered %d %s", in.name, a.status, a.body)
				}
				if a.status == http.StatusOK {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return allowed
	}
	send := func(n int) int { return sendWith(secret, n) }

	before := send(15)
	if got := sendWith(quiet, 30); got != 30 {
		t.Fatalf("the quiet token: %d of 30 allowed with Redis up", got)
	}
	redisServer.kill()
	during := send(150)
	redisServer.start()
	// The first request after a probe interval finds Redis back, and each
	// instance seeds it with its window; then the window is what it was.
	deadline := time.Now().Add(10 * time.Second)
	after := 0
	for time.Now().Before(deadline) {
		after += send(6)
		time.Sleep(300 * time.Millisecond)
	}
	total := before + during + after
	t.Logf("limit %d/min over 3 instances in shared-split mode: %d allowed with Redis up, %d while it was down, %d after it came back empty: %d in one window (%.2f× the limit)",
		limitPerMinute, before, during, after, total, float64(total)/limitPerMinute)
	if before != 15 {
		t.Errorf("with Redis up %d of 15 were allowed", before)
	}
	if float64(before+during) > 1.1*limitPerMinute {
		t.Errorf("%d allowed in one window of a %d limit through the outage: over 1.1×", before+during, limitPerMinute)
	}
	// After Redis comes back empty, each instance seeds it with its window
	// and, for a grace after, holds requests to its share as well, until
	// the others are back and have seeded theirs.
	if float64(total) > 1.1*limitPerMinute {
		t.Errorf("%d allowed in the window spanning Redis's return, empty: over 1.1× the limit of %d", total, limitPerMinute)
	}
	quietAfter := sendWith(quiet, 60)
	t.Logf("the token used only before the outage: 30 allowed then, %d more after Redis came back empty", quietAfter)
	if float64(30+quietAfter) > 1.1*limitPerMinute {
		t.Errorf("the token used only before the outage got %d more after Redis came back empty: %d in one window", quietAfter, 30+quietAfter)
	}
	if during == 0 {
		t.Error("nothing was allowed while Redis was down: shared-split should limit, not refuse")
	}
}

// TestSplitShareFollowsInstancesInTheDatabase: while Redis is down, the
// instances are counted in the database. Three instances share a limit
// of 50 per minute (two in this process, one a keygate process); Redis
// dies, then the process is killed with SIGKILL: once its heartbeat row
// expires, the others' share grows from 16 to 25. A new process started
// during the outage counts at once, and the share shrinks back.
func TestSplitShareFollowsInstancesInTheDatabase(t *testing.T) {
	redisServer := startOwnRedis(t)
	c := newCluster(t)
	s := settings{ttl: "30s", staleIfError: "5m", flushInterval: "10s",
		redisURL: "redis://" + redisServer.addr + "/0", onRedisDown: "shared-split"}
	c.start(2, s, "")
	bin := buildKeygate(t)
	process := func(name string) *exec.Cmd {
		apiAddr := freeAddr(t)
		cmd := exec.Command(bin, "serve", "--config", c.configFile(s, "", c.run+"-"+name, freeAddr(t), apiAddr))
		cmd.Stderr = t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		up := &instance{name: name, base: "http://" + apiAddr}
		for deadline := time.Now().Add(30 * time.Second); up.get("/api/v1/organization", "").status != http.StatusUnauthorized; {
			if time.Now().After(deadline) {
				t.Fatalf("keygate process %s did not answer within 30s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return cmd
	}
	dying := process("p1")
	// A beat later every instance has counted all three.
	time.Sleep(redislimit.DefaultHeartbeat + 500*time.Millisecond)

	in := c.instances[0]
	// share sends 40 requests with a new token to one instance and counts
	// those allowed: that instance's share of the limit.
	share := func() int {
		_, secret := c.token(in)
		allowed := 0
		for range 40 {
			if in.get("/api/v1/limited", secret).status == http.StatusOK {
				allowed++
			}
		}
		return allowed
	}
	waitShare := func(want int, what string) {
		t.Helper()
		began := time.Now()
		for got := share(); got != want; got = share() {
			if time.Since(began) > 30*time.Second {
				t.Fatalf("%s: the share is still %d after 30s, want %d", what, got, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("%s: share %d of %d after %s", what, want, limitPerMinute, time.Since(began).Round(100*time.Millisecond))
	}

	redisServer.kill()
	if got := share(); got != limitPerMinute/3 {
		t.Fatalf("three instances, Redis down: share %d, want %d", got, limitPerMinute/3)
	}
	dying.Process.Kill() // SIGKILL: no withdrawal, the row must expire
	dying.Wait()
	waitShare(limitPerMinute/2, "an instance killed during the outage")
	process("p2")
	waitShare(limitPerMinute/3, "an instance started during the outage")
}

// ownRedis is a redis-server the test can kill and start again on the same
// port, empty (no persistence), as a crashed Redis comes back.
type ownRedis struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	testenv.RedisURL(t) // the Redis suites' skip-or-fail rule
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &ownRedis{t: t, addr: addr}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *ownRedis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp", r.addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not start", r.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *ownRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}
