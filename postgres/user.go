package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

const userColumns = `id, email, name, password_hash, is_admin, created_at`

// CreateUser stores user with its email lower-cased, filling in an empty ID
// and CreatedAt. Emails are unique regardless of case.
func (s *Store) CreateUser(ctx context.Context, user *keygate.User) error {
	if user.ID == "" {
		user.ID = keygate.NewID("usr")
	}
	user.Email = normalizeEmail(user.Email)
	user.CreatedAt = s.createdAt(user.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		user.ID, user.Email, user.Name, user.PasswordHash, user.IsAdmin, user.CreatedAt)
	if constraintViolated(err, "users_email_key") {
		return keygate.Errorf(keygate.ECONFLICT, "A user with email %q already exists.", user.Email)
	}
	return dbError(err)
}

// normalizeEmail is the stored form of an email: lower-case, so lookups in
// any case find it and the unique index rejects case variants.
func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// FindUserByID returns ENOTFOUND for an unknown id.
func (s *Store) FindUserByID(ctx context.Context, id string) (*keygate.User, error) {
	row := s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
	user, err := scanUser(row)
	return user, notFound(err, "User")
}

// FindUserByEmail matches case-insensitively.
func (s *Store) FindUserByEmail(ctx context.Context, email string) (*keygate.User, error) {
	row := s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, normalizeEmail(email))
	user, err := scanUser(row)
	return user, notFound(err, "User")
}

// ListUsers returns every user ordered by email.
func (s *Store) ListUsers(ctx context.Context) ([]*keygate.User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY email COLLATE "C"`)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanUser)
}

// UpdateUser replaces name, password hash and admin flag; the email stays.
func (s *Store) UpdateUser(ctx context.Context, user *keygate.User) error {
	tag, err := s.exec(ctx,
		`UPDATE users SET name = $1, password_hash = $2, is_admin = $3 WHERE id = $4`,
		user.Name, user.PasswordHash, user.IsAdmin, user.ID)
	return affectedOne(tag, err, "User")
}

func scanUser(row pgx.Row) (*keygate.User, error) {
	var user keygate.User
	if err := row.Scan(&user.ID, &user.Email, &user.Name, &user.PasswordHash, &user.IsAdmin, &user.CreatedAt); err != nil {
		return nil, err
	}
	user.CreatedAt = user.CreatedAt.UTC()
	return &user, nil
}

// SetMembership adds the user to the organization, or changes the role of
// an existing membership (keeping its CreatedAt). ENOTFOUND when the user
// or the organization does not exist; keygate.OnlyOwnerError when it would
// take the owner role from the organization's only owner.
func (s *Store) SetMembership(ctx context.Context, m *keygate.Membership) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if m.Role != keygate.RoleOwner {
			if err := keepAnOwner(ctx, tx, m.OrganizationID, m.UserID); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role`,
			m.OrganizationID, m.UserID, m.Role, s.createdAt(m.CreatedAt))
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ENOTFOUND {
			return keygate.Errorf(keygate.ENOTFOUND, "User or organization not found.")
		} else if err != nil {
			return err
		}
		return nil
	})
}

// DeleteMembership returns ENOTFOUND when the user is not a member, and
// keygate.OnlyOwnerError when they are the organization's only owner.
func (s *Store) DeleteMembership(ctx context.Context, organizationID, userID string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := keepAnOwner(ctx, tx, organizationID, userID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx,
			`DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2`, organizationID, userID)
		return affectedOne(tag, err, "Membership")
	})
}

// keepAnOwner refuses, with keygate.OnlyOwnerError, a change that takes
// the owner role from userID when they are the organization's only owner.
// It first locks the organization's row until the transaction ends: two
// owners demoting each other at once, on any instance, take turns, and the
// second counts the owners after the first has committed. (A count alone,
// under READ COMMITTED, would let both see two owners.) ENOTFOUND when
// the organization does not exist.
func keepAnOwner(ctx context.Context, tx pgx.Tx, organizationID, userID string) error {
	if err := lockOrganization(ctx, tx, organizationID); err != nil {
		return err
	}
	var email string
	err := tx.QueryRow(ctx, `SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.organization_id = $1 AND m.user_id = $2 AND m.role = $3
		AND (SELECT COUNT(*) FROM memberships WHERE organization_id = $1 AND role = $3) = 1`,
		organizationID, userID, keygate.RoleOwner).Scan(&email)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	} else if err != nil {
		return dbError(err)
	}
	return keygate.OnlyOwnerError(email)
}

// ListMemberships returns matching memberships, oldest first.
func (s *Store) ListMemberships(ctx context.Context, filter keygate.MembershipFilter) ([]*keygate.Membership, error) {
	var w where
	w.equal("organization_id", filter.OrganizationID)
	w.equal("user_id", filter.UserID)
	rows, err := s.query(ctx, `SELECT organization_id, user_id, role, created_at FROM memberships`+
		w.String()+` ORDER BY created_at, organization_id COLLATE "C", user_id COLLATE "C"`, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, func(row pgx.Row) (*keygate.Membership, error) {
		var m keygate.Membership
		if err := row.Scan(&m.OrganizationID, &m.UserID, &m.Role, &m.CreatedAt); err != nil {
			return nil, err
		}
		m.CreatedAt = m.CreatedAt.UTC()
		return &m, nil
	})
}
