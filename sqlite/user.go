package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

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
	_, err := s.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		user.ID, user.Email, user.Name, user.PasswordHash, user.IsAdmin, millis(user.CreatedAt))
	if violatesUnique(err, "users.email") {
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
	row := s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id)
	user, err := scanUser(row)
	return user, notFound(err, "User")
}

// FindUserByEmail matches case-insensitively.
func (s *Store) FindUserByEmail(ctx context.Context, email string) (*keygate.User, error) {
	row := s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, normalizeEmail(email))
	user, err := scanUser(row)
	return user, notFound(err, "User")
}

// ListUsers returns every user ordered by email.
func (s *Store) ListUsers(ctx context.Context) ([]*keygate.User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY email`)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.User
	for rows.Next() {
		user, err := scanUser(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, user)
	}
	return out, dbError(rows.Err())
}

// UpdateUser replaces name, password hash and admin flag; the email stays.
func (s *Store) UpdateUser(ctx context.Context, user *keygate.User) error {
	res, err := s.exec(ctx,
		`UPDATE users SET name = ?, password_hash = ?, is_admin = ? WHERE id = ?`,
		user.Name, user.PasswordHash, user.IsAdmin, user.ID)
	return affectedOne(res, err, "User")
}

func scanUser(row rowScanner) (*keygate.User, error) {
	var (
		user      keygate.User
		createdAt int64
	)
	if err := row.Scan(&user.ID, &user.Email, &user.Name, &user.PasswordHash, &user.IsAdmin, &createdAt); err != nil {
		return nil, err
	}
	user.CreatedAt = fromMillis(createdAt)
	return &user, nil
}

// SetMembership adds the user to the organization, or changes the role of
// an existing membership (keeping its CreatedAt). ENOTFOUND when the user
// or the organization does not exist; keygate.OnlyOwnerError when it would
// take the owner role from the organization's only owner.
func (s *Store) SetMembership(ctx context.Context, m *keygate.Membership) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if m.Role != keygate.RoleOwner {
			if err := keepAnOwner(ctx, tx, m.OrganizationID, m.UserID); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (organization_id, user_id) DO UPDATE SET role = excluded.role`,
			m.OrganizationID, m.UserID, m.Role, millis(s.createdAt(m.CreatedAt)))
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
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := keepAnOwner(ctx, tx, organizationID, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`DELETE FROM memberships WHERE organization_id = ? AND user_id = ?`, organizationID, userID)
		return affectedOne(res, err, "Membership")
	})
}

// keepAnOwner refuses, with keygate.OnlyOwnerError, a change that takes
// the owner role from userID when they are the organization's only owner.
// It runs in the change's write transaction, which holds the database's
// write lock from this check to the commit, so no other change to the
// organization's owners comes between the check and the change.
func keepAnOwner(ctx context.Context, tx *sql.Tx, organizationID, userID string) error {
	var email string
	err := tx.QueryRowContext(ctx, `SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.organization_id = ?1 AND m.user_id = ?2 AND m.role = ?3
		AND (SELECT COUNT(*) FROM memberships WHERE organization_id = ?1 AND role = ?3) = 1`,
		organizationID, userID, keygate.RoleOwner).Scan(&email)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return dbError(err)
	}
	return keygate.OnlyOwnerError(email)
}

// ListMemberships returns matching memberships, oldest first.
func (s *Store) ListMemberships(ctx context.Context, filter keygate.MembershipFilter) ([]*keygate.Membership, error) {
	rows, err := s.query(ctx, `SELECT organization_id, user_id, role, created_at
		FROM memberships
		WHERE (?1 = '' OR organization_id = ?1) AND (?2 = '' OR user_id = ?2)
		ORDER BY created_at, organization_id, user_id`,
		filter.OrganizationID, filter.UserID)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Membership
	for rows.Next() {
		var (
			m         keygate.Membership
			createdAt int64
		)
		if err := rows.Scan(&m.OrganizationID, &m.UserID, &m.Role, &createdAt); err != nil {
			return nil, dbError(err)
		}
		m.CreatedAt = fromMillis(createdAt)
		out = append(out, &m)
	}
	return out, dbError(rows.Err())
}
