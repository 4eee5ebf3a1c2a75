package sqlite

import (
	"context"
	"database/sql"
	"time"

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
	_, err := s.exec(ctx, `INSERT INTO admin_keys (`+adminKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, k.Hint, millis(k.CreatedAt), nullMillis(k.RevokedAt))
	return dbError(err)
}

// FindAdminKeyByHash returns ENOTFOUND for unknown and revoked keys alike:
// unlike API tokens, nobody needs to be told why an admin key failed.
func (s *Store) FindAdminKeyByHash(ctx context.Context, hash string) (*keygate.AdminKey, error) {
	row := s.queryRow(ctx,
		`SELECT `+adminKeyColumns+` FROM admin_keys WHERE hash = ? AND revoked_at IS NULL`, hash)
	k, err := scanAdminKey(row)
	return k, notFound(err, "Admin key")
}

// ListAdminKeys returns the keys not revoked, newest first.
func (s *Store) ListAdminKeys(ctx context.Context) ([]*keygate.AdminKey, error) {
	rows, err := s.query(ctx, `SELECT `+adminKeyColumns+` FROM admin_keys
		WHERE revoked_at IS NULL ORDER BY created_at DESC, rowid DESC`)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.AdminKey
	for rows.Next() {
		k, err := scanAdminKey(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, k)
	}
	return out, dbError(rows.Err())
}

// RevokeAdminKey returns ENOTFOUND when the key is unknown or already revoked.
func (s *Store) RevokeAdminKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx,
		`UPDATE admin_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, millis(at), id)
	return affectedOne(res, err, "Admin key")
}

func scanAdminKey(row rowScanner) (*keygate.AdminKey, error) {
	var (
		k         keygate.AdminKey
		createdAt int64
		revokedAt sql.NullInt64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &k.Hint, &createdAt, &revokedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = fromMillis(createdAt)
	k.RevokedAt = fromNullMillis(revokedAt)
	return &k, nil
}
