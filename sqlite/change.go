package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keygate/keygate"
)

const (
	// changeRetention is how long change rows are kept: far longer than any
	// watcher lags behind, short enough that the table stays small.
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
// start.
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
			w.poll(ctx)
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

// poll delivers every change after w.last, batch by batch.
func (w *watcher) poll(ctx context.Context) {
	for {
		n, err := w.deliver(ctx)
		if err != nil {
			if ctx.Err() == nil && !w.failing {
				w.store.logger.Warn("sqlite: reading changes failed; retrying", "err", err)
				w.failing = true
				w.following(false)
			}
			return
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
		w.store.pruneChanges(ctx)
	}
}

// deliver passes one batch of changes to fn and returns how many there were.
func (w *watcher) deliver(ctx context.Context) (int, error) {
	rows, err := w.store.reader.QueryContext(ctx,
		`SELECT seq, kind, id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, w.last, changeBatch)
	if err != nil {
		return 0, err
	}
	var batch []keygate.Change
	for rows.Next() {
		var c keygate.Change
		if err := rows.Scan(&c.Seq, &c.Kind, &c.ID); err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// fn runs after the rows are closed so a slow callback holds no
	// read snapshot open, which would keep the WAL from checkpointing.
	for _, c := range batch {
		w.fn(c)
		w.last = c.Seq
	}
	return len(batch), nil
}

// pruneChanges deletes change rows older than changeRetention.
func (s *Store) pruneChanges(ctx context.Context) {
	cutoff := millis(s.now().Add(-changeRetention))
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM changes WHERE created_at < ?`, cutoff); err != nil && ctx.Err() == nil {
		s.logger.Warn("sqlite: pruning old changes failed", "err", err)
	}
}
