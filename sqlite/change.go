package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate"
)

const (
	// changeRetention is how long change rows are kept: far longer than a
	// watcher normally lags behind, short enough that the table stays
	// small. A watcher that was away longer and finds that changes it had
	// not delivered were pruned returns keygate.ErrChangesPruned.
	changeRetention = time.Hour
	// pruneInterval is how often a watcher deletes old change rows.
	pruneInterval = 10 * time.Minute
	// changeBatch bounds how many changes one poll reads.
	changeBatch = 500
)

// WatchChanges calls following(true) once it has read where to begin (the
// newest change committed then), then fn, in order, for every change
// committed after that, by this process or any other sharing the file,
// until ctx ends; it then returns nil. It polls the changes table every
// poll interval, so a revocation through the CLI reaches a running server
// within that interval.
// A failed poll is logged, reported as following(false), and retried; the
// next one that works resumes after the last change delivered and reports
// following(true). It fails at once only when it cannot read where to
// start, and it returns keygate.ErrChangesPruned when changes after the
// last one it delivered were pruned before it could read them (its polls
// failed, or its process was stopped, for longer than changeRetention).
func (s *Store) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	var last sql.NullInt64
	if err := s.reader.QueryRowContext(ctx, `SELECT MAX(seq) FROM changes`).Scan(&last); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return dbError(err)
	}
	if following == nil {
		following = func(bool) {}
	}
	following(true)
	w := &watcher{store: s, last: last.Int64, fn: fn, following: following}
	ticker := time.NewTicker(s.pollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if err := w.poll(ctx); err != nil {
				return err
			}
		}
	}
}

// watcher is the state of one WatchChanges call.
type watcher struct {
	store     *Store
	last      int64 // seq of the last change delivered
	fn        func(keygate.Change)
	following func(bool)
	// failing: the last poll failed, and following(false) was called.
	failing   bool
	lastPrune time.Time
}

// poll delivers every change after w.last, batch by batch. It returns
// an error only when changes it had not delivered were pruned: any other
// failure is retried at the next poll.
func (w *watcher) poll(ctx context.Context) error {
	for {
		n, err := w.deliver(ctx)
		if errors.Is(err, keygate.ErrChangesPruned) {
			w.store.logger.Warn("sqlite: changes not yet delivered were pruned; the cache must start over",
				"after_seq", w.last)
			if !w.failing {
				w.following(false)
			}
			return err
		}
		if err != nil {
			if ctx.Err() == nil && !w.failing {
				w.store.logger.Warn("sqlite: reading changes failed; retrying", "err", err)
				w.failing = true
				w.following(false)
			}
			return nil
		}
		if n < changeBatch {
			break
		}
	}
	if w.failing {
		w.store.logger.Info("sqlite: reading changes works again")
		w.failing = false
		w.following(true)
	}
	if time.Since(w.lastPrune) >= pruneInterval {
		w.lastPrune = time.Now()
		if err := w.store.PruneChanges(ctx, w.store.now().Add(-changeRetention)); err != nil && ctx.Err() == nil {
			w.store.logger.Warn("sqlite: pruning old changes failed", "err", err)
		}
	}
	return nil
}

// deliver passes one batch of changes to fn and returns how many there
// were, or keygate.ErrChangesPruned when changes after w.last were pruned
// before they could be read.
//
// Each row carries how far the table was pruned, read in the same
// statement, so in the same snapshot as the rows: a prune raises it in
// the transaction that deletes. A prune always keeps the newest row, so if
// changes after w.last were pruned, a row after w.last remains and the
// batch is not empty.
func (w *watcher) deliver(ctx context.Context) (int, error) {
	rows, err := w.store.reader.QueryContext(ctx, `SELECT seq, kind, id, (SELECT MAX(through) FROM changes_pruned)
		FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, w.last, changeBatch)
	if err != nil {
		return 0, err
	}
	var batch []keygate.Change
	var prunedThrough int64
	for rows.Next() {
		var c keygate.Change
		if err := rows.Scan(&c.Seq, &c.Kind, &c.ID, &prunedThrough); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if prunedThrough > w.last {
		return 0, fmt.Errorf("sqlite: pruned through seq %d, delivered through %d: %w",
			prunedThrough, w.last, keygate.ErrChangesPruned)
	}
	// fn runs after the rows are closed so a slow callback holds no
	// read snapshot open, which would keep the WAL from checkpointing.
	for _, c := range batch {
		w.fn(c)
		w.last = c.Seq
	}
	return len(batch), nil
}

// PruneChanges deletes the change rows committed before cutoff, except the
// newest, and records in the same transaction the highest seq it deleted,
// so a watcher that had not delivered them yet knows it missed them.
// Watchers call it with an hour ago every ten minutes.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) error {
	// The newest row stays whatever its age, so a watcher that missed
	// pruned changes finds a row after them.
	const doomed = `FROM changes WHERE created_at < ? AND seq < (SELECT MAX(seq) FROM changes)`
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE changes_pruned
			SET through = MAX(through, COALESCE((SELECT MAX(seq) `+doomed+`), 0))`, millis(cutoff))
		if err == nil {
			_, err = tx.ExecContext(ctx, `DELETE `+doomed, millis(cutoff))
		}
		return dbError(err)
	})
}
