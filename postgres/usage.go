package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

// RecordUsage adds each count to what is stored for its organization, token
// and hour, in one transaction. Hours are truncated here too, so a caller
// that forgets cannot split one hour into many rows. Rows are written in
// key order, so instances flushing the same hours never deadlock.
func (s *Store) RecordUsage(ctx context.Context, counts []keygate.UsageCount) error {
	if len(counts) == 0 {
		return nil
	}
	sorted := slices.Clone(counts)
	slices.SortFunc(sorted, func(a, b keygate.UsageCount) int {
		if c := strings.Compare(a.OrganizationID, b.OrganizationID); c != 0 {
			return c
		}
		if c := strings.Compare(a.TokenID, b.TokenID); c != 0 {
			return c
		}
		return hourOf(a.Hour).Compare(hourOf(b.Hour))
	})
	return s.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, c := range sorted {
			b.Queue(`INSERT INTO usage AS u
				(organization_id, token_id, hour, requests, errors, rate_limited)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (organization_id, token_id, hour) DO UPDATE SET
					requests = u.requests + excluded.requests,
					errors = u.errors + excluded.errors,
					rate_limited = u.rate_limited + excluded.rate_limited`,
				c.OrganizationID, c.TokenID, hourOf(c.Hour), c.Requests, c.Errors, c.RateLimited)
		}
		return dbError(tx.SendBatch(ctx, b).Close())
	})
}

// ListUsage returns the organization's counts with Hour in [From, To),
// oldest first, for one token or, with TokenID "", for all of them.
func (s *Store) ListUsage(ctx context.Context, q keygate.UsageQuery) ([]keygate.UsageCount, error) {
	var w where
	w.add("organization_id = %s", q.OrganizationID)
	w.equal("token_id", q.TokenID)
	w.add("hour >= %s AND hour < %s", ts(q.From), ts(q.To))
	rows, err := s.pool.Query(ctx, `SELECT organization_id, token_id, hour, requests, errors, rate_limited
		FROM usage`+w.String()+` ORDER BY hour, token_id COLLATE "C"`, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, func(row pgx.Row) (keygate.UsageCount, error) {
		var c keygate.UsageCount
		err := row.Scan(&c.OrganizationID, &c.TokenID, &c.Hour, &c.Requests, &c.Errors, &c.RateLimited)
		c.Hour = c.Hour.UTC()
		return c, err
	})
}

func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
