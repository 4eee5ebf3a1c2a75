package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"runtime"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/testenv"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// BenchmarkProxyLimiter is a whole request through the proxy with a
// per-token limit checked on every request (and never reached), with the
// memory limiter and with the Redis one (KEYGATE_TEST_REDIS_URL; skipped
// when unset), its decisions autopipelined (as keygate runs it) or sent
// one by one. The Redis limiter's goal is 0.8× the memory limiter's
// throughput: compare the runs' ns/op.
func BenchmarkProxyLimiter(b *testing.B) {
	f := newFixture(b)
	_, secret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	api := *f.menus
	api.TokenRateLimit = &keygate.RateLimit{Key: keygate.LimitByToken, Limit: 1 << 30, Period: time.Minute}
	for _, tc := range []struct {
		name    string
		limiter func(b *testing.B) ratelimit.Limiter
	}{
		{"memory", func(b *testing.B) ratelimit.Limiter {
			l := ratelimit.NewMemory(ratelimit.MemoryOptions{})
			b.Cleanup(func() { l.Close() })
			return l
		}},
		{"redis", func(b *testing.B) ratelimit.Limiter { return redisLimiter(b, redislimit.Options{}) }},
		{"redis-unpipelined", func(b *testing.B) ratelimit.Limiter { return redisLimiter(b, redislimit.Options{NoAutoPipeline: true}) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, err := gateway.New(gateway.Config{API: &api, Tokens: f.tokens, Limiter: tc.limiter(b), Signer: f.signer})
			if err != nil {
				b.Fatal(err)
			}
			// 32 requests in flight on two cores, as bench/run.sh's wrk.
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			benchmarkProxyTo(b, g, secret)
		})
	}
}

// redisLimiter is a Redis limiter (testenv.RedisURL) under a key prefix
// of its own, removed when b ends.
func redisLimiter(b testing.TB, opts redislimit.Options) ratelimit.Limiter {
	client, err := redislimit.Connect(redislimit.Connection{URL: testenv.RedisURL(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	var buf [6]byte
	rand.Read(buf[:])
	prefix := "keygate:bench:rl:" + hex.EncodeToString(buf[:]) + ":"
	b.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	opts.Prefix = prefix
	return redislimit.New(client, opts)
}
