package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/keygate/keygate"
)

// SigningKey returns the stored signing key, storing newKey first when there
// is none. The read and the insert share one write transaction, so callers
// racing on a new database, in any process, all get the first key stored.
func (s *Store) SigningKey(ctx context.Context, newKey *keygate.SigningKey) (*keygate.SigningKey, error) {
	var key *keygate.SigningKey
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		key, err = firstSigningKey(ctx, tx)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return dbError(err)
		}
		if newKey == nil {
			return keygate.Errorf(keygate.ENOTFOUND, "No signing key is stored.")
		}
		key = &keygate.SigningKey{
			ID:         newKey.ID,
			PrivateKey: append([]byte(nil), newKey.PrivateKey...),
			CreatedAt:  s.createdAt(newKey.CreatedAt),
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO signing_keys (id, private_key, created_at) VALUES (?, ?, ?)`,
			key.ID, key.PrivateKey, millis(key.CreatedAt))
		return dbError(err)
	})
	if err != nil {
		return nil, err
	}
	key.CreatedAt = fromMillis(millis(key.CreatedAt))
	return key, nil
}

func firstSigningKey(ctx context.Context, tx *sql.Tx) (*keygate.SigningKey, error) {
	var (
		key       keygate.SigningKey
		createdAt int64
	)
	err := tx.QueryRowContext(ctx, `SELECT id, private_key, created_at FROM signing_keys
		ORDER BY created_at, rowid LIMIT 1`).Scan(&key.ID, &key.PrivateKey, &createdAt)
	if err != nil {
		return nil, err
	}
	key.CreatedAt = fromMillis(createdAt)
	return &key, nil
}
