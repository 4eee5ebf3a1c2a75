package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
)

const tokenColumns = `id, organization_id, api, name, scopes, environment, hash, hint,
	created_at, created_by, last_used_at, expires_at, revoked_at,
	rotated_at, previous_hash, previous_hash_expires_at`

// CreateToken stores tok unless the organization already has maxActive
// active tokens for tok.API (0: no limit). The transaction first locks the
// organization's row, so concurrent creates for one organization, on any
// instance, take turns between the count and the insert; and a create
// racing DeleteOrganization either finishes first (and its token is
// revoked with the rest) or finds the organization gone. ENOTFOUND when the
// organization does not exist; ECONFLICT when the limit is reached or the
// hash or id is already stored.
func (s *Store) CreateToken(ctx context.Context, tok *keygate.Token, maxActive int) error {
	if tok.ID == "" {
		tok.ID = keygate.NewID("tok")
	}
	tok.CreatedAt = s.createdAt(tok.CreatedAt)
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := lockOrganization(ctx, tx, tok.OrganizationID); err != nil {
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
		_, err := tx.Exec(ctx, `INSERT INTO tokens (`+tokenColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			tok.ID, tok.OrganizationID, tok.API, tok.Name, nonNil(tok.Scopes), tok.Environment, tok.Hash, tok.Hint,
			tok.CreatedAt, tok.CreatedBy, nullTS(tok.LastUsedAt), nullTS(tok.ExpiresAt), nullTS(tok.RevokedAt),
			nullTS(tok.RotatedAt), nullText(tok.PreviousHash), nullTS(tok.PreviousHashExpiresAt))
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
			return keygate.Errorf(keygate.ECONFLICT, "A token with this id or hash already exists.")
		} else if err != nil {
			return err
		}
		// Caches may hold the new hash as unknown.
		return s.publish(ctx, tx, keygate.Change{Kind: keygate.ChangeTokenCreated, ID: tok.ID})
	})
}

// lockOrganization locks the organization's row until the transaction
// ends; ENOTFOUND when there is none.
func lockOrganization(ctx context.Context, tx pgx.Tx, id string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return keygate.Errorf(keygate.ENOTFOUND, "Organization not found.")
	}
	return dbError(err)
}

// countActiveTokens counts the tokens of an organization for an API that are
// neither revoked nor expired at now, matching keygate.Token.Active.
func countActiveTokens(ctx context.Context, tx pgx.Tx, organizationID, api string, now time.Time) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM tokens
		WHERE organization_id = $1 AND api = $2 AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > $3)`,
		organizationID, api, ts(now)).Scan(&n)
	return n, dbError(err)
}

// FindTokenByHash returns revoked and expired tokens too, and finds a
// token by the hash its last rotation replaced; ENOTFOUND when no token has
// the hash. It is the gateway's read on a cache miss, so it
// survives connections the database dropped (retryRead).
func (s *Store) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	if tok, ok := s.findTokenOnReplica(ctx, hash); ok {
		return tok, nil
	}
	var tok *keygate.Token
	err := s.retryRead(ctx, func() (err error) {
		tok, err = scanToken(s.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens
			WHERE hash = $1 OR previous_hash = $1 ORDER BY hash = $1 DESC LIMIT 1`, hash))
		return err
	})
	return tok, notFound(err, "Token")
}

// FindTokenByID returns revoked and expired tokens too.
func (s *Store) FindTokenByID(ctx context.Context, id string) (*keygate.Token, error) {
	row := s.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id)
	tok, err := scanToken(row)
	return tok, notFound(err, "Token")
}

// ListTokens returns matching tokens newest first. Expired tokens are
// listed; revoked ones only when filter.IncludeRevoked.
func (s *Store) ListTokens(ctx context.Context, filter keygate.TokenFilter) ([]*keygate.Token, error) {
	var w where
	w.equal("organization_id", filter.OrganizationID)
	w.equal("api", filter.API)
	if !filter.IncludeRevoked {
		w.add("revoked_at IS NULL")
	}
	rows, err := s.query(ctx, `SELECT `+tokenColumns+` FROM tokens`+w.String()+
		` ORDER BY created_at DESC, pos DESC`, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, scanToken)
}

// RevokeToken marks the token revoked at at and publishes the change in the
// same transaction. ENOTFOUND when unknown or already revoked.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, ts(at), id)
		if err := affectedOne(tag, err, "Token"); err != nil {
			return err
		}
		return s.publish(ctx, tx, keygate.Change{Kind: keygate.ChangeToken, ID: id})
	})
}

// RotateToken gives the token its new secret and keeps the current one
// until rot.PreviousHashExpiresAt, publishing the change in the same
// transaction. The token's row lock orders it with a concurrent revoke:
// whichever comes second sees the first's outcome.
func (s *Store) RotateToken(ctx context.Context, rot keygate.TokenRotation) (*keygate.Token, error) {
	var tok *keygate.Token
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		tok, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1 FOR UPDATE`, rot.TokenID))
		if err := notFound(err, "Token"); err != nil {
			return err
		}
		if err := keygate.CheckRotatable(tok, rot.At); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE tokens SET previous_hash = hash, previous_hash_expires_at = $1,
			hash = $2, hint = $3, rotated_at = $4 WHERE id = $5`,
			ts(rot.PreviousHashExpiresAt), rot.Hash, rot.Hint, ts(rot.At), rot.TokenID)
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
			return keygate.Errorf(keygate.ECONFLICT, "A token with this hash already exists.")
		} else if err != nil {
			return err
		}
		tok.ApplyRotation(rot)
		return s.publish(ctx, tx, keygate.Change{Kind: keygate.ChangeToken, ID: rot.TokenID})
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// TouchTokens records last use with one statement. A stored time is never
// moved backwards, so batches flushed out of order by different instances
// cannot undo each other: each row's condition is checked again on the row
// version it updates. Should two instances' batches still deadlock, the
// losing transaction is rolled back and run again. Unknown ids are ignored.
func (s *Store) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(lastUsed))
	for id := range lastUsed {
		ids = append(ids, id)
	}
	// In id order, so concurrent batches tend to lock rows in one order.
	slices.Sort(ids)
	times := make([]time.Time, len(ids))
	for i, id := range ids {
		times[i] = ts(lastUsed[id])
	}
	return s.writeRetrying(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE tokens AS t SET last_used_at = v.at
			FROM unnest($1::text[], $2::timestamptz[]) AS v (id, at)
			WHERE t.id = v.id AND (t.last_used_at IS NULL OR t.last_used_at < v.at)`, ids, times)
		return dbError(err)
	})
}

func scanToken(row pgx.Row) (*keygate.Token, error) {
	var (
		tok          keygate.Token
		previousHash *string
	)
	err := row.Scan(&tok.ID, &tok.OrganizationID, &tok.API, &tok.Name, &tok.Scopes, &tok.Environment,
		&tok.Hash, &tok.Hint, &tok.CreatedAt, &tok.CreatedBy, &tok.LastUsedAt, &tok.ExpiresAt, &tok.RevokedAt,
		&tok.RotatedAt, &previousHash, &tok.PreviousHashExpiresAt)
	if err != nil {
		return nil, err
	}
	tok.CreatedAt = tok.CreatedAt.UTC()
	tok.LastUsedAt = utc(tok.LastUsedAt)
	tok.ExpiresAt = utc(tok.ExpiresAt)
	tok.RevokedAt = utc(tok.RevokedAt)
	tok.RotatedAt = utc(tok.RotatedAt)
	tok.PreviousHashExpiresAt = utc(tok.PreviousHashExpiresAt)
	if previousHash != nil {
		tok.PreviousHash = *previousHash
	}
	return &tok, nil
}
