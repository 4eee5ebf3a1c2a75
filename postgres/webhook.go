package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

// Organization webhooks (keygate.WebhookStore). Claiming takes due
// deliveries with FOR UPDATE SKIP LOCKED, so dispatchers on several
// instances claim at once without waiting on each other and never take the
// same delivery; recording an attempt checks in its UPDATE that the claim
// still holds.

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
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := lockOrganization(ctx, tx, w.OrganizationID); err != nil {
			return err
		}
		if maxPerOrganization > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM webhooks WHERE organization_id = $1`, w.OrganizationID).Scan(&n); err != nil {
				return dbError(err)
			} else if n >= maxPerOrganization {
				return keygate.TooManyWebhooksError(maxPerOrganization)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			w.ID, w.OrganizationID, w.URL, nonNil(w.Events), w.Secret, w.Disabled, w.CreatedAt)
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
	row := s.queryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1`, id)
	w, err := scanWebhook(row)
	if err != nil {
		return nil, notFound(err, "Webhook")
	}
	return w, nil
}

// ListWebhooks returns an organization's endpoints, or every endpoint for
// "", oldest first.
func (s *Store) ListWebhooks(ctx context.Context, organizationID string) ([]*keygate.Webhook, error) {
	var w where
	w.equal("organization_id", organizationID)
	rows, err := s.query(ctx, `SELECT `+webhookColumns+` FROM webhooks`+w.String()+
		` ORDER BY created_at, pos`, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanWebhook)
}

// UpdateWebhook replaces URL, events and disabled; ENOTFOUND when unknown.
func (s *Store) UpdateWebhook(ctx context.Context, w *keygate.Webhook) error {
	tag, err := s.exec(ctx, `UPDATE webhooks SET url = $1, events = $2, disabled = $3 WHERE id = $4`,
		w.URL, nonNil(w.Events), w.Disabled, w.ID)
	return affectedOne(tag, err, "Webhook")
}

// DeleteWebhook removes the endpoint; its deliveries and their attempts go
// with it (ON DELETE CASCADE). ENOTFOUND when unknown.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	tag, err := s.exec(ctx, `DELETE FROM webhooks WHERE id = $1`, id)
	return affectedOne(tag, err, "Webhook")
}

func scanWebhook(row pgx.Row) (*keygate.Webhook, error) {
	var w keygate.Webhook
	if err := row.Scan(&w.ID, &w.OrganizationID, &w.URL, &w.Events, &w.Secret, &w.Disabled, &w.CreatedAt); err != nil {
		return nil, err
	}
	w.Events = nilIfEmpty(w.Events)
	w.CreatedAt = w.CreatedAt.UTC()
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
	return s.write(ctx, func(tx pgx.Tx) error {
		return s.insertDeliveries(ctx, tx, deliveries)
	})
}

// EnqueueTokenNotice records the notice and stores the deliveries in one
// transaction; ECONFLICT, and nothing stored, when the notice was already
// recorded. Instances racing on one notice wait on its key: the first to
// commit wins, the others find it there.
func (s *Store) EnqueueTokenNotice(ctx context.Context, n *keygate.TokenNotice, deliveries []*keygate.WebhookDelivery) error {
	n.CreatedAt = s.createdAt(n.CreatedAt)
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := insertNotice(ctx, tx, n); err != nil {
			return err
		}
		return s.insertDeliveries(ctx, tx, deliveries)
	})
}

// insertNotice records the notice once: ECONFLICT when it is already
// recorded, so the emails or deliveries queued with it are not.
func insertNotice(ctx context.Context, tx pgx.Tx, n *keygate.TokenNotice) error {
	tag, err := tx.Exec(ctx, `INSERT INTO token_notices (token_id, event, created_at)
		VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, n.TokenID, n.Event, n.CreatedAt)
	if err != nil {
		return dbError(err)
	} else if tag.RowsAffected() == 0 {
		return keygate.Errorf(keygate.ECONFLICT, "The %s notice for this token was already sent.", n.Event)
	}
	return nil
}

func (s *Store) insertDeliveries(ctx context.Context, tx pgx.Tx, deliveries []*keygate.WebhookDelivery) error {
	for _, d := range deliveries {
		d.Queue(s.createdAt(d.CreatedAt))
		_, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (`+deliveryColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			d.ID, d.WebhookID, d.OrganizationID, d.Event, d.Payload, d.State,
			d.Attempts, nullTS(d.NextAttemptAt), nullTS(d.LastAttemptAt), d.LastStatus, d.LastError,
			d.LastResponse, nullTS(d.DeliveredAt), d.CreatedAt)
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

// ClaimWebhookDeliveries takes due pending deliveries of enabled
// endpoints, skipping rows another claimer holds (outbox).
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*keygate.WebhookDelivery, error) {
	return deliveryOutbox.claim(ctx, s, now, lease, limit)
}

// RecordWebhookAttempt stores the attempt and the delivery's new state if
// the claim that made the attempt still holds: the delivery is pending with
// exactly a.Attempt attempts.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a *keygate.WebhookAttempt) error {
	state, next, deliveredAt := a.Result()
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries
			SET state = $1, next_attempt_at = $2, last_attempt_at = $3, last_status = $4,
				last_error = $5, last_response = $6, delivered_at = $7
			WHERE id = $8 AND state = 'pending' AND attempts = $9`,
			state, nullTS(next), ts(a.At), a.Status, a.Error, a.Response, nullTS(deliveredAt),
			a.DeliveryID, a.Attempt)
		if err != nil {
			return dbError(err)
		} else if tag.RowsAffected() == 0 {
			return deliveryOutbox.claimLost(ctx, tx, a.DeliveryID)
		}
		_, err = tx.Exec(ctx, `INSERT INTO webhook_attempts (`+attemptColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			a.DeliveryID, a.Attempt, ts(a.At), a.Duration.Milliseconds(), a.Status, a.Error, a.Response,
			a.Delivered, nullTS(next))
		return dbError(err)
	})
}

// RedeliverWebhook makes a finished delivery pending again, due at at.
func (s *Store) RedeliverWebhook(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM webhook_deliveries WHERE id = $1 FOR UPDATE`, id).Scan(&state)
		if err != nil {
			return notFound(err, "Webhook delivery")
		} else if state == keygate.DeliveryPending {
			return keygate.Errorf(keygate.ECONFLICT, "The webhook delivery is still pending.")
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1
			WHERE id = $2`, ts(at), id)
		return dbError(err)
	})
}

// FindWebhookDelivery returns ENOTFOUND for an unknown id.
func (s *Store) FindWebhookDelivery(ctx context.Context, id string) (*keygate.WebhookDelivery, error) {
	row := s.queryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, id)
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
	var w where
	w.equal("organization_id", filter.OrganizationID)
	w.equal("webhook_id", filter.WebhookID)
	w.equal("state", filter.State)
	query := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries` + w.String()
	query += ` ORDER BY created_at DESC, pos DESC LIMIT ` + w.arg(limit)
	rows, err := s.query(ctx, query, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanDelivery)
}

// ListWebhookAttempts returns a delivery's attempts, oldest first.
func (s *Store) ListWebhookAttempts(ctx context.Context, deliveryID string) ([]*keygate.WebhookAttempt, error) {
	rows, err := s.query(ctx, `SELECT `+attemptColumns+`
		FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt`, deliveryID)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, func(row pgx.Row) (*keygate.WebhookAttempt, error) {
		var (
			a    keygate.WebhookAttempt
			took int64
		)
		err := row.Scan(&a.DeliveryID, &a.Attempt, &a.At, &took, &a.Status, &a.Error, &a.Response, &a.Delivered, &a.NextAttemptAt)
		if err != nil {
			return nil, err
		}
		a.At = a.At.UTC()
		a.Duration = time.Duration(took) * time.Millisecond
		a.NextAttemptAt = utc(a.NextAttemptAt)
		return &a, nil
	})
}

// PurgeWebhooks deletes finished deliveries (with their attempts) and
// token notices created before before.
func (s *Store) PurgeWebhooks(ctx context.Context, before time.Time) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < $1`, ts(before))
		b.Queue(`DELETE FROM token_notices WHERE created_at < $1`, ts(before))
		return dbError(tx.SendBatch(ctx, b).Close())
	})
}

func scanDelivery(row pgx.Row) (*keygate.WebhookDelivery, error) {
	var d keygate.WebhookDelivery
	err := row.Scan(&d.ID, &d.WebhookID, &d.OrganizationID, &d.Event, &d.Payload, &d.State, &d.Attempts,
		&d.NextAttemptAt, &d.LastAttemptAt, &d.LastStatus, &d.LastError, &d.LastResponse, &d.DeliveredAt, &d.CreatedAt)
	if err != nil {
		return nil, err
	}
	d.NextAttemptAt, d.LastAttemptAt, d.DeliveredAt = utc(d.NextAttemptAt), utc(d.LastAttemptAt), utc(d.DeliveredAt)
	d.CreatedAt = d.CreatedAt.UTC()
	return &d, nil
}
