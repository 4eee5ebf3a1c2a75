package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// limiter is the configured rate limiter with what it needs closed.
type limiter struct {
	limiter    ratelimit.Limiter
	memory     *ratelimit.Memory
	local      ratelimit.Limiter // memory, counted in the metrics
	inMemory   ratelimit.Limiter // see Memory
	redis      redis.UniversalClient
	fallback   *ratelimit.Fallback
	stopPeers  context.CancelFunc
	peersEnded chan struct{}
}

// newLimiter builds the configured limiter. With Redis, instances are
// counted for shared-split mode in Redis and, when split is set (some API
// uses that mode), in the store too, which keeps counting them while Redis
// is down.
func newLimiter(cfg config.RateLimiter, store keygate.InstanceService, split bool, reg prometheus.Registerer, logger *slog.Logger) (*limiter, error) {
	metrics, err := ratelimit.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	l := &limiter{memory: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	l.local = metrics.Instrument("memory", l.memory)
	if cfg.Backend != config.BackendRedis {
		l.limiter, l.inMemory = l.local, l.local
		return l, nil
	}
	l.redis, err = redislimit.Connect(redislimit.Connection{
		URL: cfg.RedisURL, Mode: cfg.RedisMode, Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName,
		Timeout: cfg.RedisTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("rate_limiter: %w", err)
	}
	redisLimiter := redislimit.New(l.redis, redislimit.Options{})
	if !split {
		store = nil
	}
	peers := redislimit.NewPeers(l.redis, store, "", instanceID(), 0)
	l.fallback, err = ratelimit.NewFallback(metrics.Instrument("redis", redisLimiter), l.local,
		ratelimit.FallbackOptions{
			Mode: ratelimit.Mode(cfg.OnRedisFailure), Logger: logger, OnChange: metrics.SetDegraded,
			Peers: peers.Live,
		})
	if err != nil {
		return nil, err
	}
	l.limiter = l.fallback
	if l.inMemory, err = l.fallback.WithMode(ratelimit.ModeLocal); err != nil {
		return nil, err
	}
	var peersCtx context.Context
	peersCtx, l.stopPeers = context.WithCancel(context.Background())
	l.peersEnded = make(chan struct{})
	go func() {
		defer close(l.peersEnded)
		peers.Run(peersCtx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.redis.Ping(ctx).Err(); err != nil {
		logger.Warn("redis for rate limits unreachable at start; the fallback mode applies until it answers",
			"mode", cfg.OnRedisFailure, "error", err)
	}
	return l, nil
}

func (l *limiter) Limiter() ratelimit.Limiter { return l.limiter }

// Memory limits in this process while Redis is down, whatever the mode,
// for callers that must stay limited then (ratelimit.Backstop): the Redis
// fallback in the local mode, which counts in the memory limiter it
// mirrors Redis's decisions into and, when Redis answers again, gives it
// the outage's counts; without Redis, that memory limiter itself.
func (l *limiter) Memory() ratelimit.Limiter { return l.inMemory }

// For returns the limiter of an API whose limits apply mode while Redis is
// down ("" for rate_limiter.on_redis_failure).
func (l *limiter) For(mode string) (ratelimit.Limiter, error) {
	if mode == "" || l.fallback == nil {
		return l.limiter, nil
	}
	return l.fallback.WithMode(ratelimit.Mode(mode))
}

// instanceID names this process among the instances sharing a Redis.
func instanceID() string {
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Status is what /readyz reports for rate limiting.
func (l *limiter) Status() string {
	switch {
	case l.fallback == nil:
		return "ok (memory)"
	case l.fallback.Degraded() && l.fallback.Mode() == ratelimit.ModeClosed:
		return "redis unreachable: refusing limited requests (closed mode)"
	case l.fallback.Degraded() && l.fallback.Mode() == ratelimit.ModeSplit:
		return "redis unreachable: each instance limits to its share in memory (shared-split mode)"
	case l.fallback.Degraded():
		return "redis unreachable: using the in-memory limiter (local mode)"
	}
	return "ok (redis)"
}

func (l *limiter) Close() error {
	var errs []error
	if l.memory != nil {
		errs = append(errs, l.memory.Close())
	}
	if l.fallback != nil {
		errs = append(errs, l.fallback.Close())
	}
	if l.stopPeers != nil {
		l.stopPeers() // withdraws this instance from the count
		<-l.peersEnded
	}
	if l.redis != nil {
		errs = append(errs, l.redis.Close())
	}
	return errors.Join(errs...)
}
