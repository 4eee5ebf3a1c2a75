// Package redislimit is the ratelimit.Limiter that several keygate
// instances share: one small string per key in Redis (the window's
// counters), changed by one atomic Lua script per request, except the
// refusals each instance remembers until their window frees (refusals.go).
//
// The script reads the time from the Redis server (TIME), never from the
// calling instance, so instances whose clocks disagree still share one
// window. A failing Redis is an error here; ratelimit.Fallback
// decides what the gateway does then. Keys are never logged.
package redislimit

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/ratelimit"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every Redis key the limiter writes.
const DefaultPrefix = "keygate:rl:"

// slidingWindow records one request in KEYS[1] if the window has room.
//
//	ARGV[1] limit, ARGV[2] bucket width in microseconds, ARGV[3] the time
//	in microseconds, or -1 for the server's clock, ARGV[4] 0 to decide, or
//	a number of requests to add regardless.
//
// Returns {allowed 0|1, requests in the window, time µs, reset µs}.
//
//go:embed sliding_window.lua
var slidingWindowLua string

var slidingWindow = redis.NewScript(slidingWindowLua)

// The arguments every decision shares, boxed once rather than per call.
var (
	slidingWindowSHA any = slidingWindow.Hash()
	slidingWindowSrc any = slidingWindowLua
	serverClock      any = int64(-1)
)

// Options configures a Limiter.
type Options struct {
	// Prefix starts every key; "" means DefaultPrefix. Instances that
	// share limits must use the same prefix.
	Prefix string
	// Now, if set, replaces the Redis server's clock: tests drive the
	// window with a fake one. Instances sharing limits leave it nil.
	Now func() time.Time
	// NoAutoPipeline sends every decision on its own instead of through
	// the client's autopipeliner (see New).
	NoAutoPipeline bool
	// NoRefusalMemo sends every decision to Redis, also those for a key
	// Redis refused until a time not yet reached (see New).
	NoRefusalMemo bool
}

// Limiter is a ratelimit.Limiter backed by Redis.
type Limiter struct {
	client redis.Scripter
	// decide runs the window script: through the client's autopipeliner
	// when it has one, so that decisions made at the same time share round
	// trips, else the client itself.
	decide redis.Scripter
	// loaded turns true once a decision has run: Redis knows the script.
	// Until then decisions go one by one, so the batch that meets an
	// empty script cache is not a batch of EVALs.
	loaded atomic.Bool
	prefix string
	now    func() time.Time
	// refused remembers refusals until their window frees a request;
	// nil with Options.NoRefusalMemo.
	refused *refusals
	origin  time.Time // of clock's monotonic readings
}

// autoPipeliner is a client that can batch the commands of concurrent
// callers (go-redis's *Client and *ClusterClient).
type autoPipeliner interface {
	AutoPipeline() (*redis.AutoPipeliner, error)
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New returns a Limiter using client: a *redis.Client, *redis.ClusterClient
// (each key is one slot) or any other redis.Scripter.
//
// With a *redis.Client or *redis.ClusterClient, decisions go through the
// client's autopipeliner: while one batch of scripts is on its way to
// Redis, the decisions that arrive queue up and leave together as the
// next batch, so a busy instance pays one write, one read and one wake-up
// of Redis per batch instead of per request; a lone decision still leaves
// at once. It is still one script, hence one round trip, per decision.
// The autopipeliner closes with the client.
//
// A refusal is remembered in this process until the window frees a
// request (the reset time Redis reported): until then the same key under
// the same limit and period is refused here, with the same answer, and
// Redis is not asked. A client hammering a full window so costs Redis one
// script per refusal window instead of one per request; refusals answered
// here are the backend's refusals for whoever counts them, marked
// Result.Remembered (Metrics counts those apart too). The
// refusals type says why that never refuses a request Redis would let
// through; at most maxRefusals are kept.
func New(client redis.Scripter, opts Options) *Limiter {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	decide := client
	if c, ok := client.(autoPipeliner); ok && !opts.NoAutoPipeline {
		if ap, err := c.AutoPipeline(); err == nil {
			decide = ap
		}
	}
	l := &Limiter{client: client, decide: decide, prefix: prefix, now: opts.Now, origin: time.Now()}
	if !opts.NoRefusalMemo {
		l.refused = newRefusals(maxRefusals)
	}
	return l
}

// Allow implements ratelimit.Limiter.
func (l *Limiter) Allow(ctx context.Context, key string, limit int, period time.Duration) (ratelimit.Result, error) {
	if err := ratelimit.Validate(limit, period); err != nil {
		return ratelimit.Result{}, err
	}
	memo := refusalKey{key: key, limit: limit, period: period}
	sent := l.clock()
	if res, ok := l.refused.answer(memo, sent); ok {
		return res, nil
	}
	reply, err := l.run(ctx, key, limit, period, 0, sent)
	if err != nil {
		return ratelimit.Result{}, err
	}
	allowed, count, now, reset := reply[0] == 1, int(reply[1]), reply[2], reply[3]

	wait := time.Duration(reset-now) * time.Microsecond
	res := ratelimit.Result{Allowed: allowed, Limit: limit, ResetAt: time.UnixMicro(reset), ResetIn: wait}
	if allowed {
		res.Remaining = limit - count
		return res, nil
	}
	res.RetryAfter = ratelimit.RetryAfter(wait)
	// Redis decided at its now, which is no earlier than sent: counting
	// the wait from sent on this instance's clock ends it no later than
	// the window frees, however far apart the two clocks are.
	l.refused.remember(memo, refusal{until: sent + int64(wait), resetAt: reset}, sent)
	return res, nil
}

// clock reads the time refusals are remembered in, in nanoseconds: this
// process's monotonic clock since New, which no step of the wall clock
// moves; with Options.Now, that clock in whole microseconds, the time the
// script is given, so that a remembered refusal ends at the microsecond
// the script's would.
func (l *Limiter) clock() int64 {
	if l.now != nil {
		return l.now().UnixMicro() * int64(time.Microsecond)
	}
	return int64(time.Since(l.origin))
}

// Seed implements ratelimit.Seeder: n requests allowed elsewhere join key's
// window now, whatever its limit.
func (l *Limiter) Seed(ctx context.Context, key string, n int, period time.Duration) error {
	if n <= 0 {
		return nil
	}
	if err := ratelimit.Validate(1, period); err != nil {
		return err
	}
	_, err := l.run(ctx, key, 1, period, n, l.clock())
	return err
}

// epoch names what Redis holds: the first caller after Redis started
// empty sets it, every later one reads it.
var epoch = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`)

// Epoch implements ratelimit.Epocher: a name for Redis's contents, kept
// under prefix+"epoch" with no expiry, which changes when Redis comes back
// without its data.
func (l *Limiter) Epoch(ctx context.Context) (string, error) {
	var b [12]byte
	rand.Read(b[:])
	e, err := epoch.Run(ctx, l.client, []string{l.prefix + "epoch"}, hex.EncodeToString(b[:])).Text()
	if err != nil {
		return "", fmt.Errorf("redislimit: %w", err)
	}
	return e, nil
}

// Ping implements ratelimit.Pinger: whether Redis answers, deciding
// nothing. In cluster mode every master must answer.
func (l *Limiter) Ping(ctx context.Context) error {
	var err error
	switch c := l.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
	case interface {
		Ping(context.Context) *redis.StatusCmd
	}:
		err = c.Ping(ctx).Err()
	default:
		err = l.client.ScriptExists(ctx, "0").Err()
	}
	if err != nil {
		return fmt.Errorf("redislimit: %w", err)
	}
	return nil
}

// processor is a client that runs any command (go-redis's *Client,
// *ClusterClient and *AutoPipeliner): the window script then goes as a
// command whose reply is read straight into integers.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// run runs the window script once for key: a decision (seed 0) or seed
// requests added. at is the clock's reading, the time the script is
// given with Options.Now.
func (l *Limiter) run(ctx context.Context, key string, limit int, period time.Duration, seed int, at int64) ([]int64, error) {
	width := ratelimit.BucketWidth(period.Microseconds())
	now := serverClock
	if l.now != nil {
		now = at / int64(time.Microsecond)
	}
	via := l.decide
	if !l.loaded.Load() {
		via = l.client
	}
	reply, err := runScript(ctx, via, l.prefix+key, limit, width, now, seed)
	if err != nil {
		return nil, fmt.Errorf("redislimit: %w", err)
	}
	l.loaded.Store(true)
	if len(reply) != 4 {
		return nil, fmt.Errorf("redislimit: unexpected script reply %v", reply)
	}
	return reply, nil
}

// runScript sends EVALSHA, and EVAL once if Redis does not know the
// script (go-redis's Script.Run does the same, through replies of any
// type).
func runScript(ctx context.Context, c redis.Scripter, key string, limit int, width int64, now any, seed int) ([]int64, error) {
	p, ok := c.(processor)
	if !ok {
		return slidingWindow.Run(ctx, c, []string{key}, limit, width, now, seed).Int64Slice()
	}
	cmd := redis.NewIntSliceCmd(ctx, "evalsha", slidingWindowSHA, "1", key, limit, width, now, seed)
	err := p.Process(ctx, cmd)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = redis.NewIntSliceCmd(ctx, "eval", slidingWindowSrc, "1", key, limit, width, now, seed)
		err = p.Process(ctx, cmd)
	}
	return cmd.Val(), err
}
