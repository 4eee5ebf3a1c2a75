// Package backoff spaces out the attempts of a loop that reconnects to
// something that failed: the step doubles from Initial up to Max, and each
// wait is jittered, so that instances that lost one server together do not
// all come back to it at the same instants.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the waiting of one reconnect loop; its zero step starts at
// Initial. It is not safe for concurrent use: each loop has its own.
type Backoff struct {
	// Initial is the first step, Max the step it doubles up to.
	Initial, Max time.Duration
	// Rand returns a number in [0, n); nil is math/rand/v2's Int64N.
	// Tests pass a fixed one.
	Rand func(n int64) int64

	step time.Duration
}

// Next returns the wait before the next attempt and doubles the step for
// the one after, up to Max. The wait is equal jitter: between half the
// step and the whole step, so loops that failed together spread out, and
// none comes back sooner than half its step.
func (b *Backoff) Next() time.Duration {
	if b.step <= 0 {
		b.step = b.Initial
	}
	step := b.step
	b.step = min(2*b.step, b.Max)
	half := step / 2
	return half + time.Duration(b.random(int64(step-half)+1))
}

// Reset starts the steps over at Initial, after an attempt that worked.
func (b *Backoff) Reset() { b.step = 0 }

// Wait sleeps for Next, and reports false, at once, if ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	return Sleep(ctx, b.Next())
}

// Sleep sleeps for d, and reports false, at once, if ctx ends first.
func Sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (b *Backoff) random(n int64) int64 {
	if b.Rand == nil {
		return rand.Int64N(n)
	}
	return b.Rand(n)
}
