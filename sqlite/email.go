package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate"
)

// The email outbox and settings (keygate.EmailStore). Claiming runs in one
// BEGIN IMMEDIATE transaction, as for webhook deliveries, so two senders
// never claim the same email.

var _ keygate.EmailStore = (*Store)(nil)

const emailColumns = `id, organization_id, kind, recipients, subject, text_body, html_body, state,
	attempts, next_attempt_at, last_attempt_at, last_error, sent_at, created_at, invitation_id`

// EnqueueEmails stores the emails, and the notice first when there is one,
// in one transaction.
func (s *Store) EnqueueEmails(ctx context.Context, n *keygate.TokenNotice, emails []*keygate.Email) error {
	if n == nil && len(emails) == 0 {
		return nil
	}
	if n != nil {
		n.CreatedAt = s.createdAt(n.CreatedAt)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if n != nil {
			if err := insertNotice(ctx, tx, n); err != nil {
				return err
			}
		}
		for _, e := range emails {
			e.Queue(s.createdAt(e.CreatedAt))
			to, err := encodeStrings(e.To)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO emails (`+emailColumns+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				e.ID, e.OrganizationID, e.Kind, to, e.Subject, e.Text, e.HTML, e.State, e.Attempts,
				nullMillis(e.NextAttemptAt), nullMillis(e.LastAttemptAt), e.LastError, nullMillis(e.SentAt), millis(e.CreatedAt), e.InvitationID)
			if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
				return keygate.Errorf(keygate.ECONFLICT, "An email with this id already exists.")
			} else if err != nil {
				return err
			}
		}
		return nil
	})
}

// ClaimEmails takes due pending emails under the write lock (outbox).
func (s *Store) ClaimEmails(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*keygate.Email, error) {
	return emailOutbox.claim(ctx, s, now, lease, limit)
}

// RecordEmailAttempt updates the email if the claim that made the attempt
// still holds.
func (s *Store) RecordEmailAttempt(ctx context.Context, a *keygate.EmailAttempt) error {
	state, next, sentAt := a.Result()
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE emails
			SET state = ?, next_attempt_at = ?, last_attempt_at = ?, last_error = ?, sent_at = ?
			WHERE id = ? AND state = 'pending' AND attempts = ?`,
			state, nullMillis(next), millis(a.At), a.Error, nullMillis(sentAt), a.EmailID, a.Attempt)
		if err != nil {
			return dbError(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError(err)
		} else if n == 1 {
			return nil
		}
		return emailOutbox.claimLost(ctx, tx, a.EmailID)
	})
}

// ListEmails returns matching emails newest first, at most filter.Limit
// (default 100).
func (s *Store) ListEmails(ctx context.Context, filter keygate.EmailFilter) ([]*keygate.Email, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT `+emailColumns+` FROM emails
		WHERE (?1 = '' OR organization_id = ?1) AND (?2 = '' OR state = ?2)
		ORDER BY created_at DESC, rowid DESC LIMIT ?3`,
		filter.OrganizationID, filter.State, limit)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Email
	for rows.Next() {
		e, err := scanEmail(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, e)
	}
	return out, dbError(rows.Err())
}

// PurgeEmails deletes finished emails created before before.
func (s *Store) PurgeEmails(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM emails WHERE state != 'pending' AND created_at < ?`, millis(before))
		if err != nil {
			return dbError(err)
		}
		n, err = res.RowsAffected()
		return dbError(err)
	})
	return n, err
}

// FindEmailSettings returns the stored settings, or all kinds enabled.
func (s *Store) FindEmailSettings(ctx context.Context, organizationID string) (*keygate.EmailSettings, error) {
	var (
		disabled  sql.NullString
		updatedAt sql.NullInt64
	)
	err := s.queryRow(ctx, `SELECT e.disabled, e.updated_at FROM organizations o
		LEFT JOIN email_settings e ON e.organization_id = o.id WHERE o.id = ?`, organizationID).Scan(&disabled, &updatedAt)
	if err != nil {
		return nil, notFound(err, "Organization")
	}
	out := &keygate.EmailSettings{OrganizationID: organizationID, Disabled: []string{}}
	if disabled.Valid {
		if err := decodeStrings(disabled.String, &out.Disabled); err != nil {
			return nil, err
		}
		if out.Disabled == nil {
			out.Disabled = []string{}
		}
		out.UpdatedAt = fromMillis(updatedAt.Int64)
	}
	return out, nil
}

// UpdateEmailSettings replaces the organization's settings.
func (s *Store) UpdateEmailSettings(ctx context.Context, es *keygate.EmailSettings) error {
	es.UpdatedAt = s.createdAt(es.UpdatedAt)
	disabled, err := encodeStrings(es.Disabled)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO email_settings (organization_id, disabled, updated_at)
			VALUES (?, ?, ?) ON CONFLICT (organization_id) DO UPDATE SET disabled = excluded.disabled, updated_at = excluded.updated_at`,
			es.OrganizationID, disabled, millis(es.UpdatedAt))
		return dbError(err)
	})
	if keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "Organization not found.")
	}
	return err
}

// noticeFields are the columns a TokenNoticeQuery may name.
var noticeFields = map[string]bool{keygate.TokenCreatedAt: true, keygate.TokenExpiresAt: true, keygate.TokenRevokedAt: true}

// ListTokensForNotice walks the index on q.Field from the cursor, leaving
// out tokens that have the notice.
func (s *Store) ListTokensForNotice(ctx context.Context, q keygate.TokenNoticeQuery) ([]*keygate.Token, error) {
	if !noticeFields[q.Field] {
		return nil, fmt.Errorf("sqlite: tokens cannot be selected by %q", q.Field)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 500
	}
	orgs, err := encodeStrings(q.OrganizationIDs)
	if err != nil {
		return nil, err
	}
	// The cursor continues a page only past From, the window's open end.
	after, afterID := q.From, ""
	if q.AfterTime.After(q.From) {
		after, afterID = q.AfterTime, q.AfterID
	}
	f := "t." + q.Field
	rows, err := s.query(ctx, `SELECT `+prefixed("t.", tokenColumns)+` FROM tokens t
		WHERE `+f+` IS NOT NULL AND `+f+` <= ?2
		AND (`+f+` > ?1 OR (`+f+` = ?1 AND ?3 != '' AND t.id > ?3))
		AND (?4 OR t.revoked_at IS NULL)
		AND (?5 = '[]' OR t.organization_id IN (SELECT value FROM json_each(?5)))
		AND NOT EXISTS (SELECT 1 FROM token_notices n WHERE n.token_id = t.id AND n.event = ?6)
		ORDER BY `+f+`, t.id LIMIT ?7`,
		millis(after), millis(q.To), afterID, q.IncludeRevoked || q.Field == keygate.TokenRevokedAt, orgs, q.Event, limit)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Token
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, tok)
	}
	return out, dbError(rows.Err())
}

// prefixed qualifies each of a comma-separated list of columns.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func scanEmail(row rowScanner) (*keygate.Email, error) {
	var (
		e                                    keygate.Email
		to                                   string
		nextAttemptAt, lastAttemptAt, sentAt sql.NullInt64
		createdAt                            int64
	)
	err := row.Scan(&e.ID, &e.OrganizationID, &e.Kind, &to, &e.Subject, &e.Text, &e.HTML, &e.State, &e.Attempts,
		&nextAttemptAt, &lastAttemptAt, &e.LastError, &sentAt, &createdAt, &e.InvitationID)
	if err != nil {
		return nil, err
	}
	if err := decodeStrings(to, &e.To); err != nil {
		return nil, err
	}
	e.NextAttemptAt = fromNullMillis(nextAttemptAt)
	e.LastAttemptAt = fromNullMillis(lastAttemptAt)
	e.SentAt = fromNullMillis(sentAt)
	e.CreatedAt = fromMillis(createdAt)
	return &e, nil
}
