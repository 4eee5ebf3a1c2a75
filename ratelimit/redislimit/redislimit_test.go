package redislimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/limitertest"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/redis/go-redis/v9"
)

// redisURL returns the Redis the tests use. Without one they skip, except
// in CI, which must never skip silently.
func redisURL(t testing.TB) string {
	url := os.Getenv("KEYGATE_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KEYGATE_TEST_REDIS_URL is not set")
		}
		t.Skip("KEYGATE_TEST_REDIS_URL is not set")
	}
	return url
}

func newClient(t testing.TB) *redis.Client {
	opts, err := redis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at KEYGATE_TEST_REDIS_URL: %v", err)
	}
	return client
}

// uniquePrefix gives a test keys no other test (or run) shares, and
// deletes them afterwards.
func uniquePrefix(t testing.TB, client *redis.Client) string {
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "keygate:test:rl:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { deleteKeys(client, prefix+"*") })
	return prefix
}

func deleteKeys(client *redis.Client, pattern string) {
	ctx := context.Background()
	iter := client.Scan(ctx, 0, pattern, 100).Iterator()
	for iter.Next(ctx) {
		client.Del(ctx, iter.Val())
	}
}

func TestRedisContract(t *testing.T) {
	client := newClient(t)
	limitertest.Run(t, limitertest.Backend{
		New: func(t *testing.T) (ratelimit.Limiter, limitertest.Clock) {
			return redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(t, client)}), limitertest.RealClock{}
		},
		Period:    time.Second,
		Tolerance: 100 * time.Millisecond,
	})
}

func TestRedisStoresOnlyAllowedRequestsAndExpires(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	key := "keygate-test:" + rand.Text()
	t.Cleanup(func() { client.Del(ctx, redislimit.DefaultPrefix+key) })
	l := redislimit.New(client, redislimit.Options{})
	for range 10 {
		if _, err := l.Allow(ctx, key, 3, 90*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	stored := redislimit.DefaultPrefix + key
	if n := client.ZCard(ctx, stored).Val(); n != 3 {
		t.Fatalf("%s holds %d requests, want the 3 allowed", stored, n)
	}
	if ttl := client.PTTL(ctx, stored).Val(); ttl <= 85*time.Second || ttl > 90*time.Second {
		t.Fatalf("%s expires in %s, want just under the 90s period", stored, ttl)
	}
}

// TestThreeInstancesShareOneLimit runs three limiters with their own
// connections, as three keygate instances would, against one key.
func TestThreeInstancesShareOneLimit(t *testing.T) {
	const limit, instances, workers, each = 100, 3, 20, 10
	prefix := uniquePrefix(t, newClient(t))
	var limiters []*redislimit.Limiter
	for range instances {
		limiters = append(limiters, redislimit.New(newClient(t), redislimit.Options{Prefix: prefix}))
	}
	var allowed, attempts, failed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range workers {
			wg.Go(func() {
				for range each {
					attempts.Add(1)
					res, err := l.Allow(context.Background(), "org:shared", limit, time.Minute)
					switch {
					case err != nil:
						failed.Add(1)
					case res.Allowed:
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	t.Logf("three instances, limit %d per minute: allowed %d of %d, overshoot %d", limit, allowed.Load(), attempts.Load(), allowed.Load()-limit)
	if failed.Load() > 0 || allowed.Load() != limit {
		t.Fatalf("allowed %d (%d errors), want exactly %d", allowed.Load(), failed.Load(), limit)
	}
}

// BenchmarkRedisAllowed measures one key whose requests all pass.
func BenchmarkRedisAllowed(b *testing.B) {
	client := newClient(b)
	l := redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(b, client)})
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "tok:busy", 10_000_000, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisRefused measures a client hammering a full window.
func BenchmarkRedisRefused(b *testing.B) {
	client := newClient(b)
	l := redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(b, client)})
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "tok:busy", 60, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisManyKeysParallel measures throughput over one client's
// connection pool with eight requests per CPU in flight.
func BenchmarkRedisManyKeysParallel(b *testing.B) {
	client := newClient(b)
	l := redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(b, client)})
	ctx := context.Background()
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "ip:192.0.2." + strconv.Itoa(i)
	}
	var next atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Allow(ctx, keys[next.Add(1)%int64(len(keys))], 100, time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// redisServer is a redis-server this test starts and may kill.
type redisServer struct {
	t    *testing.T
	port string
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T) *redisServer {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	s := &redisServer{t: t, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + s.port }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", s.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}
