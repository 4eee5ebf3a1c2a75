package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

// SigningKey returns the stored signing key, storing newKey first when there
// is none. The read and the insert share one transaction holding an
// advisory lock, so instances starting together on a new database all get
// the first key stored.
func (s *Store) SigningKey(ctx context.Context, newKey *keygate.SigningKey) (*keygate.SigningKey, error) {
	var key *keygate.SigningKey
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockSigningKey)); err != nil {
			return dbError(err)
		}
		var err error
		key, err = firstSigningKey(ctx, tx)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
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
		_, err = tx.Exec(ctx, `INSERT INTO signing_keys (id, private_key, created_at) VALUES ($1, $2, $3)`,
			key.ID, key.PrivateKey, key.CreatedAt)
		return dbError(err)
	})
	if err != nil {
		return nil, err
	}
	return key, nil
}

func firstSigningKey(ctx context.Context, tx pgx.Tx) (*keygate.SigningKey, error) {
	var key keygate.SigningKey
	err := tx.QueryRow(ctx, `SELECT id, private_key, created_at FROM signing_keys
		ORDER BY created_at, pos LIMIT 1`).Scan(&key.ID, &key.PrivateKey, &key.CreatedAt)
	if err != nil {
		return nil, err
	}
	key.CreatedAt = key.CreatedAt.UTC()
	return &key, nil
}
