package sqlite

import (
	"context"
	"database/sql"
	"time"

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
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, inv.OrganizationID, inv.Email, inv.Role, inv.Hash, inv.InvitedBy,
		millis(inv.CreatedAt), millis(inv.ExpiresAt), nullMillis(inv.AcceptedAt), inv.AcceptedBy, nullMillis(inv.RevokedAt))
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
	row := s.queryRow(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE hash = ?`, hash)
	inv, err := scanInvitation(row)
	return inv, notFound(err, "Invitation")
}

// ListInvitations returns matching invitations, newest first.
func (s *Store) ListInvitations(ctx context.Context, filter keygate.InvitationFilter) ([]*keygate.Invitation, error) {
	pending := int64(-1)
	if !filter.PendingAt.IsZero() {
		pending = millis(filter.PendingAt)
	}
	since := int64(-1)
	if !filter.CreatedSince.IsZero() {
		since = millis(filter.CreatedSince)
	}
	rows, err := s.query(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE (?1 = '' OR organization_id = ?1)
		AND (?2 < 0 OR (accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?2))
		AND (?3 < 0 OR created_at >= ?3)
		ORDER BY created_at DESC, rowid DESC`, filter.OrganizationID, pending, since)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Invitation
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, inv)
	}
	return out, dbError(rows.Err())
}

// AcceptInvitation marks the invitation accepted and adds the membership
// in one write transaction: the conditional update lets one accept win.
func (s *Store) AcceptInvitation(ctx context.Context, hash, userID string, at time.Time) (*keygate.Invitation, bool, error) {
	var (
		inv   *keygate.Invitation
		added bool
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `UPDATE invitations SET accepted_at = ?1, accepted_by = ?2
			WHERE hash = ?3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?1
			RETURNING `+invitationColumns, millis(at), userID, hash)
		var err error
		if inv, err = scanInvitation(row); err != nil {
			return notFound(err, "Invitation")
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (organization_id, user_id) DO NOTHING`,
			inv.OrganizationID, userID, inv.Role, millis(at))
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ENOTFOUND {
			return keygate.Errorf(keygate.ENOTFOUND, "User not found.")
		} else if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		added = n == 1
		return dbError(err)
	})
	if err != nil {
		return nil, false, err
	}
	return inv, added, nil
}

// RevokeInvitation returns ENOTFOUND unless the organization's invitation
// is neither accepted nor revoked.
func (s *Store) RevokeInvitation(ctx context.Context, organizationID, id string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE invitations SET revoked_at = ?
		WHERE id = ? AND organization_id = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
		millis(at), id, organizationID)
	return affectedOne(res, err, "Invitation")
}

func scanInvitation(row rowScanner) (*keygate.Invitation, error) {
	var (
		inv                  keygate.Invitation
		createdAt, expiresAt int64
		acceptedAt, revoked  sql.NullInt64
	)
	if err := row.Scan(&inv.ID, &inv.OrganizationID, &inv.Email, &inv.Role, &inv.Hash, &inv.InvitedBy,
		&createdAt, &expiresAt, &acceptedAt, &inv.AcceptedBy, &revoked); err != nil {
		return nil, err
	}
	inv.CreatedAt = fromMillis(createdAt)
	inv.ExpiresAt = fromMillis(expiresAt)
	inv.AcceptedAt = fromNullMillis(acceptedAt)
	inv.RevokedAt = fromNullMillis(revoked)
	return &inv, nil
}
