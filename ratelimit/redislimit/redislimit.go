// Package redislimit is the ratelimit.Limiter that several keygate
// instances share: one sorted set per key in Redis, changed by one atomic
// Lua script per request.
//
// The script reads the time from the Redis server (TIME), never from the
// calling instance, so instances whose clocks disagree still share one
// exact window. A failing Redis is an error here; ratelimit.Fallback
// decides what the gateway does then. Keys are never logged.
package redislimit

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/keygate/keygate/ratelimit"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every Redis key the limiter writes.
const DefaultPrefix = "keygate:rl:"

// slidingWindow records one request in KEYS[1] if the window has room.
//
//	ARGV[1] limit, ARGV[2] period in microseconds, ARGV[3] period in
//	milliseconds (the key's expiry), ARGV[4] a random member suffix.
//
// Returns {allowed 0|1, requests in the window, server time µs, reset µs}.
//
//go:embed sliding_window.lua
var slidingWindowLua string

var slidingWindow = redis.NewScript(slidingWindowLua)

// Options configures a Limiter.
type Options struct {
	// Prefix starts every key; "" means DefaultPrefix. Instances that
	// share limits must use the same prefix.
	Prefix string
}

// Limiter is a ratelimit.Limiter backed by Redis.
type Limiter struct {
	client redis.Scripter
	prefix string
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New returns a Limiter using client: a *redis.Client, *redis.ClusterClient
// (each key is one slot) or any other redis.Scripter.
func New(client redis.Scripter, opts Options) *Limiter {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Limiter{client: client, prefix: prefix}
}

// Allow implements ratelimit.Limiter.
func (l *Limiter) Allow(ctx context.Context, key string, limit int, period time.Duration) (ratelimit.Result, error) {
	if err := ratelimit.Validate(limit, period); err != nil {
		return ratelimit.Result{}, err
	}
	// Members must be unique or two requests in the same microsecond would
	// be stored as one and the window would undercount.
	suffix := strconv.FormatUint(rand.Uint64(), 36)
	periodMs := (period + time.Millisecond - 1) / time.Millisecond
	reply, err := slidingWindow.Run(ctx, l.client, []string{l.prefix + key},
		limit, period.Microseconds(), int64(periodMs), suffix).Int64Slice()
	if err != nil {
		return ratelimit.Result{}, fmt.Errorf("redislimit: %w", err)
	}
	if len(reply) != 4 {
		return ratelimit.Result{}, fmt.Errorf("redislimit: unexpected script reply %v", reply)
	}
	allowed, count, now, reset := reply[0] == 1, int(reply[1]), reply[2], reply[3]

	res := ratelimit.Result{Allowed: allowed, Limit: limit, ResetAt: time.UnixMicro(reset)}
	if allowed {
		res.Remaining = limit - count
	} else {
		res.RetryAfter = ratelimit.RetryAfter(time.Duration(reset-now) * time.Microsecond)
	}
	return res, nil
}
