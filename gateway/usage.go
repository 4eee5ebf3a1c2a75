package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate"
)

// UsageStore is where usage batches are written.
type UsageStore interface {
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error
	RecordUsage(ctx context.Context, batchID string, counts []keygate.UsageCount) error
}

// UsageOptions configures a Usage recorder.
type UsageOptions struct {
	// LastUsedInterval is how often last-used times are written
	// (default 10s).
	LastUsedInterval time.Duration
	// CountsInterval is how often request counts are written (default
	// 1s): what a crash can lose of them.
	CountsInterval time.Duration
	Logger         *slog.Logger
}

// Usage collects each token's last use (to the minute) and per-hour request
// counts in memory and writes them in batches, off the request path: a busy
// token costs one write per interval, not one per request. Counts are
// written often (a killed process loses at most one interval of them),
// last-used times rarely. A failed write is tried again; Close writes what
// is left.
//
// Each counts batch carries an id that the store records in the same
// transaction, so a batch that was committed although its write reported
// a failure (a timeout after the commit) is not added twice when it is
// tried again.
type Usage struct {
	store            UsageStore
	lastUsedInterval time.Duration
	countsInterval   time.Duration
	logger           *slog.Logger

	mu       sync.Mutex
	lastUsed map[string]time.Time // token id → minute
	written  map[string]time.Time // minute last written per token
	counts   map[usageKey]*keygate.UsageCount

	flushMu  sync.Mutex  // one counts write at a time
	pending  *usageBatch // a counts batch whose write failed, to be tried again as is
	failures atomic.Int64

	done    chan struct{}
	stopped sync.WaitGroup
	// loopWrites is the parent of the loops' writes; Close cancels it
	// when its own context ends, so a write waiting on a database that
	// stopped answering does not hold Close past it.
	loopWrites       context.Context
	cancelLoopWrites context.CancelFunc
}

// usageBatch is one write of counts, under the id that makes it idempotent.
type usageBatch struct {
	id   string
	rows []keygate.UsageCount
}

type usageKey struct {
	org, token string
	hour       int64
}

// NewUsage starts a recorder flushing as opts says.
func NewUsage(store UsageStore, opts UsageOptions) *Usage {
	if opts.LastUsedInterval <= 0 {
		opts.LastUsedInterval = 10 * time.Second
	}
	if opts.CountsInterval <= 0 {
		opts.CountsInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	u := &Usage{
		store: store, lastUsedInterval: opts.LastUsedInterval, countsInterval: opts.CountsInterval, logger: opts.Logger,
		lastUsed: map[string]time.Time{}, written: map[string]time.Time{},
		counts: map[usageKey]*keygate.UsageCount{},
		done:   make(chan struct{}),
	}
	u.loopWrites, u.cancelLoopWrites = context.WithCancel(context.Background())
	// Two loops: a slow last-used write does not hold back the counts.
	u.stopped.Go(func() { u.every(u.lastUsedInterval, u.flushLastUsed) })
	u.stopped.Go(func() { u.every(u.countsInterval, u.flushCounts) })
	return u
}

// Record notes one request by an authenticated token (or an OAuth client,
// tokenID "") that was answered with status.
func (u *Usage) Record(orgID, tokenID string, status int, at time.Time) {
	minute := at.UTC().Truncate(time.Minute)
	hour := at.UTC().Truncate(time.Hour)
	key := usageKey{org: orgID, token: tokenID, hour: hour.Unix()}
	u.mu.Lock()
	defer u.mu.Unlock()
	if tokenID != "" && minute.After(u.lastUsed[tokenID]) && minute.After(u.written[tokenID]) {
		u.lastUsed[tokenID] = minute
	}
	c := u.counts[key]
	if c == nil {
		c = &keygate.UsageCount{OrganizationID: orgID, TokenID: tokenID, Hour: hour}
		u.counts[key] = c
	}
	c.Requests++
	switch {
	case status == http.StatusTooManyRequests:
		c.RateLimited++
	case status == keygate.StatusClientClosedRequest:
		// The client left before the answer: not an error of the API's.
	case status >= 400:
		c.Errors++
	}
}

// PendingLastUsed returns the last use of tokenID this instance has seen
// (to the minute) since it started, written or not. Pages and the
// management API merge it into the stored last_used_at, so a token reads
// as used seconds after a call rather than after the next flush.
func (u *Usage) PendingLastUsed(tokenID string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := u.lastUsed[tokenID]
	if w := u.written[tokenID]; w.After(seen) {
		seen = w
	}
	return seen, !seen.IsZero()
}

// every runs flush each interval until Close. A write may take up to
// five seconds however short the interval: one cut short after its commit
// is the case the batch id is for, not the common one.
func (u *Usage) every(interval time.Duration, flush func(context.Context) error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-u.done:
			return
		}
		// A tick that came while Close began does not start a write
		// Close would wait for: Close writes what is left itself.
		select {
		case <-u.done:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(u.loopWrites, max(interval, 5*time.Second))
		_ = flush(ctx)
		cancel()
	}
}

// Flush writes what has been collected. On failure the batch is kept for
// the next try so nothing is lost.
func (u *Usage) Flush(ctx context.Context) error {
	return errors.Join(u.flushLastUsed(ctx), u.flushCounts(ctx))
}

func (u *Usage) flushLastUsed(ctx context.Context) error {
	u.mu.Lock()
	lastUsed := u.lastUsed
	u.lastUsed = map[string]time.Time{}
	// Marked written as the batch is taken, so requests arriving during
	// the write do not queue the same minute again.
	previous := make(map[string]time.Time, len(lastUsed))
	for id, m := range lastUsed {
		previous[id] = u.written[id]
		u.written[id] = m
	}
	u.forgetPastMinutes(time.Now().UTC().Truncate(time.Minute), lastUsed)
	u.mu.Unlock()
	if len(lastUsed) == 0 {
		return nil
	}
	if err := u.store.TouchTokens(ctx, lastUsed); err != nil {
		u.failures.Add(1)
		u.unmarkWritten(lastUsed, previous)
		u.restore(lastUsed)
		u.logger.Warn("writing token last-used times failed; will retry", "tokens", len(lastUsed), "error", err)
		return err
	}
	return nil
}

// flushCounts writes the batch that failed last time, under its id, then
// what was counted since.
func (u *Usage) flushCounts(ctx context.Context) error {
	u.flushMu.Lock()
	defer u.flushMu.Unlock()
	for range 2 {
		if u.pending == nil {
			u.mu.Lock()
			counts := u.counts
			u.counts = map[usageKey]*keygate.UsageCount{}
			u.mu.Unlock()
			if len(counts) == 0 {
				return nil
			}
			b := &usageBatch{id: keygate.NewID("ub"), rows: make([]keygate.UsageCount, 0, len(counts))}
			for _, c := range counts {
				b.rows = append(b.rows, *c)
			}
			u.pending = b
		}
		if err := u.store.RecordUsage(ctx, u.pending.id, u.pending.rows); err != nil {
			u.failures.Add(1)
			u.logger.Warn("writing usage counters failed; will retry", "rows", len(u.pending.rows), "error", err)
			return err
		}
		u.pending = nil
	}
	return nil
}

// unmarkWritten undoes the marks of a failed write, unless a later flush
// has moved them on.
func (u *Usage) unmarkWritten(batch, previous map[string]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, m := range batch {
		if u.written[id].Equal(m) {
			u.written[id] = previous[id]
		}
	}
}

func (u *Usage) restore(lastUsed map[string]time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, m := range lastUsed {
		if m.After(u.lastUsed[id]) {
			u.lastUsed[id] = m
		}
	}
}

// Close stops the loops and writes what is left, returning when ctx ends
// at the latest: a loop's write in flight is cut short then too, and what
// it carried stays counted, unwritten.
func (u *Usage) Close(ctx context.Context) error {
	select {
	case <-u.done:
	default:
		close(u.done)
	}
	stop := context.AfterFunc(ctx, u.cancelLoopWrites)
	u.stopped.Wait()
	stop()
	u.cancelLoopWrites() // the loops are done with it
	return u.Flush(ctx)
}

// forgetPastMinutes drops written marks older than the current minute,
// except those of the batch being written (PendingLastUsed reports them
// while the store catches up): a request now is in a later minute than
// any of them, so they no longer stop a repeat, and the map stays as
// small as the tokens of one batch instead of every token ever used.
func (u *Usage) forgetPastMinutes(current time.Time, batch map[string]time.Time) {
	for id, m := range u.written {
		if _, inBatch := batch[id]; !inBatch && m.Before(current) {
			delete(u.written, id)
		}
	}
}

// Unwritten returns how many requests are counted in memory and not yet
// written: what a crash now would lose.
func (u *Usage) Unwritten() int64 {
	var n int64
	u.flushMu.Lock()
	if u.pending != nil {
		for _, c := range u.pending.rows {
			n += c.Requests
		}
	}
	u.flushMu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.counts {
		n += c.Requests
	}
	return n
}

// WriteFailures returns how many usage or last-used writes have failed.
func (u *Usage) WriteFailures() int64 { return u.failures.Load() }
