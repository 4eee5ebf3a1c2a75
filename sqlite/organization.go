package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/keygate/keygate"
)

const organizationColumns = `id, slug, name, plan, entitlements, max_active_tokens, created_at`

// CreateOrganization stores org, filling in an empty ID and CreatedAt.
func (s *Store) CreateOrganization(ctx context.Context, org *keygate.Organization) error {
	if org.ID == "" {
		org.ID = keygate.NewID("org")
	}
	org.CreatedAt = s.createdAt(org.CreatedAt)
	entitlements, err := json.Marshal(org.Entitlements)
	if err != nil {
		return fmt.Errorf("sqlite: encode entitlements: %w", err)
	}
	_, err = s.exec(ctx, `INSERT INTO organizations (`+organizationColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		org.ID, org.Slug, org.Name, org.Plan, string(entitlements), org.MaxActiveTokens, millis(org.CreatedAt))
	if violatesUnique(err, "organizations.slug") {
		return keygate.Errorf(keygate.ECONFLICT, "The organization slug %q is taken.", org.Slug)
	}
	return dbError(err)
}

// FindOrganizationByID returns ENOTFOUND for an unknown id.
func (s *Store) FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error) {
	row := s.queryRow(ctx, `SELECT `+organizationColumns+` FROM organizations WHERE id = ?`, id)
	org, err := scanOrganization(row)
	return org, notFound(err, "Organization")
}

// FindOrganizationBySlug returns ENOTFOUND for an unknown slug.
func (s *Store) FindOrganizationBySlug(ctx context.Context, slug string) (*keygate.Organization, error) {
	row := s.queryRow(ctx, `SELECT `+organizationColumns+` FROM organizations WHERE slug = ?`, slug)
	org, err := scanOrganization(row)
	return org, notFound(err, "Organization")
}

// ListOrganizations returns every organization ordered by slug.
func (s *Store) ListOrganizations(ctx context.Context) ([]*keygate.Organization, error) {
	rows, err := s.query(ctx, `SELECT `+organizationColumns+` FROM organizations ORDER BY slug`)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Organization
	for rows.Next() {
		org, err := scanOrganization(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, org)
	}
	return out, dbError(rows.Err())
}

// UpdateOrganization replaces name, plan, entitlements and the token limit,
// and publishes the change so caches holding the old plan drop it.
func (s *Store) UpdateOrganization(ctx context.Context, org *keygate.Organization) error {
	entitlements, err := json.Marshal(org.Entitlements)
	if err != nil {
		return fmt.Errorf("sqlite: encode entitlements: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE organizations
			SET name = ?, plan = ?, entitlements = ?, max_active_tokens = ?
			WHERE id = ?`,
			org.Name, org.Plan, string(entitlements), org.MaxActiveTokens, org.ID)
		if err := affectedOne(res, err, "Organization"); err != nil {
			return err
		}
		return s.publish(ctx, tx, keygate.ChangeOrganization, org.ID)
	})
}

// DeleteOrganization removes the organization and its memberships, revokes
// its active tokens, and publishes a change for each token and for the
// organization. Tokens are kept, revoked, so their history stays readable.
func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM organizations WHERE id = ?`, id)
		if err := affectedOne(res, err, "Organization"); err != nil {
			return err
		}
		revoked, err := revokeOrganizationTokens(ctx, tx, id, s.now())
		if err != nil {
			return err
		}
		for _, tokenID := range revoked {
			if err := s.publish(ctx, tx, keygate.ChangeToken, tokenID); err != nil {
				return err
			}
		}
		return s.publish(ctx, tx, keygate.ChangeOrganization, id)
	})
}

func scanOrganization(row rowScanner) (*keygate.Organization, error) {
	var (
		org          keygate.Organization
		entitlements string
		createdAt    int64
	)
	err := row.Scan(&org.ID, &org.Slug, &org.Name, &org.Plan, &entitlements, &org.MaxActiveTokens, &createdAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(entitlements), &org.Entitlements); err != nil {
		return nil, fmt.Errorf("sqlite: organization %s: decode entitlements: %w", org.ID, err)
	}
	org.CreatedAt = fromMillis(createdAt)
	return &org, nil
}
