package redislimit

import (
	"sync"
	"time"

	"github.com/keygate/keygate/internal/evict"
	"github.com/keygate/keygate/ratelimit"
)

// maxRefusals bounds the refusals a Limiter remembers. Past it, expired
// ones go first, then a random eighth (evict.MakeRoom): a key forgotten
// early only costs its next request a script, as without the memo.
const maxRefusals = 100_000

// refusals remembers, in this process, which keys Redis refused and until
// when, so that a client hammering a full window costs Redis one script
// per window rather than one per request.
//
// Answering those requests here gives the same answer Redis would, never
// a refusal Redis would not give, because nothing can free a window
// before the reset time Redis reported:
//
//   - a refusal is not counted, so the window Redis refused is unchanged
//     by every refusal after it, from this instance or any other;
//   - what other instances do can only add requests (decisions that
//     pass, outage counts seeded back), which free the window later, not
//     earlier;
//   - a request for the key under another limit or period is not
//     answered here (they are part of what is remembered): a plan
//     upgrade's first request reaches Redis at once.
//
// Only Redis losing the key frees the window early: an operator's FLUSHDB
// or DEL, a restart without persistence, an eviction under maxmemory, a
// failover that lost writes. So can a key asked under two periods in
// turn, which keygate never does (a rule's key names its rule; a config
// change moves it to the new period for good): Redis counts the window's
// requests as made at each change, and under the shorter period they may
// leave before the longer one's reset. Either way the refusals remembered
// still hold until their reset time, at most one period and one bucket:
// stricter than Redis for that while, never over the limit.
type refusals struct {
	bound int // most entries kept: maxRefusals, less in tests
	mu    sync.RWMutex
	m     map[refusalKey]refusal
}

// refusalKey is what a refusal answers: one key under one limit.
type refusalKey struct {
	key    string
	limit  int
	period time.Duration
}

type refusal struct {
	// until is when the window frees a request, on the Limiter's clock
	// (see Limiter.clock).
	until int64
	// resetAt is the reset time Redis reported, in microseconds of its
	// clock: what the refusals answered from here tell the client.
	resetAt int64
}

func newRefusals(bound int) *refusals {
	return &refusals{bound: bound, m: map[refusalKey]refusal{}}
}

// answer returns the refusal remembered for k if its window has not freed
// a request by now. A miss allocates nothing: it is on every Redis-limited
// request.
func (r *refusals) answer(k refusalKey, now int64) (ratelimit.Result, bool) {
	if r == nil {
		return ratelimit.Result{}, false
	}
	r.mu.RLock()
	ref, ok := r.m[k]
	r.mu.RUnlock()
	if !ok || now >= ref.until {
		return ratelimit.Result{}, false
	}
	wait := time.Duration(ref.until - now)
	return ratelimit.Result{
		Limit:      k.limit,
		ResetAt:    time.UnixMicro(ref.resetAt),
		ResetIn:    wait,
		RetryAfter: ratelimit.RetryAfter(wait),
		Remembered: true,
	}, true
}

// remember notes that Redis refused k until ref.until. An entry that has
// expired stays until it is overwritten or room is made: a lookup that
// finds it misses all the same, and takes only the read lock.
func (r *refusals) remember(k refusalKey, ref refusal, now int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[k]; !ok && len(r.m) >= r.bound {
		evict.MakeRoom(r.m, r.bound, 8, func(ref refusal) bool { return now >= ref.until })
	}
	r.m[k] = ref
}
