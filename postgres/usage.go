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
// and hour, with one statement. Hours are truncated here too, so a caller
// that forgets cannot split one hour into many rows. Counts for the same
// row are summed first (one statement may not update a row twice), and
// rows go in key order, so instances flushing the same hours lock them in
// one order; should they deadlock anyway, the loser runs again. The batch
// id goes in first, in the same transaction: a batch already recorded
// ends the transaction there.
func (s *Store) RecordUsage(ctx context.Context, batchID string, counts []keygate.UsageCount) error {
	if len(counts) == 0 {
		return nil
	}
	type key struct {
		org, token string
		hour       time.Time
	}
	summed := map[key]*keygate.UsageCount{}
	var keys []key
	for _, c := range counts {
		k := key{c.OrganizationID, c.TokenID, hourOf(c.Hour)}
		if sum := summed[k]; sum != nil {
			sum.Requests += c.Requests
			sum.Errors += c.Errors
			sum.RateLimited += c.RateLimited
			continue
		}
		c.Hour = k.hour
		summed[k] = &c
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.org, b.org); c != 0 {
			return c
		}
		if c := strings.Compare(a.token, b.token); c != 0 {
			return c
		}
		return a.hour.Compare(b.hour)
	})
	var (
		orgs, tokens                  = make([]string, len(keys)), make([]string, len(keys))
		hours                         = make([]time.Time, len(keys))
		requests, errors, rateLimited = make([]int64, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
	)
	for i, k := range keys {
		c := summed[k]
		orgs[i], tokens[i], hours[i] = k.org, k.token, k.hour
		requests[i], errors[i], rateLimited[i] = c.Requests, c.Errors, c.RateLimited
	}
	return s.writeRetrying(ctx, func(tx pgx.Tx) error {
		if batchID != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO usage_batches (id, written_at) VALUES ($1, now()) ON CONFLICT (id) DO NOTHING`, batchID)
			if err != nil {
				return dbError(err)
			}
			if tag.RowsAffected() == 0 {
				return nil // written before
			}
			if _, err := tx.Exec(ctx, `DELETE FROM usage_batches WHERE written_at < now() - interval '1 day'`); err != nil {
				return dbError(err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO usage AS u
				(organization_id, token_id, hour, requests, errors, rate_limited)
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[])
			ON CONFLICT (organization_id, token_id, hour) DO UPDATE SET
				requests = u.requests + excluded.requests,
				errors = u.errors + excluded.errors,
				rate_limited = u.rate_limited + excluded.rate_limited`,
			orgs, tokens, hours, requests, errors, rateLimited)
		return dbError(err)
	})
}

// ListUsage returns the organization's counts with Hour in [From, To),
// oldest first, for one token or, with TokenID "", for all of them.
func (s *Store) ListUsage(ctx context.Context, q keygate.UsageQuery) ([]keygate.UsageCount, error) {
	var w where
	w.add("organization_id = %s", q.OrganizationID)
	w.equal("token_id", q.TokenID)
	w.add("hour >= %s AND hour < %s", ts(q.From), ts(q.To))
	rows, err := s.query(ctx, `SELECT organization_id, token_id, hour, requests, errors, rate_limited
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
