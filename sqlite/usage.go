package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keygate/keygate"
)

// RecordUsage adds each count to what is stored for its organization, token
// and hour, in one transaction. Hours are truncated here too, so a caller
// that forgets cannot split one hour into many rows.
func (s *Store) RecordUsage(ctx context.Context, batchID string, counts []keygate.UsageCount) error {
	if len(counts) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if batchID != "" {
			now := s.now()
			res, err := tx.ExecContext(ctx, `INSERT INTO usage_batches (id, written_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`,
				batchID, millis(now))
			if err != nil {
				return dbError(err)
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return dbError(err) // written before, or nil
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM usage_batches WHERE written_at < ?`, millis(now.Add(-24*time.Hour))); err != nil {
				return dbError(err)
			}
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage
			(organization_id, token_id, hour, requests, errors, rate_limited)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (organization_id, token_id, hour) DO UPDATE SET
				requests = requests + excluded.requests,
				errors = errors + excluded.errors,
				rate_limited = rate_limited + excluded.rate_limited`)
		if err != nil {
			return dbError(err)
		}
		defer stmt.Close()
		for _, c := range counts {
			_, err := stmt.ExecContext(ctx, c.OrganizationID, c.TokenID, millis(hourOf(c.Hour)),
				c.Requests, c.Errors, c.RateLimited)
			if err != nil {
				return dbError(err)
			}
		}
		return nil
	})
}

// ListUsage returns the organization's counts with Hour in [From, To),
// oldest first, for one token or, with TokenID "", for all of them.
func (s *Store) ListUsage(ctx context.Context, q keygate.UsageQuery) ([]keygate.UsageCount, error) {
	rows, err := s.query(ctx, `SELECT organization_id, token_id, hour, requests, errors, rate_limited
		FROM usage
		WHERE organization_id = ?1 AND (?2 = '' OR token_id = ?2) AND hour >= ?3 AND hour < ?4
		ORDER BY hour, token_id`,
		q.OrganizationID, q.TokenID, millis(q.From), millis(q.To))
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []keygate.UsageCount
	for rows.Next() {
		var (
			c    keygate.UsageCount
			hour int64
		)
		if err := rows.Scan(&c.OrganizationID, &c.TokenID, &hour, &c.Requests, &c.Errors, &c.RateLimited); err != nil {
			return nil, dbError(err)
		}
		c.Hour = fromMillis(hour)
		out = append(out, c)
	}
	return out, dbError(rows.Err())
}

func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
