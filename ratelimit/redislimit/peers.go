package redislimit

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// heartbeat records this instance as alive in one sorted set (member: the
// instance, score: the Redis server's time in ms), drops members not seen
// for ARGV[2] ms, and returns how many are left.
var heartbeat = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
`)

// DefaultHeartbeat is how often Peers announces its instance.
const DefaultHeartbeat = 2 * time.Second

// Peers counts the keygate instances sharing a Redis, so that while Redis
// is down each can enforce its share of a limit (ratelimit.ModeSplit). It
// keeps the last count it read: during an outage that is the number of
// instances alive when Redis was last reached.
type Peers struct {
	client   redis.Cmdable
	key      string
	instance string
	interval time.Duration
	live     atomic.Int64
}

// NewPeers returns Peers announcing instance (unique per process) under
// prefix+"instances" every interval (0: DefaultHeartbeat). An instance
// missing three beats no longer counts.
func NewPeers(client redis.Cmdable, prefix, instance string, interval time.Duration) *Peers {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	p := &Peers{client: client, key: prefix + "instances", instance: instance, interval: interval}
	p.live.Store(1)
	return p
}

// Live returns the last count of live instances, at least 1.
func (p *Peers) Live() int { return int(max(1, p.live.Load())) }

// Beat announces this instance once and updates the count.
func (p *Peers) Beat(ctx context.Context) error {
	n, err := heartbeat.Run(ctx, p.client, []string{p.key}, p.instance, (3 * p.interval).Milliseconds()).Int64()
	if err == nil {
		p.live.Store(n)
	}
	return err
}

// Run beats every interval until ctx ends, then withdraws this instance so
// the others' share grows at once on a graceful shutdown. Failures are the
// limiter's to report: the count just stays as it was.
func (p *Peers) Run(ctx context.Context) {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		bctx, cancel := context.WithTimeout(ctx, p.interval)
		p.Beat(bctx)
		cancel()
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			p.client.ZRem(wctx, p.key, p.instance)
			cancel()
			return
		case <-ticker.C:
		}
	}
}
