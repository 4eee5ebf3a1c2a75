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
	redis    *redis.Client
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
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("rate_limiter.redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
	// The fallback decides what a failure means, at once: no retries (-1
	// turns them off in go-redis; 0 means its default of 3).
	opts.MaxRetries, opts.DialerRetries = -1, 1
	l.redis = redis.NewClient(opts)
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
