package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

// The email outbox and settings (keygate.EmailStore). Claiming takes due
// emails with FOR UPDATE SKIP LOCKED, as for webhook deliveries, so
// senders on several instances never take the same email.

var _ keygate.EmailStore = (*Store)(nil)

const emailColumns = `id, organization_id, kind, recipients, subject, text_body, html_body, state,
	attempts, next_attempt_at, last_attempt_at, last_error, sent_at, created_at, invitation_id`

// EnqueueEmails stores the emails, and the notice first when there is one,
// in one transaction. Instances racing on one notice wait on its key: the
// first to commit wins, the others find it there.
func (s *Store) EnqueueEmails(ctx context.Context, n *keygate.TokenNotice, emails []*keygate.Email) error {
	if n == nil && len(emails) == 0 {
		return nil
	}
	if n != nil {
		n.CreatedAt = s.createdAt(n.CreatedAt)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if n != nil {
			if err := insertNotice(ctx, tx, n); err != nil {
				return err
			}
		}
		for _, e := range emails {
			e.Queue(s.createdAt(e.CreatedAt))
			_, err := tx.Exec(ctx, `INSERT INTO emails (`+emailColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
				e.ID, e.OrganizationID, e.Kind, nonNil(e.To), e.Subject, e.Text, e.HTML, e.State, e.Attempts,
				nullTS(e.NextAttemptAt), nullTS(e.LastAttemptAt), e.LastError, nullTS(e.SentAt), e.CreatedAt, e.InvitationID)
			if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
				return keygate.Errorf(keygate.ECONFLICT, "An email with this id already exists.")
			} else if err != nil {
				return err
			}
		}
		return nil
	})
}

// ClaimEmails takes due pending emails, skipping rows another claimer
// holds (outbox).
func (s *Store) ClaimEmails(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*keygate.Email, error) {
	return emailOutbox.claim(ctx, s, now, lease, limit)
}

// RecordEmailAttempt updates the email if the claim that made the attempt
// still holds.
func (s *Store) RecordEmailAttempt(ctx context.Context, a *keygate.EmailAttempt) error {
	state, next, sentAt := a.Result()
	tag, err := s.pool.Exec(ctx, `UPDATE emails
		SET state = $1, next_attempt_at = $2, last_attempt_at = $3, last_error = $4, sent_at = $5
		WHERE id = $6 AND state = 'pending' AND attempts = $7`,
		state, nullTS(next), ts(a.At), a.Error, nullTS(sentAt), a.EmailID, a.Attempt)
	if err != nil {
		return dbError(err)
	} else if tag.RowsAffected() == 1 {
		return nil
	}
	return emailOutbox.claimLost(ctx, s.pool, a.EmailID)
}

// ListEmails returns matching emails newest first, at most filter.Limit
// (default 100).
func (s *Store) ListEmails(ctx context.Context, filter keygate.EmailFilter) ([]*keygate.Email, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = 100
	}
	var w where
	w.equal("organization_id", filter.OrganizationID)
	w.equal("state", filter.State)
	rows, err := s.query(ctx, `SELECT `+emailColumns+` FROM emails`+w.String()+
		` ORDER BY created_at DESC, pos DESC LIMIT `+w.arg(limit), w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanEmail)
}

// PurgeEmails deletes finished emails created before before.
func (s *Store) PurgeEmails(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM emails WHERE state <> 'pending' AND created_at < $1`, ts(before))
	if err != nil {
		return 0, dbError(err)
	}
	return tag.RowsAffected(), nil
}

// FindEmailSettings returns the stored settings, or all kinds enabled.
func (s *Store) FindEmailSettings(ctx context.Context, organizationID string) (*keygate.EmailSettings, error) {
	var (
		disabled  []string
		updatedAt *time.Time
	)
	err := s.queryRow(ctx, `SELECT e.disabled, e.updated_at FROM organizations o
		LEFT JOIN email_settings e ON e.organization_id = o.id WHERE o.id = $1`, organizationID).Scan(&disabled, &updatedAt)
	if err != nil {
		return nil, notFound(err, "Organization")
	}
	out := &keygate.EmailSettings{OrganizationID: organizationID, Disabled: nonNil(disabled)}
	if updatedAt != nil {
		out.UpdatedAt = updatedAt.UTC()
	}
	return out, nil
}

// UpdateEmailSettings replaces the organization's settings.
func (s *Store) UpdateEmailSettings(ctx context.Context, es *keygate.EmailSettings) error {
	es.UpdatedAt = s.createdAt(es.UpdatedAt)
	_, err := s.exec(ctx, `INSERT INTO email_settings (organization_id, disabled, updated_at)
		VALUES ($1, $2, $3) ON CONFLICT (organization_id) DO UPDATE SET disabled = excluded.disabled, updated_at = excluded.updated_at`,
		es.OrganizationID, nonNil(es.Disabled), es.UpdatedAt)
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "Organization not found.")
	} else if err != nil {
		return err
	}
	return nil
}

// ListTokensForNotice walks the index on q.Field from the cursor, leaving
// out tokens that have the notice.
func (s *Store) ListTokensForNotice(ctx context.Context, q keygate.TokenNoticeQuery) ([]*keygate.Token, error) {
	switch q.Field {
	case keygate.TokenCreatedAt, keygate.TokenExpiresAt, keygate.TokenRevokedAt:
	default:
		return nil, fmt.Errorf("postgres: tokens cannot be selected by %q", q.Field)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 500
	}
	f := "t." + q.Field
	var w where
	w.add(f+" <= %s", ts(q.To))
	if q.AfterTime.IsZero() || !q.AfterTime.After(q.From) {
		w.add(f+" > %s", ts(q.From))
	} else {
		w.add("("+f+", t.id) > (%s, %s)", ts(q.AfterTime), q.AfterID)
	}
	if !q.IncludeRevoked && q.Field != keygate.TokenRevokedAt {
		w.add("t.revoked_at IS NULL")
	}
	if len(q.OrganizationIDs) > 0 {
		w.add("t.organization_id = ANY(%s)", q.OrganizationIDs)
	}
	w.add("NOT EXISTS (SELECT 1 FROM token_notices n WHERE n.token_id = t.id AND n.event = %s)", q.Event)
	rows, err := s.query(ctx, `SELECT `+prefixed("t.", tokenColumns)+` FROM tokens t`+w.String()+
		` ORDER BY `+f+`, t.id LIMIT `+w.arg(limit), w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanToken)
}

// prefixed qualifies each of a comma-separated list of columns.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func scanEmail(row pgx.Row) (*keygate.Email, error) {
	var e keygate.Email
	err := row.Scan(&e.ID, &e.OrganizationID, &e.Kind, &e.To, &e.Subject, &e.Text, &e.HTML, &e.State, &e.Attempts,
		&e.NextAttemptAt, &e.LastAttemptAt, &e.LastError, &e.SentAt, &e.CreatedAt, &e.InvitationID)
	if err != nil {
		return nil, err
	}
	e.NextAttemptAt, e.LastAttemptAt, e.SentAt = utc(e.NextAttemptAt), utc(e.LastAttemptAt), utc(e.SentAt)
	e.CreatedAt = e.CreatedAt.UTC()
	return &e, nil
}
