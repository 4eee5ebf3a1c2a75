package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

const adminKeyColumns = `id, name, hash, hint, created_at, revoked_at`

// CreateAdminKey stores a management key, filling in an empty ID and
// CreatedAt; ECONFLICT when the id or hash is already stored.
func (s *Store) CreateAdminKey(ctx context.Context, k *keygate.AdminKey) error {
	if k.ID == "" {
		k.ID = keygate.NewID("adm")
	}
	k.CreatedAt = s.createdAt(k.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO admin_keys (`+adminKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.Name, k.Hash, k.Hint, k.CreatedAt, nullTS(k.RevokedAt))
	return dbError(err)
}

// FindAdminKeyByHash returns ENOTFOUND for unknown and revoked keys alike:
// unlike API tokens, nobody needs to be told why an admin key failed.
func (s *Store) FindAdminKeyByHash(ctx context.Context, hash string) (*keygate.AdminKey, error) {
	var k *keygate.AdminKey
	err := s.retryRead(ctx, func() (err error) {
		k, err = scanAdminKey(s.queryRow(ctx,
			`SELECT `+adminKeyColumns+` FROM admin_keys WHERE hash = $1 AND revoked_at IS NULL`, hash))
		return err
	})
	return k, notFound(err, "Admin key")
}

// ListAdminKeys returns the keys not revoked, newest first.
func (s *Store) ListAdminKeys(ctx context.Context) ([]*keygate.AdminKey, error) {
	rows, err := s.query(ctx, `SELECT `+adminKeyColumns+` FROM admin_keys
		WHERE revoked_at IS NULL ORDER BY created_at DESC, pos DESC`)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanAdminKey)
}

// RevokeAdminKey returns ENOTFOUND when the key is unknown or already revoked.
func (s *Store) RevokeAdminKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.exec(ctx,
		`UPDATE admin_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, ts(at), id)
	return affectedOne(tag, err, "Admin key")
}

func scanAdminKey(row pgx.Row) (*keygate.AdminKey, error) {
	var k keygate.AdminKey
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &k.Hint, &k.CreatedAt, &k.RevokedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.RevokedAt = utc(k.RevokedAt)
	return &k, nil
}
