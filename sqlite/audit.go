package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/keygate/keygate"
)

// auditColumns are an entry's columns as ListAuditEntries reads them. An
// admin key acts as a site administrator whatever actor_site_admin says:
// its entries from before that column existed (migration 0013) carry
// false, and must not show its address and user agent to an
// organization's owners (keygate.Actor.ForOrganization).
const auditColumns = `seq, id, at, action, actor_type, actor_id, actor_name,
	(actor_site_admin OR actor_type = '` + keygate.ActorAdminKey + `'),
	address, user_agent, organization_id, target_id, details`

// AppendAuditEntry stores e, filling in ID, Seq and a zero At.
func (s *Store) AppendAuditEntry(ctx context.Context, e *keygate.AuditEntry) error {
	return s.write(ctx, func(tx *sql.Tx) error { return s.appendAuditEntry(ctx, tx, e) })
}

// RecordChange runs change and appends its entries in one transaction.
func (s *Store) RecordChange(ctx context.Context, change func(ctx context.Context) ([]*keygate.AuditEntry, error)) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		entries, err := change(context.WithValue(ctx, openTx{s}, tx))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := s.appendAuditEntry(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) appendAuditEntry(ctx context.Context, tx *sql.Tx, e *keygate.AuditEntry) error {
	if e.ID == "" {
		e.ID = keygate.NewID("aud")
	}
	e.At = s.createdAt(e.At)
	err := tx.QueryRowContext(ctx, `INSERT INTO audit_log (id, at, action, actor_type, actor_id, actor_name, actor_site_admin,
		address, user_agent, organization_id, target_id, details)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		e.ID, millis(e.At), e.Action, e.Actor.Type, e.Actor.ID, e.Actor.Name, e.Actor.SiteAdmin,
		e.Actor.Address, e.Actor.UserAgent, e.OrganizationID, e.TargetID, string(auditDetails(e.Details))).Scan(&e.Seq)
	return dbError(err)
}

// auditDetails is what is stored for an entry's details: "{}" when empty.
func auditDetails(d json.RawMessage) json.RawMessage {
	if len(d) == 0 {
		return json.RawMessage(`{}`)
	}
	return d
}

// ListAuditEntries returns matching entries, newest first.
func (s *Store) ListAuditEntries(ctx context.Context, f keygate.AuditFilter) ([]*keygate.AuditEntry, error) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if f.OrganizationID != "" {
		add("organization_id = ?", f.OrganizationID)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if actor := keygate.NormalizeActorFilter(f.Actor); actor != "" {
		// SQLite's lower() folds ASCII letters only, the rule
		// AuditFilter.Actor gives.
		conds = append(conds, "(actor_id = ? OR lower(actor_name) = lower(?))")
		args = append(args, actor, actor)
	}
	if !f.From.IsZero() {
		add("at >= ?", millis(f.From))
	}
	if !f.To.IsZero() {
		add("at < ?", millis(f.To))
	}
	if f.Before > 0 {
		add("seq < ?", f.Before)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, auditLimit(f.Limit))
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.AuditEntry
	for rows.Next() {
		var (
			e       keygate.AuditEntry
			at      int64
			details string
		)
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.Action, &e.Actor.Type, &e.Actor.ID, &e.Actor.Name, &e.Actor.SiteAdmin,
			&e.Actor.Address, &e.Actor.UserAgent, &e.OrganizationID, &e.TargetID, &details); err != nil {
			return nil, dbError(err)
		}
		e.At = fromMillis(at)
		e.Details = json.RawMessage(details)
		out = append(out, &e)
	}
	return out, dbError(rows.Err())
}

func auditLimit(n int) int {
	if n <= 0 {
		return 50
	}
	return min(n, keygate.MaxAuditPage)
}

// PurgeAuditEntries deletes entries older than before. The append-only
// trigger lets a DELETE through only for entries older than the cutoff
// the transaction names in audit_log_purge, reset before it commits.
func (s *Store) PurgeAuditEntries(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE audit_log_purge SET before = ? WHERE id = 1`, millis(before)); err != nil {
			return dbError(err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE at < ?`, millis(before))
		if err != nil {
			return dbError(err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return dbError(err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE audit_log_purge SET before = 0 WHERE id = 1`)
		return dbError(err)
	})
	return n, err
}
