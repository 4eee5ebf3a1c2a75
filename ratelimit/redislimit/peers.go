package redislimit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
)

// heartbeat records this instance as alive in one sorted set (member: the
// instance, score: the Redis server's time in ms), drops members not seen
// for ARGV[2] ms, and returns how many are left and whether this instance
// was missing from the set (a Redis that restarted empty).
var heartbeat = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('ZCARD', KEYS[1]), added}
`)

// DefaultHeartbeat is how often Peers announces its instance.
const DefaultHeartbeat = 2 * time.Second

// Peers counts the keygate instances sharing a Redis, so that while Redis
// is down each can enforce its share of a limit (ratelimit.ModeSplit).
//
// Each beat announces the instance in Redis and, when a store is given, in
// the database too, and the count is the larger of those that answered:
// while Redis is down the database's count goes on (instances that die stop
// counting, new ones start), and when Redis comes back empty its set,
// filling up again over one beat, does not shrink anybody's share's
// divisor. Without a store, a count lower than the last one is believed
// only once Redis has answered for three beats since it failed or came
// back empty. When nothing answers, the last count stays.
type Peers struct {
	client   redis.Cmdable
	store    keygate.InstanceService
	key      string
	instance string
	interval time.Duration

	mu        sync.Mutex
	live      int
	member    bool      // a Redis beat has put this instance in the set
	redisDown bool      // the last Redis beat failed
	holdUntil time.Time // until then, Redis alone may not lower the count
}

// NewPeers returns Peers announcing instance (unique per process) under
// prefix+"instances" in Redis and, if store is not nil, in the database,
// every interval (0: DefaultHeartbeat). An instance missing three beats no
// longer counts.
func NewPeers(client redis.Cmdable, store keygate.InstanceService, prefix, instance string, interval time.Duration) *Peers {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	return &Peers{client: client, store: store, key: prefix + "instances", instance: instance, interval: interval, live: 1}
}

// Live returns the last count of live instances, at least 1.
func (p *Peers) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(1, p.live)
}

// expiry is how long an instance that stopped beating still counts.
func (p *Peers) expiry() time.Duration { return 3 * p.interval }

// Beat announces this instance once and updates the count. It fails when
// Redis did not answer, even if the database did.
func (p *Peers) Beat(ctx context.Context) error {
	var (
		wg                sync.WaitGroup
		redisN, storeN    int64
		added             int64
		redisErr, storeEr error
	)
	wg.Go(func() {
		var reply []int64
		reply, redisErr = heartbeat.Run(ctx, p.client, []string{p.key}, p.instance, p.expiry().Milliseconds()).Int64Slice()
		if redisErr == nil && len(reply) != 2 {
			redisErr = errors.New("redislimit: unexpected heartbeat reply")
		}
		if redisErr == nil {
			redisN, added = reply[0], reply[1]
		}
	})
	if p.store != nil {
		wg.Go(func() {
			n, err := p.store.BeatInstance(ctx, p.instance, p.expiry())
			storeN, storeEr = int64(n), err
		})
	} else {
		storeEr = errors.New("no store")
	}
	wg.Wait()

	p.mu.Lock()
	defer p.mu.Unlock()
	if redisErr != nil {
		p.redisDown = true
		if storeEr == nil {
			p.live = int(storeN)
		}
		return redisErr
	}
	now := time.Now()
	if p.redisDown || added == 1 && p.member {
		// Redis came back, or came back empty: the others have not all
		// beaten into it yet.
		p.holdUntil = now.Add(p.expiry())
	}
	p.redisDown, p.member = false, true
	switch {
	case storeEr == nil:
		p.live = int(max(redisN, storeN))
	case now.Before(p.holdUntil):
		p.live = max(p.live, int(redisN))
	default:
		p.live = int(redisN)
	}
	return nil
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
			if p.store != nil {
				p.store.WithdrawInstance(wctx, p.instance)
			}
			cancel()
			return
		case <-ticker.C:
		}
	}
}
