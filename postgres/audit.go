package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

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
	if tx, ok := s.openTx(ctx); ok {
		return s.appendAuditEntry(ctx, tx, e)
	}
	return s.appendAuditEntry(ctx, s.pool, e)
}

// RecordChange runs change and appends its entries in one transaction.
func (s *Store) RecordChange(ctx context.Context, change func(ctx context.Context) ([]*keygate.AuditEntry, error)) error {
	return s.write(ctx, func(tx pgx.Tx) error {
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

func (s *Store) appendAuditEntry(ctx context.Context, db queryRower, e *keygate.AuditEntry) error {
	if e.ID == "" {
		e.ID = keygate.NewID("aud")
	}
	e.At = s.createdAt(e.At)
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage(`{}`)
	}
	err := db.QueryRow(ctx, `INSERT INTO audit_log (id, at, action, actor_type, actor_id, actor_name, actor_site_admin,
		address, user_agent, organization_id, target_id, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq`,
		e.ID, ts(e.At), e.Action, e.Actor.Type, e.Actor.ID, e.Actor.Name, e.Actor.SiteAdmin,
		e.Actor.Address, e.Actor.UserAgent, e.OrganizationID, e.TargetID, string(details)).Scan(&e.Seq)
	return dbError(err)
}

// ListAuditEntries returns matching entries, newest first.
func (s *Store) ListAuditEntries(ctx context.Context, f keygate.AuditFilter) ([]*keygate.AuditEntry, error) {
	var w where
	w.equal("organization_id", f.OrganizationID)
	w.equal("action", f.Action)
	if actor := keygate.NormalizeActorFilter(f.Actor); actor != "" {
		// lower() under the "C" collation folds ASCII letters only, as
		// SQLite's does; the database's own collation may fold Unicode
		// and make PostgreSQL find actors SQLite does not
		// (AuditFilter.Actor).
		w.add(`(actor_id = %s OR lower(actor_name COLLATE "C") = lower(%s::text COLLATE "C"))`, actor, actor)
	}
	if !f.From.IsZero() {
		w.add("at >= %s", ts(f.From))
	}
	if !f.To.IsZero() {
		w.add("at < %s", ts(f.To))
	}
	if f.Before > 0 {
		w.add("seq < %s", f.Before)
	}
	limit := 50
	if f.Limit > 0 {
		limit = min(f.Limit, keygate.MaxAuditPage)
	}
	rows, err := s.query(ctx, `SELECT `+auditColumns+` FROM audit_log`+w.String()+
		` ORDER BY seq DESC LIMIT `+w.arg(limit), w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, func(row pgx.Row) (*keygate.AuditEntry, error) {
		var (
			e       keygate.AuditEntry
			details []byte
		)
		err := row.Scan(&e.Seq, &e.ID, &e.At, &e.Action, &e.Actor.Type, &e.Actor.ID, &e.Actor.Name, &e.Actor.SiteAdmin,
			&e.Actor.Address, &e.Actor.UserAgent, &e.OrganizationID, &e.TargetID, &details)
		e.At = e.At.UTC()
		e.Details = json.RawMessage(details)
		return &e, err
	})
}

// PurgeAuditEntries deletes entries older than before. The append-only
// trigger lets a DELETE through only for entries older than the cutoff
// its transaction names.
func (s *Store) PurgeAuditEntries(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('keygate.audit_purge_before', $1, true)`,
			ts(before).Format(time.RFC3339Nano)); err != nil {
			return dbError(err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE at < $1`, ts(before))
		if err != nil {
			return dbError(err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}
