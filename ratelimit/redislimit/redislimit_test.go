package redislimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/limitertest"
	"github.com/keygate/keygate/ratelimit/redislimit"
	"github.com/redis/go-redis/v9"
)

func newClient(t testing.TB) *redis.Client {
	opts, err := redis.ParseURL(testenv.RedisURL(t))
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
		NewAt: func(t *testing.T, now func() time.Time) ratelimit.Limiter {
			return redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(t, client), Now: now})
		},
		Period:    time.Second,
		Tolerance: 100 * time.Millisecond,
	})
}

// TestRedisKeyStaysSmallAndExpires sends a busy token's requests and checks
// what Redis holds for it: one fixed-size value whatever the limit and the
// rate, gone once every counter has left the window.
func TestRedisKeyStaysSmallAndExpires(t *testing.T) {
	client := newClient(t)
	ctx := context.Background()
	key := "keygate-test:" + rand.Text()
	stored := redislimit.DefaultPrefix + key
	t.Cleanup(func() { client.Del(ctx, stored) })
	clock := limitertest.NewFakeClock(time.Now())
	l := redislimit.New(client, redislimit.Options{Now: clock.Now})
	for i := range 5000 {
		clock.Sleep(time.Millisecond)
		if res, err := l.Allow(ctx, key, 100_000_000, 90*time.Second); err != nil || !res.Allowed {
			t.Fatalf("request %d: %+v, %v", i, res, err)
		}
	}
	usage, err := client.MemoryUsage(ctx, stored).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one key after 5000 allowed requests: MEMORY USAGE %d bytes", usage)
	if usage > 512 {
		t.Fatalf("%s takes %d bytes in Redis, want at most 512", stored, usage)
	}
	window := 90*time.Second + time.Duration(ratelimit.BucketWidth(int64(90*time.Second)))
	if ttl := client.PTTL(ctx, stored).Val(); ttl <= window-5*time.Second || ttl > window+time.Second {
		t.Fatalf("%s expires in %s, want just under %s (a period and a bucket)", stored, ttl, window)
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

// BenchmarkRedisBytesPerKey reports what Redis holds for one key (MEMORY
// USAGE) at a high limit after many requests: the same at any rate.
func BenchmarkRedisBytesPerKey(b *testing.B) {
	client := newClient(b)
	prefix := uniquePrefix(b, client)
	l := redislimit.New(client, redislimit.Options{Prefix: prefix})
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "tok:busy", 100_000_000, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	usage, err := client.MemoryUsage(ctx, prefix+"tok:busy").Result()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(usage), "bytes/key")
}

// BenchmarkRedisRefused measures a client hammering a full window, every
// refusal decided by Redis: what a refusal costs the first time (the
// refusals after it are answered by the Limiter, BenchmarkRefusedDecisions).
func BenchmarkRedisRefused(b *testing.B) {
	client := newClient(b)
	l := redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(b, client), NoRefusalMemo: true})
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Allow(ctx, "tok:busy", 60, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisManyKeysParallel measures throughput over one client with
// sixteen requests per CPU in flight, decisions autopipelined (as New
// sends them through a *redis.Client) and each on its own round trip.
func BenchmarkRedisManyKeysParallel(b *testing.B) {
	client := newClient(b)
	ctx := context.Background()
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "ip:192.0.2." + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		name        string
		unpipelined bool
	}{{"autopipelined", false}, {"unpipelined", true}} {
		b.Run(tc.name, func(b *testing.B) {
			l := redislimit.New(client, redislimit.Options{Prefix: uniquePrefix(b, client), NoAutoPipeline: tc.unpipelined})
			var next atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Allow(ctx, keys[next.Add(1)%int64(len(keys))], 100, time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// redisServer is a redis-server this test starts and may kill.
type redisServer struct {
	t    testing.TB
	port string
	cmd  *exec.Cmd
}

func startRedisServer(t testing.TB) *redisServer {
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Missing(t, "redis-server is not installed")
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
