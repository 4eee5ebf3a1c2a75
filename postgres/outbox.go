package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

// outbox claims and records attempts on rows of the email outbox or the
// webhook deliveries, the same way for both (the SQLite store's outbox
// says how); each table supplies its names and its due rows.
type outbox[T any] struct {
	table, columns string // columns: what claim returns, in scan's order
	// due selects and locks the ids of due rows, first due first,
	// skipping rows another claimer holds: $2 is now, $3 the limit.
	due  string
	noun string // in errors: "email"
	scan func(pgx.Row) (T, error)
}

var emailOutbox = outbox[*keygate.Email]{
	table: "emails", columns: emailColumns, noun: "email",
	due: `SELECT id FROM emails WHERE state = 'pending' AND next_attempt_at <= $2
		ORDER BY next_attempt_at, pos LIMIT $3
		FOR UPDATE SKIP LOCKED`,
	scan: scanEmail,
}

// Deliveries of disabled endpoints wait, pending, until the endpoint is
// enabled again. Only the delivery rows are locked; the UPDATE re-checks
// each row it locks, so no delivery is claimed twice.
var deliveryOutbox = outbox[*keygate.WebhookDelivery]{
	table: "webhook_deliveries", columns: deliveryColumns, noun: "webhook delivery",
	due: `SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= $2 AND NOT w.disabled
		ORDER BY d.next_attempt_at, d.pos LIMIT $3
		FOR UPDATE OF d SKIP LOCKED`,
	scan: scanDelivery,
}

// claim leases up to limit due rows until now+lease, in one statement, and
// returns them oldest first, so an organization's messages tend to go out
// in the order they happened.
func (o outbox[T]) claim(ctx context.Context, s *Store, now time.Time, lease time.Duration, limit int) ([]T, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `WITH claimed AS (
			UPDATE `+o.table+` SET attempts = attempts + 1, next_attempt_at = $1
			WHERE id IN (`+o.due+`)
			RETURNING pos, `+o.columns+`)
		SELECT `+o.columns+` FROM claimed ORDER BY created_at, pos`,
		ts(now.Add(lease)), ts(now), limit)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, o.scan)
}

// queryRower is a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// claimLost explains why an attempt on row id could not be recorded: the
// row is gone (ENOTFOUND), or it is no longer held by that attempt
// (ECONFLICT).
func (o outbox[T]) claimLost(ctx context.Context, q queryRower, id string) error {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+o.table+` WHERE id = $1)`, id).Scan(&exists); err != nil {
		return dbError(err)
	} else if !exists {
		return keygate.Errorf(keygate.ENOTFOUND, "%s%s not found.", strings.ToUpper(o.noun[:1]), o.noun[1:])
	}
	return keygate.Errorf(keygate.ECONFLICT, "The %s is no longer held by this attempt.", o.noun)
}
