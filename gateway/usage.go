package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/keygate/keygate"
)

// UsageStore is where usage batches are written.
type UsageStore interface {
	TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error
	RecordUsage(ctx context.Context, counts []keygate.UsageCount) error
}

// Usage collects each token's last use (to the minute) and per-hour request
// counts in memory and writes them in one batch per interval, off the
// request path: a busy token costs one write per interval, not one per
// request. A failed write keeps the batch for the next try; Close writes
// what is left.
type Usage struct {
	store    UsageStore
	interval time.Duration
	logger   *slog.Logger

	mu       sync.Mutex
	lastUsed map[string]time.Time // token id → minute
	written  map[string]time.Time // minute last written per token
	counts   map[usageKey]*keygate.UsageCount
	done     chan struct{}
	stopped  chan struct{}
}

type usageKey struct {
	org, token string
	hour       int64
}

// NewUsage starts a recorder flushing every interval (default 10s).
func NewUsage(store UsageStore, interval time.Duration, logger *slog.Logger) *Usage {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	if logger == nil {
		logger = slog.Default()
	}
	u := &Usage{
		store: store, interval: interval, logger: logger,
		lastUsed: map[string]time.Time{}, written: map[string]time.Time{},
		counts: map[usageKey]*keygate.UsageCount{},
		done:   make(chan struct{}), stopped: make(chan struct{}),
	}
	go u.loop()
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

func (u *Usage) loop() {
	defer close(u.stopped)
	tick := time.NewTicker(u.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), u.interval)
			_ = u.Flush(ctx)
			cancel()
		case <-u.done:
			return
		}
	}
}

// Flush writes what has been collected. On failure the batch is merged
// back so nothing is lost.
func (u *Usage) Flush(ctx context.Context) error {
	u.mu.Lock()
	lastUsed, counts := u.lastUsed, u.counts
	u.lastUsed, u.counts = map[string]time.Time{}, map[usageKey]*keygate.UsageCount{}
	// Marked written as the batch is taken, so requests arriving during
	// the write do not queue the same minute again.
	previous := make(map[string]time.Time, len(lastUsed))
	for id, m := range lastUsed {
		previous[id] = u.written[id]
		u.written[id] = m
	}
	u.forgetPastMinutes(time.Now().UTC().Truncate(time.Minute), lastUsed)
	u.mu.Unlock()
	if len(lastUsed) == 0 && len(counts) == 0 {
		return nil
	}
	if len(lastUsed) > 0 {
		if err := u.store.TouchTokens(ctx, lastUsed); err != nil {
			u.unmarkWritten(lastUsed, previous)
			u.restore(lastUsed, counts)
			u.logger.Warn("writing token last-used times failed; will retry", "tokens", len(lastUsed), "error", err)
			return err
		}
	}
	batch := make([]keygate.UsageCount, 0, len(counts))
	for _, c := range counts {
		batch = append(batch, *c)
	}
	if err := u.store.RecordUsage(ctx, batch); err != nil {
		u.restore(nil, counts)
		u.logger.Warn("writing usage counters failed; will retry", "rows", len(batch), "error", err)
		return err
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

func (u *Usage) restore(lastUsed map[string]time.Time, counts map[usageKey]*keygate.UsageCount) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, m := range lastUsed {
		if m.After(u.lastUsed[id]) {
			u.lastUsed[id] = m
		}
	}
	for k, c := range counts {
		if cur := u.counts[k]; cur != nil {
			cur.Requests += c.Requests
			cur.Errors += c.Errors
			cur.RateLimited += c.RateLimited
		} else {
			u.counts[k] = c
		}
	}
}

// Close stops the loop and writes what is left.
func (u *Usage) Close(ctx context.Context) error {
	select {
	case <-u.done:
	default:
		close(u.done)
	}
	<-u.stopped
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
