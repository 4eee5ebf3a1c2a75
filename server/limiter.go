package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/ratelimit"
	"github.com/keygate/keygate/ratelimit/redislimit"
)

// limiter is the configured rate limiter with what it needs closed.
type limiter struct {
	limiter  ratelimit.Limiter
	memory   *ratelimit.Memory
	redis    redis.UniversalClient
	fallback *ratelimit.Fallback
}

func newLimiter(cfg config.RateLimiter, reg prometheus.Registerer, logger *slog.Logger) (*limiter, error) {
	metrics, err := ratelimit.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	l := &limiter{memory: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	if cfg.Backend != config.BackendRedis {
		l.limiter = metrics.Instrument("memory", l.memory)
		return l, nil
	}
	l.redis, err = redislimit.Connect(redislimit.Connection{
		URL: cfg.RedisURL, Mode: cfg.RedisMode, Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName,
	})
	if err != nil {
		return nil, fmt.Errorf("rate_limiter: %w", err)
	}
	shared := metrics.Instrument("redis", redislimit.New(l.redis, redislimit.Options{}))
	l.fallback, err = ratelimit.NewFallback(shared, metrics.Instrument("memory", l.memory), ratelimit.FallbackOptions{
		Mode: ratelimit.Mode(cfg.OnRedisFailure), Logger: logger, OnChange: metrics.SetDegraded,
	})
	if err != nil {
		return nil, err
	}
	l.limiter = l.fallback
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.redis.Ping(ctx).Err(); err != nil {
		logger.Warn("redis for rate limits unreachable at start; the fallback mode applies until it answers",
			"mode", cfg.OnRedisFailure, "error", err)
	}
	return l, nil
}

func (l *limiter) Limiter() ratelimit.Limiter { return l.limiter }

// Status is what /readyz reports for rate limiting.
func (l *limiter) Status() string {
	switch {
	case l.fallback == nil:
		return "ok (memory)"
	case l.fallback.Degraded() && l.fallback.Mode() == ratelimit.ModeClosed:
		return "redis unreachable: refusing limited requests (closed mode)"
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
	if l.redis != nil {
		errs = append(errs, l.redis.Close())
	}
	return errors.Join(errs...)
}
