package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keygate/keygate"
)

// Organization webhooks (keygate.WebhookStore). Claiming deliveries runs in
// one BEGIN IMMEDIATE transaction, so two dispatchers, in this process or
// another, never claim the same delivery; recording an attempt checks that
// the claim still holds in the same way.

var _ keygate.WebhookStore = (*Store)(nil)

const webhookColumns = `id, organization_id, url, events, secret, disabled, created_at`

// CreateWebhook stores an endpoint, filling in an empty ID and a zero
// CreatedAt, unless the organization has maxPerOrganization already;
// ENOTFOUND when the organization does not exist.
func (s *Store) CreateWebhook(ctx context.Context, w *keygate.Webhook, maxPerOrganization int) error {
	if w.ID == "" {
		w.ID = keygate.NewID("whk")
	}
	w.CreatedAt = s.createdAt(w.CreatedAt)
	events, err := encodeStrings(w.Events)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if maxPerOrganization > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhooks WHERE organization_id = ?`, w.OrganizationID).Scan(&n); err != nil {
				return dbError(err)
			} else if n >= maxPerOrganization {
				return keygate.TooManyWebhooksError(maxPerOrganization)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.OrganizationID, w.URL, events, w.Secret, w.Disabled, millis(w.CreatedAt))
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
			return keygate.Errorf(keygate.ECONFLICT, "A webhook with this id already exists.")
		} else if err != nil {
			return err
		}
		return nil
	})
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "Organization not found.")
	}
	return err
}

// FindWebhook returns ENOTFOUND for an unknown id.
func (s *Store) FindWebhook(ctx context.Context, id string) (*keygate.Webhook, error) {
	row := s.queryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id)
	w, err := scanWebhook(row)
	if err != nil {
		return nil, notFound(err, "Webhook")
	}
	return w, nil
}

// ListWebhooks returns an organization's endpoints, or every endpoint for
// "", oldest first.
func (s *Store) ListWebhooks(ctx context.Context, organizationID string) ([]*keygate.Webhook, error) {
	rows, err := s.query(ctx, `SELECT `+webhookColumns+` FROM webhooks
		WHERE (?1 = '' OR organization_id = ?1) ORDER BY created_at, rowid`, organizationID)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, w)
	}
	return out, dbError(rows.Err())
}

// UpdateWebhook replaces URL, events and disabled; ENOTFOUND when unknown.
func (s *Store) UpdateWebhook(ctx context.Context, w *keygate.Webhook) error {
	events, err := encodeStrings(w.Events)
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, `UPDATE webhooks SET url = ?, events = ?, disabled = ? WHERE id = ?`,
		w.URL, events, w.Disabled, w.ID)
	return affectedOne(res, err, "Webhook")
}

// DeleteWebhook removes the endpoint; its deliveries and their attempts go
// with it (ON DELETE CASCADE). ENOTFOUND when unknown.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	return affectedOne(res, err, "Webhook")
}

func scanWebhook(row rowScanner) (*keygate.Webhook, error) {
	var (
		w         keygate.Webhook
		events    string
		createdAt int64
	)
	if err := row.Scan(&w.ID, &w.OrganizationID, &w.URL, &events, &w.Secret, &w.Disabled, &createdAt); err != nil {
		return nil, err
	}
	if err := decodeStrings(events, &w.Events); err != nil {
		return nil, err
	}
	w.CreatedAt = fromMillis(createdAt)
	return &w, nil
}

const attemptColumns = `delivery_id, attempt, at, duration_ms, status, error, response, delivered, next_attempt_at`

const deliveryColumns = `id, webhook_id, organization_id, event, payload, state, attempts,
	next_attempt_at, last_attempt_at, last_status, last_error, last_response, delivered_at, created_at`

// EnqueueWebhookDeliveries stores the deliveries as pending in one
// transaction: all or none.
func (s *Store) EnqueueWebhookDeliveries(ctx context.Context, deliveries []*keygate.WebhookDelivery) error {
	if len(deliveries) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return s.insertDeliveries(ctx, tx, deliveries)
	})
}

// EnqueueTokenNotice records the notice and stores the deliveries in one
// transaction; ECONFLICT, and nothing stored, when the notice was already
// recorded.
func (s *Store) EnqueueTokenNotice(ctx context.Context, n *keygate.TokenNotice, deliveries []*keygate.WebhookDelivery) error {
	n.CreatedAt = s.createdAt(n.CreatedAt)
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := insertNotice(ctx, tx, n); err != nil {
			return err
		}
		return s.insertDeliveries(ctx, tx, deliveries)
	})
}

// insertNotice records the notice once: ECONFLICT when it is already
// recorded, so the emails or deliveries queued with it are not.
func insertNotice(ctx context.Context, tx *sql.Tx, n *keygate.TokenNotice) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO token_notices (token_id, event, created_at)
		VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, n.TokenID, n.Event, millis(n.CreatedAt))
	if err != nil {
		return dbError(err)
	}
	if inserted, err := res.RowsAffected(); err != nil {
		return dbError(err)
	} else if inserted == 0 {
		return keygate.Errorf(keygate.ECONFLICT, "The %s notice for this token was already sent.", n.Event)
	}
	return nil
}

func (s *Store) insertDeliveries(ctx context.Context, tx *sql.Tx, deliveries []*keygate.WebhookDelivery) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO webhook_deliveries (`+deliveryColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return dbError(err)
	}
	defer stmt.Close()
	for _, d := range deliveries {
		d.Queue(s.createdAt(d.CreatedAt))
		_, err := stmt.ExecContext(ctx, d.ID, d.WebhookID, d.OrganizationID, d.Event, d.Payload, d.State,
			d.Attempts, nullMillis(d.NextAttemptAt), nullMillis(d.LastAttemptAt), d.LastStatus, d.LastError,
			d.LastResponse, nullMillis(d.DeliveredAt), millis(d.CreatedAt))
		switch err := dbError(err); keygate.ErrorCode(err) {
		case "":
		case keygate.ECONFLICT:
			return keygate.Errorf(keygate.ECONFLICT, "A webhook delivery with this id already exists.")
		case keygate.ENOTFOUND:
			return keygate.Errorf(keygate.ENOTFOUND, "Webhook not found.")
		default:
			return err
		}
	}
	return nil
}

// ClaimWebhookDeliveries takes due pending deliveries of enabled endpoints
// under the write lock (outbox).
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*keygate.WebhookDelivery, error) {
	return deliveryOutbox.claim(ctx, s, now, lease, limit)
}

// RecordWebhookAttempt stores the attempt and the delivery's new state if
// the claim that made the attempt still holds: the delivery is pending with
// exactly a.Attempt attempts.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a *keygate.WebhookAttempt) error {
	state, next, deliveredAt := a.Result()
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries
			SET state = ?, next_attempt_at = ?, last_attempt_at = ?, last_status = ?,
				last_error = ?, last_response = ?, delivered_at = ?
			WHERE id = ? AND state = 'pending' AND attempts = ?`,
			state, nullMillis(next), millis(a.At), a.Status, a.Error, a.Response, nullMillis(deliveredAt),
			a.DeliveryID, a.Attempt)
		if err != nil {
			return dbError(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError(err)
		} else if n == 0 {
			return deliveryOutbox.claimLost(ctx, tx, a.DeliveryID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO webhook_attempts (`+attemptColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.DeliveryID, a.Attempt, millis(a.At), a.Duration.Milliseconds(), a.Status, a.Error, a.Response,
			a.Delivered, nullMillis(next))
		return dbError(err)
	})
}

// RedeliverWebhook makes a finished delivery pending again, due at at.
func (s *Store) RedeliverWebhook(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM webhook_deliveries WHERE id = ?`, id).Scan(&state)
		if err != nil {
			return notFound(err, "Webhook delivery")
		} else if state == keygate.DeliveryPending {
			return keygate.Errorf(keygate.ECONFLICT, "The webhook delivery is still pending.")
		}
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?
			WHERE id = ?`, millis(at), id)
		return dbError(err)
	})
}

// FindWebhookDelivery returns ENOTFOUND for an unknown id.
func (s *Store) FindWebhookDelivery(ctx context.Context, id string) (*keygate.WebhookDelivery, error) {
	row := s.queryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = ?`, id)
	d, err := scanDelivery(row)
	if err != nil {
		return nil, notFound(err, "Webhook delivery")
	}
	return d, nil
}

// ListWebhookDeliveries returns matching deliveries newest first, at most
// filter.Limit (default 100).
func (s *Store) ListWebhookDeliveries(ctx context.Context, filter keygate.WebhookDeliveryFilter) ([]*keygate.WebhookDelivery, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE (?1 = '' OR organization_id = ?1) AND (?2 = '' OR webhook_id = ?2) AND (?3 = '' OR state = ?3)
		ORDER BY created_at DESC, rowid DESC LIMIT ?4`,
		filter.OrganizationID, filter.WebhookID, filter.State, limit)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, d)
	}
	return out, dbError(rows.Err())
}

// ListWebhookAttempts returns a delivery's attempts, oldest first.
func (s *Store) ListWebhookAttempts(ctx context.Context, deliveryID string) ([]*keygate.WebhookAttempt, error) {
	rows, err := s.query(ctx, `SELECT `+attemptColumns+`
		FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt`, deliveryID)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.WebhookAttempt
	for rows.Next() {
		var (
			a        keygate.WebhookAttempt
			at, took int64
			next     sql.NullInt64
		)
		err := rows.Scan(&a.DeliveryID, &a.Attempt, &at, &took, &a.Status, &a.Error, &a.Response, &a.Delivered, &next)
		if err != nil {
			return nil, dbError(err)
		}
		a.At = fromMillis(at)
		a.Duration = time.Duration(took) * time.Millisecond
		a.NextAttemptAt = fromNullMillis(next)
		out = append(out, &a)
	}
	return out, dbError(rows.Err())
}

// PurgeWebhooks deletes finished deliveries (with their attempts) and
// token notices created before before.
func (s *Store) PurgeWebhooks(ctx context.Context, before time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries
			WHERE state != 'pending' AND created_at < ?`, millis(before)); err != nil {
			return dbError(err)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM token_notices WHERE created_at < ?`, millis(before))
		return dbError(err)
	})
}

func scanDelivery(row rowScanner) (*keygate.WebhookDelivery, error) {
	var (
		d                                         keygate.WebhookDelivery
		nextAttemptAt, lastAttemptAt, deliveredAt sql.NullInt64
		createdAt                                 int64
	)
	err := row.Scan(&d.ID, &d.WebhookID, &d.OrganizationID, &d.Event, &d.Payload, &d.State, &d.Attempts,
		&nextAttemptAt, &lastAttemptAt, &d.LastStatus, &d.LastError, &d.LastResponse, &deliveredAt, &createdAt)
	if err != nil {
		return nil, err
	}
	d.NextAttemptAt = fromNullMillis(nextAttemptAt)
	d.LastAttemptAt = fromNullMillis(lastAttemptAt)
	d.DeliveredAt = fromNullMillis(deliveredAt)
	d.CreatedAt = fromMillis(createdAt)
	return &d, nil
}
