package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/backoff"
)

const (
	// changeRetention is how long change rows are kept: far longer than a
	// watcher normally lags behind, short enough that the table stays
	// small. A watcher that was away longer and finds that changes it had
	// not delivered were pruned returns keygate.ErrChangesPruned.
	changeRetention = time.Hour
	// pruneInterval is how often a watcher deletes old change rows.
	pruneInterval = 10 * time.Minute
	// changeBatch bounds how many changes one read returns.
	changeBatch = 500
	// queryTimeout bounds reading where to begin, the catch-up after
	// connecting (batches of changes missed meanwhile) and a prune.
	queryTimeout = 10 * time.Second
	// aliveInterval is the longest the listening connection goes without
	// a round trip once it follows: when neither a notification nor a poll
	// came within it, the watcher pings. A connection whose network path
	// died silently (no reset, nothing more arrives) stays open and quiet,
	// and only a round trip tells.
	aliveInterval = 2 * time.Second
	// aliveTimeout bounds each round trip on the listening connection once
	// it follows (a read of new changes, a ping): past it the connection is
	// taken as dead and the watcher reconnects, saying it does not follow
	// meanwhile. A dead connection is thus noticed within aliveInterval +
	// aliveTimeout (or the poll interval + aliveTimeout, when shorter).
	// Generous for an indexed read of at most changeBatch rows: a database
	// that slow fails requests' lookups (cache.store_timeout) anyway.
	aliveTimeout = 3 * time.Second
	// Bounds of the wait before reconnecting after the listening
	// connection failed (or reading where to begin did).
	minReconnect = 100 * time.Millisecond
	maxReconnect = 5 * time.Second
)

// reconnectBackoff spaces out a watcher's attempts to reach the database.
// It is jittered: every instance loses its connection at the same instant
// when PostgreSQL restarts, and must not all come back at the same
// instants after it.
func reconnectBackoff() backoff.Backoff {
	return backoff.Backoff{Initial: minReconnect, Max: maxReconnect}
}

// WatchChanges calls following(true) once it has read where to begin (the
// newest change committed then, retrying until it can), then fn, in order,
// for every change committed after that, by any process sharing the
// database, until ctx ends; it then returns nil.
//
// It LISTENs on a connection of its own (not from the pool, so a busy pool
// never delays it). Each notification, and every poll interval without
// one, it reads the changes table after the last seq it delivered, so a
// lost notification delays a change by at most one poll interval. When the
// connection fails it calls following(false) and reconnects with jittered
// backoff; once connected it reads from the last seq delivered, and calls
// following(true) before waiting again: nothing committed during the
// outage is skipped, and the caller knows changes were late meanwhile.
// A connection that fails silently is noticed by the round trips it must
// answer within aliveTimeout, at least every aliveInterval.
//
// Reading after the last seq delivered cannot replay changes that were
// pruned meanwhile (the watcher was away longer than changeRetention):
// when the changes table says it pruned past that seq, WatchChanges
// returns keygate.ErrChangesPruned, without saying it follows again.
func (s *Store) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	if following == nil {
		following = func(bool) {}
	}
	w := &watcher{store: s, fn: fn, following: following}
	defer w.pruning.Wait()
	if !w.start(ctx) {
		return nil
	}
	following(true)
	reconnect := reconnectBackoff()
	for {
		listened, err := w.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, keygate.ErrChangesPruned) {
			w.store.logger.Warn("postgres: changes not yet delivered were pruned; the cache must start over",
				"after_seq", w.last)
			w.fellBehind()
			return err
		}
		if listened {
			reconnect.Reset()
		}
		w.failed(err)
		w.fellBehind()
		if !reconnect.Wait(ctx) {
			return nil
		}
	}
}

// watcher is the state of one WatchChanges call.
type watcher struct {
	store     *Store
	last      int64 // seq of the last change delivered
	fn        func(keygate.Change)
	following func(bool)
	failing   bool
	// behind: following(false) was called, and following(true) not since.
	behind    bool
	lastPrune time.Time
	// pruning: the prunes running in the background.
	pruning sync.WaitGroup
}

// start reads where to begin: after the newest change committed now. It
// retries until it can, and reports false when ctx ended first.
func (w *watcher) start(ctx context.Context) bool {
	retry := reconnectBackoff()
	for {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		err := w.store.pool.QueryRow(qctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&w.last)
		cancel()
		if err == nil {
			return true
		} else if ctx.Err() != nil {
			return false
		}
		w.failed(err)
		if !retry.Wait(ctx) {
			return false
		}
	}
}

// listen runs one listening connection until it fails or ctx ends, and
// reports whether it got as far as listening.
func (w *watcher) listen(ctx context.Context) (listened bool, err error) {
	s := w.store
	cfg := s.pool.Config().ConnConfig.Copy()
	// Operators (and pg_terminate_backend in tests) can tell it apart.
	cfg.RuntimeParams["application_name"] += " (changes)"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		conn.Close(cctx)
	}()
	lctx, cancel := context.WithTimeout(ctx, queryTimeout)
	_, err = conn.Exec(lctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
	cancel()
	if err != nil {
		return false, err
	}
	// Changes committed while not listening are in the table.
	if err := w.catchUp(ctx, conn, queryTimeout); err != nil {
		return false, err
	}
	w.recovered()
	w.caughtUp()
	nextPoll := time.Now().Add(s.pollInterval)
	for {
		wctx, cancel := context.WithTimeout(ctx, min(s.pollInterval, aliveInterval))
		_, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return true, nil
		} else if err != nil && !timedOut {
			return true, err
		}
		if timedOut && time.Now().Before(nextPoll) {
			if err := ping(ctx, conn); err != nil {
				return true, err
			}
			continue
		}
		// A notification, or the poll interval passed without one: either
		// way the table says what is new. Notifications that queued up
		// meanwhile find nothing more and cost one cheap read each.
		nextPoll = time.Now().Add(s.pollInterval)
		if err := w.catchUp(ctx, conn, aliveTimeout); err != nil {
			return true, err
		}
		w.prune(ctx)
	}
}

// ping checks that the listening connection still answers within
// aliveTimeout.
func ping(ctx context.Context, conn *pgx.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, aliveTimeout)
	defer cancel()
	return conn.Ping(pctx)
}

// catchUp delivers every change after w.last, batch by batch, each read
// bounded by timeout.
func (w *watcher) catchUp(ctx context.Context, conn *pgx.Conn, timeout time.Duration) error {
	for {
		n, err := w.deliver(ctx, conn, timeout)
		if err != nil || n < changeBatch {
			return err
		}
	}
}

// deliver passes one batch of changes to fn and returns how many there
// were, or keygate.ErrChangesPruned when changes after w.last were pruned
// before they could be read.
//
// Each row carries how far the table was pruned, read in the same
// statement, so in the same snapshot as the rows: a prune raises it in
// the statement that deletes. A prune always keeps the newest row, so if
// changes after w.last were pruned, a row after w.last remains and the
// batch is not empty.
func (w *watcher) deliver(ctx context.Context, conn *pgx.Conn, timeout time.Duration) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(qctx, `SELECT seq, kind, id, (SELECT MAX(through) FROM changes_pruned)
		FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, w.last, changeBatch)
	if err != nil {
		return 0, err
	}
	var prunedThrough int64
	batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keygate.Change, error) {
		var c keygate.Change
		err := row.Scan(&c.Seq, &c.Kind, &c.ID, &prunedThrough)
		return c, err
	})
	if err != nil {
		return 0, err
	}
	if prunedThrough > w.last {
		return 0, fmt.Errorf("postgres: pruned through seq %d, delivered through %d: %w",
			prunedThrough, w.last, keygate.ErrChangesPruned)
	}
	for _, c := range batch {
		w.store.sawChange(c.Seq) // before fn tells a cache: see findTokenOnReplica
		w.fn(c)
		w.last = c.Seq
	}
	return len(batch), nil
}

// prune deletes change rows older than changeRetention, at most once per
// pruneInterval per watcher, in the background on the pool: a slow delete
// holds up neither reading changes nor checking the listening connection.
// A failure is only logged: old rows cost space, not correctness.
func (w *watcher) prune(ctx context.Context) {
	if time.Since(w.lastPrune) < pruneInterval {
		return
	}
	w.lastPrune = time.Now()
	w.pruning.Go(func() {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		defer cancel()
		if err := w.store.PruneChanges(qctx, w.store.now().Add(-changeRetention)); err != nil && ctx.Err() == nil {
			w.store.logger.Warn("postgres: pruning old changes failed", "error", err)
		}
	})
}

// PruneChanges deletes the change rows committed before cutoff, except the
// newest, and records in the same statement the highest seq it deleted, so
// a watcher that had not delivered them yet knows it missed them. Watchers
// call it with an hour ago every ten minutes.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) error {
	// The newest row stays whatever its age: its seq is how far a replica
	// has replayed (findTokenOnReplica), MAX(seq) must never go back, and
	// a watcher that missed pruned changes finds a row after them.
	// GREATEST ignores the NULL of a prune that deleted nothing.
	_, err := s.pool.Exec(ctx, `WITH gone AS (
			DELETE FROM changes WHERE created_at < $1 AND seq < (SELECT MAX(seq) FROM changes)
			RETURNING seq)
		UPDATE changes_pruned SET through = GREATEST(through, (SELECT MAX(seq) FROM gone))`, ts(cutoff))
	return dbError(err)
}

// failed logs the first failure of a run of them.
func (w *watcher) failed(err error) {
	if err == nil {
		err = errors.New("connection closed")
	}
	if !w.failing {
		w.store.logger.Warn("postgres: following changes failed; reconnecting and catching up",
			"error", err, "after_seq", w.last)
	}
	w.failing = true
}

// fellBehind tells the caller, once per outage, that changes committed
// from now on are late: they are delivered only after reconnecting.
func (w *watcher) fellBehind() {
	if !w.behind {
		w.behind = true
		w.following(false)
	}
}

// caughtUp tells the caller, after an outage, that every change committed
// during it was delivered and new ones arrive as they commit again.
func (w *watcher) caughtUp() {
	if w.behind {
		w.behind = false
		w.following(true)
	}
}

// recovered logs the end of a run of failures.
func (w *watcher) recovered() {
	if w.failing {
		w.store.logger.Info("postgres: following changes again", "after_seq", w.last)
		w.failing = false
	}
}
