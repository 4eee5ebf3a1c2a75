package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate"
)

// outbox is the mechanism the email outbox and webhook deliveries share:
// a sender claims due pending rows (attempts + 1, next_attempt_at moved to
// the end of a lease, so no other sender takes them until it runs out),
// tries them, and records an attempt only while its claim holds (the row
// is pending with exactly the attempts it claimed). Each table supplies
// its names.
type outbox[T any] struct {
	table   string
	columns string // what claim returns, in scan's order
	// due selects the ids of due rows, first due first: ?2 is now, ?3 the
	// limit.
	due       string
	noun      string // what a row is, in errors: "email"
	scan      func(rowScanner) (T, error)
	createdAt func(T) time.Time
}

var emailOutbox = outbox[*keygate.Email]{
	table: "emails", columns: emailColumns, noun: "email",
	due: `SELECT id FROM emails WHERE state = 'pending' AND next_attempt_at <= ?2
		ORDER BY next_attempt_at, rowid LIMIT ?3`,
	scan:      scanEmail,
	createdAt: func(e *keygate.Email) time.Time { return e.CreatedAt },
}

// Deliveries of disabled endpoints wait, pending, until the endpoint is
// enabled again.
var deliveryOutbox = outbox[*keygate.WebhookDelivery]{
	table: "webhook_deliveries", columns: deliveryColumns, noun: "webhook delivery",
	due: `SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ?2 AND NOT w.disabled
		ORDER BY d.next_attempt_at, d.rowid LIMIT ?3`,
	scan:      scanDelivery,
	createdAt: func(d *keygate.WebhookDelivery) time.Time { return d.CreatedAt },
}

// claim leases up to limit due rows until now+lease: the selection and the
// lease are one statement in one BEGIN IMMEDIATE transaction, so two
// senders never claim the same row.
func (o outbox[T]) claim(ctx context.Context, s *Store, now time.Time, lease time.Duration, limit int) ([]T, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []T
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE `+o.table+`
			SET attempts = attempts + 1, next_attempt_at = ?1
			WHERE id IN (`+o.due+`)
			RETURNING `+o.columns,
			millis(now.Add(lease)), millis(now), limit)
		if err != nil {
			return dbError(err)
		}
		defer rows.Close()
		for rows.Next() {
			v, err := o.scan(rows)
			if err != nil {
				return dbError(err)
			}
			out = append(out, v)
		}
		return dbError(rows.Err())
	})
	if err != nil {
		return nil, err
	}
	// RETURNING does not keep the subquery's order. Oldest first, so an
	// organization's messages tend to go out in the order they happened.
	slices.SortStableFunc(out, func(a, b T) int { return o.createdAt(a).Compare(o.createdAt(b)) })
	return out, nil
}

// claimLost explains why an attempt on row id could not be recorded: the
// row is gone (ENOTFOUND), or it is no longer held by that attempt
// (ECONFLICT).
func (o outbox[T]) claimLost(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+o.table+` WHERE id = ?`, id).Scan(&n); err != nil {
		return dbError(err)
	} else if n == 0 {
		return keygate.Errorf(keygate.ENOTFOUND, "%s%s not found.", strings.ToUpper(o.noun[:1]), o.noun[1:])
	}
	return keygate.Errorf(keygate.ECONFLICT, "The %s is no longer held by this attempt.", o.noun)
}
