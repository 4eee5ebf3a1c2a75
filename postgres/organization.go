package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

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
		return fmt.Errorf("postgres: encode entitlements: %w", err)
	}
	_, err = s.exec(ctx, `INSERT INTO organizations (`+organizationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		org.ID, org.Slug, org.Name, org.Plan, string(entitlements), org.MaxActiveTokens, org.CreatedAt)
	if constraintViolated(err, "organizations_slug_key") {
		return keygate.Errorf(keygate.ECONFLICT, "The organization slug %q is taken.", org.Slug)
	}
	return dbError(err)
}

// FindOrganizationByID returns ENOTFOUND for an unknown id. The gateway
// reads it with every token it loads, so it retries like FindTokenByHash.
func (s *Store) FindOrganizationByID(ctx context.Context, id string) (*keygate.Organization, error) {
	var org *keygate.Organization
	err := s.retryRead(ctx, func() (err error) {
		org, err = scanOrganization(s.queryRow(ctx, `SELECT `+organizationColumns+` FROM organizations WHERE id = $1`, id))
		return err
	})
	return org, notFound(err, "Organization")
}

// FindOrganizationBySlug returns ENOTFOUND for an unknown slug.
func (s *Store) FindOrganizationBySlug(ctx context.Context, slug string) (*keygate.Organization, error) {
	row := s.queryRow(ctx, `SELECT `+organizationColumns+` FROM organizations WHERE slug = $1`, slug)
	org, err := scanOrganization(row)
	return org, notFound(err, "Organization")
}

// ListOrganizations returns every organization ordered by slug.
func (s *Store) ListOrganizations(ctx context.Context) ([]*keygate.Organization, error) {
	rows, err := s.query(ctx, `SELECT `+organizationColumns+` FROM organizations ORDER BY slug COLLATE "C"`)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanOrganization)
}

// UpdateOrganization replaces name, plan, entitlements and the token limit,
// and publishes the change so every instance's cache drops the old plan.
func (s *Store) UpdateOrganization(ctx context.Context, org *keygate.Organization) error {
	entitlements, err := json.Marshal(org.Entitlements)
	if err != nil {
		return fmt.Errorf("postgres: encode entitlements: %w", err)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE organizations
			SET name = $1, plan = $2, entitlements = $3, max_active_tokens = $4
			WHERE id = $5`,
			org.Name, org.Plan, string(entitlements), org.MaxActiveTokens, org.ID)
		if err := affectedOne(tag, err, "Organization"); err != nil {
			return err
		}
		return s.publish(ctx, tx, keygate.Change{Kind: keygate.ChangeOrganization, ID: org.ID})
	})
}

// DeleteOrganization removes the organization and its memberships, revokes
// its active tokens, and publishes a change for each token and for the
// organization. Tokens are kept, revoked, so their history stays readable.
// A CreateToken waiting on the organization's row lock finds it gone.
func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM organizations WHERE id = $1`, id)
		if err := affectedOne(tag, err, "Organization"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE tokens SET revoked_at = $1
			WHERE organization_id = $2 AND revoked_at IS NULL RETURNING id`, ts(s.now()), id)
		if err != nil {
			return dbError(err)
		}
		revoked, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return dbError(err)
		}
		changes := make([]keygate.Change, 0, len(revoked)+1)
		for _, tokenID := range revoked {
			changes = append(changes, keygate.Change{Kind: keygate.ChangeToken, ID: tokenID})
		}
		changes = append(changes, keygate.Change{Kind: keygate.ChangeOrganization, ID: id})
		return s.publish(ctx, tx, changes...)
	})
}

func scanOrganization(row pgx.Row) (*keygate.Organization, error) {
	var (
		org          keygate.Organization
		entitlements []byte
	)
	err := row.Scan(&org.ID, &org.Slug, &org.Name, &org.Plan, &entitlements, &org.MaxActiveTokens, &org.CreatedAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(entitlements, &org.Entitlements); err != nil {
		return nil, fmt.Errorf("postgres: organization %s: decode entitlements: %w", org.ID, err)
	}
	org.CreatedAt = org.CreatedAt.UTC()
	return &org, nil
}

// collect scans every row with scan and closes rows.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, v)
	}
	return out, dbError(rows.Err())
}
