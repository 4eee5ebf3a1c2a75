package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

var _ keygate.InvitationStore = (*Store)(nil)

const invitationColumns = `id, organization_id, email, role, hash, invited_by, created_at, expires_at,
	accepted_at, accepted_by, revoked_at`

// CreateInvitation stores inv, filling in an empty ID and a zero CreatedAt.
func (s *Store) CreateInvitation(ctx context.Context, inv *keygate.Invitation) error {
	if inv.ID == "" {
		inv.ID = keygate.NewID("inv")
	}
	inv.Email = normalizeEmail(inv.Email)
	inv.CreatedAt = s.createdAt(inv.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO invitations (`+invitationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		inv.ID, inv.OrganizationID, inv.Email, inv.Role, inv.Hash, inv.InvitedBy,
		inv.CreatedAt, ts(inv.ExpiresAt), nullTS(inv.AcceptedAt), inv.AcceptedBy, nullTS(inv.RevokedAt))
	switch err := dbError(err); keygate.ErrorCode(err) {
	case keygate.ENOTFOUND:
		return keygate.Errorf(keygate.ENOTFOUND, "Organization not found.")
	case keygate.ECONFLICT:
		return keygate.Errorf(keygate.ECONFLICT, "An invitation with this id or secret already exists.")
	default:
		return err
	}
}

// FindInvitationByHash returns the invitation whatever its state.
func (s *Store) FindInvitationByHash(ctx context.Context, hash string) (*keygate.Invitation, error) {
	var inv *keygate.Invitation
	err := s.retryRead(ctx, func() (err error) {
		inv, err = scanInvitation(s.queryRow(ctx,
			`SELECT `+invitationColumns+` FROM invitations WHERE hash = $1`, hash))
		return err
	})
	return inv, notFound(err, "Invitation")
}

// ListInvitations returns matching invitations, newest first.
func (s *Store) ListInvitations(ctx context.Context, filter keygate.InvitationFilter) ([]*keygate.Invitation, error) {
	var w where
	w.equal("organization_id", filter.OrganizationID)
	if !filter.PendingAt.IsZero() {
		w.add("accepted_at IS NULL AND revoked_at IS NULL AND expires_at > %s", ts(filter.PendingAt))
	}
	if !filter.CreatedSince.IsZero() {
		w.add("created_at >= %s", ts(filter.CreatedSince))
	}
	rows, err := s.query(ctx, `SELECT `+invitationColumns+` FROM invitations`+w.String()+
		` ORDER BY created_at DESC, pos DESC`, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanInvitation)
}

// AcceptInvitation marks the invitation accepted and adds the membership
// in one transaction. The conditional update takes the invitation's row
// lock: a concurrent accept waits for it, then finds the row no longer
// pending and changes nothing.
func (s *Store) AcceptInvitation(ctx context.Context, hash, userID string, at time.Time) (*keygate.Invitation, bool, error) {
	var (
		inv   *keygate.Invitation
		added bool
	)
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		inv, err = scanInvitation(tx.QueryRow(ctx, `UPDATE invitations SET accepted_at = $1, accepted_by = $2
			WHERE hash = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1
			RETURNING `+invitationColumns, ts(at), userID, hash))
		if err != nil {
			return notFound(err, "Invitation")
		}
		tag, err := tx.Exec(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, user_id) DO NOTHING`,
			inv.OrganizationID, userID, inv.Role, ts(at))
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ENOTFOUND {
			return keygate.Errorf(keygate.ENOTFOUND, "User not found.")
		} else if err != nil {
			return err
		}
		added = tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return inv, added, nil
}

// RevokeInvitation returns ENOTFOUND unless the organization's invitation
// is neither accepted nor revoked.
func (s *Store) RevokeInvitation(ctx context.Context, organizationID, id string, at time.Time) error {
	tag, err := s.exec(ctx, `UPDATE invitations SET revoked_at = $1
		WHERE id = $2 AND organization_id = $3 AND accepted_at IS NULL AND revoked_at IS NULL`,
		ts(at), id, organizationID)
	return affectedOne(tag, err, "Invitation")
}

func scanInvitation(row pgx.Row) (*keygate.Invitation, error) {
	var inv keygate.Invitation
	if err := row.Scan(&inv.ID, &inv.OrganizationID, &inv.Email, &inv.Role, &inv.Hash, &inv.InvitedBy,
		&inv.CreatedAt, &inv.ExpiresAt, &inv.AcceptedAt, &inv.AcceptedBy, &inv.RevokedAt); err != nil {
		return nil, err
	}
	inv.CreatedAt = inv.CreatedAt.UTC()
	inv.ExpiresAt = inv.ExpiresAt.UTC()
	inv.AcceptedAt = utc(inv.AcceptedAt)
	inv.RevokedAt = utc(inv.RevokedAt)
	return &inv, nil
}
