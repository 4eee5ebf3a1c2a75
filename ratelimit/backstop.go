package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Backstop is the Limiter of requests that must stay limited whatever the
// shared limiter does while Redis is down: pages anyone may open that cost
// keygate work (a client metadata document to fetch, a registration to
// store) or that guard a secret (an invitation link). In ModeClosed the
// Fallback answers every request with an error while Redis is down;
// refusing these requests then would take them down with Redis (invitees
// locked out, MCP clients unable to sign in), and serving them unlimited
// would hand out that work without bound. So while the shared limiter
// fails, a Backstop counts them in a limiter of this process instead:
// limited on this instance alone, never unlimited.
//
// Over a Fallback, the memory limiter should be the Fallback in ModeLocal
// (WithMode): it counts in the limiter the Fallback mirrors every request
// Redis allowed into (see Seeder), so an address's window goes on where
// Redis left it rather than starting afresh when Redis goes down, and it
// gives Redis the outage's counts when Redis answers again.
//
// A Backstop logs the outage as its requests meet it: a warning when the
// shared limiter starts failing, one line at info when it answers again
// (with the outage's length), and only debug lines for the requests in
// between, so an outage does not log at every request.
type Backstop struct {
	shared, memory Limiter
	what           string
	logger         *slog.Logger
	now            func() time.Time

	mu    sync.Mutex
	down  bool
	since time.Time
}

// BackstopOptions configures a Backstop.
type BackstopOptions struct {
	// What names the requests limited, for the log lines: "invitation
	// pages".
	What string
	// Logger gets the outage's lines; nil: slog.Default().
	Logger *slog.Logger
	// Now tells the time, for the outage's length; nil: time.Now.
	Now func() time.Time
}

var _ Limiter = (*Backstop)(nil)

// NewBackstop returns a Limiter that asks shared and, while shared fails,
// memory.
func NewBackstop(shared, memory Limiter, opts BackstopOptions) *Backstop {
	b := &Backstop{shared: shared, memory: memory, what: opts.What, logger: opts.Logger, now: opts.Now}
	if b.logger == nil {
		b.logger = slog.Default()
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b
}

// Allow implements Limiter.
func (b *Backstop) Allow(ctx context.Context, key string, limit int, period time.Duration) (Result, error) {
	res, err := b.shared.Allow(ctx, key, limit, period)
	if err != nil && ctx.Err() != nil {
		// The caller gave up; that says nothing about the shared limiter.
		return Result{}, err
	}
	b.observe(ctx, err)
	if err != nil {
		return b.memory.Allow(ctx, key, limit, period)
	}
	return res, nil
}

// observe takes the shared limiter's answer to one request (err nil: it
// answered) and logs where an outage begins and ends.
func (b *Backstop) observe(ctx context.Context, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil && !b.down:
		b.down, b.since = true, b.now()
		b.logger.WarnContext(ctx, "rate limiter unavailable for "+b.what+"; limiting them in memory on this instance until it answers", "error", err)
	case err != nil:
		b.logger.DebugContext(ctx, "rate limiter still unavailable for "+b.what+"; limiting them in memory on this instance", "error", err)
	case b.down:
		b.down = false
		b.logger.InfoContext(ctx, "rate limiter answers again for "+b.what, "outage", b.now().Sub(b.since).Round(time.Millisecond).String())
	}
}
