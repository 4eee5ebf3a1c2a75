package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// BeatInstance records the instance as seen now and counts those seen
// within expiry, in one transaction.
func (s *Store) BeatInstance(ctx context.Context, instance string, expiry time.Duration) (int, error) {
	now := s.now()
	cutoff := millis(now.Add(-expiry))
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO instances (id, seen_at) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`, instance, millis(now)); err != nil {
			return dbError(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM instances WHERE seen_at < ?`, cutoff); err != nil {
			return dbError(err)
		}
		return dbError(tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM instances`).Scan(&n))
	})
	return n, err
}

// WithdrawInstance deletes the instance's row.
func (s *Store) WithdrawInstance(ctx context.Context, instance string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM instances WHERE id = ?`, instance)
		return dbError(err)
	})
}
