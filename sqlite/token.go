package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keygate/keygate"
)

const tokenColumns = `id, organization_id, api, name, scopes, environment, hash, hint,
	created_at, created_by, last_used_at, expires_at, revoked_at,
	rotated_at, previous_hash, previous_hash_expires_at`

// CreateToken stores tok unless the organization already has maxActive
// active tokens for tok.API (0: no limit). The count and the insert run in
// one BEGIN IMMEDIATE transaction, so no other writer, in this process or
// another, can slip a token in between. ENOTFOUND when the organization
// does not exist; ECONFLICT when the limit is reached or the hash or id is
// already stored.
func (s *Store) CreateToken(ctx context.Context, tok *keygate.Token, maxActive int) error {
	if tok.ID == "" {
		tok.ID = keygate.NewID("tok")
	}
	tok.CreatedAt = s.createdAt(tok.CreatedAt)
	scopes, err := encodeScopes(tok.Scopes)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := organizationExists(ctx, tx, tok.OrganizationID); err != nil {
			return err
		}
		if maxActive > 0 {
			active, err := countActiveTokens(ctx, tx, tok.OrganizationID, tok.API, s.now())
			if err != nil {
				return err
			} else if active >= maxActive {
				return keygate.TooManyTokensError(maxActive)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tok.ID, tok.OrganizationID, tok.API, tok.Name, scopes, tok.Environment, tok.Hash, tok.Hint,
			millis(tok.CreatedAt), tok.CreatedBy,
			nullMillis(tok.LastUsedAt), nullMillis(tok.ExpiresAt), nullMillis(tok.RevokedAt),
			nullMillis(tok.RotatedAt), nullString(tok.PreviousHash), nullMillis(tok.PreviousHashExpiresAt))
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
			return keygate.Errorf(keygate.ECONFLICT, "A token with this id or hash already exists.")
		} else if err != nil {
			return err
		}
		// Caches may hold the new hash as unknown.
		return s.publish(ctx, tx, keygate.ChangeTokenCreated, tok.ID)
	})
}

func organizationExists(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM organizations WHERE id = ?`, id).Scan(&n); err != nil {
		return dbError(err)
	} else if n == 0 {
		return keygate.Errorf(keygate.ENOTFOUND, "Organization not found.")
	}
	return nil
}

// countActiveTokens counts the tokens of an organization for an API that are
// neither revoked nor expired at now, matching keygate.Token.Active.
func countActiveTokens(ctx context.Context, tx *sql.Tx, organizationID, api string, now time.Time) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens
		WHERE organization_id = ? AND api = ? AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > ?)`,
		organizationID, api, millis(now)).Scan(&n)
	return n, dbError(err)
}

// FindTokenByHash returns revoked and expired tokens too, and finds a
// token by the hash its last rotation replaced; ENOTFOUND when no token has
// the hash.
func (s *Store) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	row := s.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE hash = ?1 OR previous_hash = ?1 ORDER BY hash = ?1 DESC LIMIT 1`, hash)
	tok, err := scanToken(row)
	return tok, notFound(err, "Token")
}

// FindTokenByID returns revoked and expired tokens too.
func (s *Store) FindTokenByID(ctx context.Context, id string) (*keygate.Token, error) {
	row := s.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id)
	tok, err := scanToken(row)
	return tok, notFound(err, "Token")
}

// ListTokens returns matching tokens newest first. Expired tokens are
// listed; revoked ones only when filter.IncludeRevoked.
func (s *Store) ListTokens(ctx context.Context, filter keygate.TokenFilter) ([]*keygate.Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE (?1 = '' OR organization_id = ?1) AND (?2 = '' OR api = ?2)
		AND (?3 OR revoked_at IS NULL)
		ORDER BY created_at DESC, rowid DESC`,
		filter.OrganizationID, filter.API, filter.IncludeRevoked)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.Token
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, dbError(err)
		}
		out = append(out, tok)
	}
	return out, dbError(rows.Err())
}

// RevokeToken marks the token revoked at at and publishes the change in the
// same transaction. ENOTFOUND when unknown or already revoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, millis(at), id)
		if err := affectedOne(res, err, "Token"); err != nil {
			return err
		}
		return s.publish(ctx, tx, keygate.ChangeToken, id)
	})
}

// RotateToken gives the token its new secret and keeps the current one
// until rot.PreviousHashExpiresAt, publishing the change in the same
// transaction. The write lock orders it with any concurrent revoke.
func (s *Store) RotateToken(ctx context.Context, rot keygate.TokenRotation) (*keygate.Token, error) {
	var tok *keygate.Token
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		tok, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, rot.TokenID))
		if err := notFound(err, "Token"); err != nil {
			return err
		}
		if err := keygate.CheckRotatable(tok, rot.At); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET previous_hash = hash, previous_hash_expires_at = ?,
			hash = ?, hint = ?, rotated_at = ? WHERE id = ?`,
			millis(rot.PreviousHashExpiresAt), rot.Hash, rot.Hint, millis(rot.At), rot.TokenID)
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
			return keygate.Errorf(keygate.ECONFLICT, "A token with this hash already exists.")
		} else if err != nil {
			return err
		}
		tok.ApplyRotation(rot)
		return s.publish(ctx, tx, keygate.ChangeToken, rot.TokenID)
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// revokeOrganizationTokens revokes every unrevoked token of an organization
// and returns their ids.
func revokeOrganizationTokens(ctx context.Context, tx *sql.Tx, organizationID string, at time.Time) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE tokens SET revoked_at = ?
		WHERE organization_id = ? AND revoked_at IS NULL RETURNING id`, millis(at), organizationID)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, dbError(err)
		}
		ids = append(ids, id)
	}
	return ids, dbError(rows.Err())
}

// TouchTokens records last use in one transaction. A stored time is never
// moved backwards, so batches flushed out of order by different instances
// cannot undo each other. Unknown ids are ignored.
func (s *Store) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE tokens SET last_used_at = ?1
			WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)`)
		if err != nil {
			return dbError(err)
		}
		defer stmt.Close()
		for id, at := range lastUsed {
			if _, err := stmt.ExecContext(ctx, millis(at), id); err != nil {
				return dbError(err)
			}
		}
		return nil
	})
}

func encodeScopes(scopes []string) (string, error) {
	if scopes == nil {
		scopes = []string{}
	}
	b, err := json.Marshal(scopes)
	if err != nil {
		return "", fmt.Errorf("sqlite: encode scopes: %w", err)
	}
	return string(b), nil
}

func scanToken(row rowScanner) (*keygate.Token, error) {
	var (
		tok                            keygate.Token
		scopes                         string
		createdAt                      int64
		lastUsedAt, expiresAt, revoked sql.NullInt64
		rotatedAt, previousExpiresAt   sql.NullInt64
		previousHash                   sql.NullString
	)
	err := row.Scan(&tok.ID, &tok.OrganizationID, &tok.API, &tok.Name, &scopes, &tok.Environment,
		&tok.Hash, &tok.Hint, &createdAt, &tok.CreatedBy, &lastUsedAt, &expiresAt, &revoked,
		&rotatedAt, &previousHash, &previousExpiresAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &tok.Scopes); err != nil {
		return nil, fmt.Errorf("sqlite: token %s: decode scopes: %w", tok.ID, err)
	}
	tok.CreatedAt = fromMillis(createdAt)
	tok.LastUsedAt = fromNullMillis(lastUsedAt)
	tok.ExpiresAt = fromNullMillis(expiresAt)
	tok.RevokedAt = fromNullMillis(revoked)
	tok.RotatedAt = fromNullMillis(rotatedAt)
	tok.PreviousHash = previousHash.String
	tok.PreviousHashExpiresAt = fromNullMillis(previousExpiresAt)
	return &tok, nil
}
