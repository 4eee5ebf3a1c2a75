package postgres

import (
	"context"
	"time"
)

// BeatInstance records the instance as seen now and counts those seen
// within expiry, by the server's clock, in one statement: the count does
// not see the row the beat writes (one snapshot), hence the 1 +.
func (s *Store) BeatInstance(ctx context.Context, instance string, expiry time.Duration) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `WITH beat AS (
			INSERT INTO instances (id, seen_at) VALUES ($1, now())
			ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
		), gone AS (
			DELETE FROM instances WHERE id <> $1 AND seen_at < now() - $2 * interval '1 millisecond'
		)
		SELECT 1 + count(*) FROM instances WHERE id <> $1 AND seen_at >= now() - $2 * interval '1 millisecond'`,
		instance, expiry.Milliseconds()).Scan(&n)
	return n, dbError(err)
}

// WithdrawInstance deletes the instance's row.
func (s *Store) WithdrawInstance(ctx context.Context, instance string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM instances WHERE id = $1`, instance)
	return dbError(err)
}
