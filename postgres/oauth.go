package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/oauthtx"
)

// OAuth for MCP: registered clients, authorization codes, grants and their
// tokens (keygate.OAuthStore). Redeeming a code locks the code's row and
// rotating a refresh token locks the token's row, so of concurrent
// attempts on any instances exactly one succeeds and the others see reuse.

var _ keygate.OAuthStore = (*Store)(nil)

const oauthClientColumns = `id, name, uri, redirect_uris, grant_types, token_endpoint_auth_method,
	secret_hash, source, created_at`

// CreateOAuthClient stores a registered client, filling in an empty ID and
// CreatedAt; ECONFLICT when the id is taken.
func (s *Store) CreateOAuthClient(ctx context.Context, c *keygate.OAuthClient) error {
	if c.ID == "" {
		c.ID = keygate.NewID("kgc")
	}
	c.CreatedAt = s.createdAt(c.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO oauth_clients (`+oauthClientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.ID, c.Name, c.URI, nonNil(c.RedirectURIs), nonNil(c.GrantTypes), c.TokenEndpointAuthMethod,
		c.SecretHash, c.Source, c.CreatedAt)
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
		return keygate.Errorf(keygate.ECONFLICT, "An OAuth client with this id already exists.")
	} else if err != nil {
		return err
	}
	return nil
}

// FindOAuthClient returns ENOTFOUND for an unknown id.
func (s *Store) FindOAuthClient(ctx context.Context, id string) (*keygate.OAuthClient, error) {
	var c keygate.OAuthClient
	err := s.queryRow(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients WHERE id = $1`, id).
		Scan(&c.ID, &c.Name, &c.URI, &c.RedirectURIs, &c.GrantTypes, &c.TokenEndpointAuthMethod,
			&c.SecretHash, &c.Source, &c.CreatedAt)
	if err != nil {
		return nil, notFound(err, "OAuth client")
	}
	c.RedirectURIs, c.GrantTypes = nilIfEmpty(c.RedirectURIs), nilIfEmpty(c.GrantTypes)
	c.CreatedAt = c.CreatedAt.UTC()
	return &c, nil
}

const oauthCodeColumns = `hash, grant_id, client_id, user_id, organization_id, redirect_uri,
	code_challenge, resource, scopes, offline, created_at, expires_at, used_at`

// CreateOAuthCode stores a new authorization code, filling in a zero CreatedAt.
func (s *Store) CreateOAuthCode(ctx context.Context, code *keygate.OAuthCode) error {
	code.CreatedAt = s.createdAt(code.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO oauth_codes (`+oauthCodeColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		code.Hash, code.GrantID, code.ClientID, code.UserID, code.OrganizationID, code.RedirectURI,
		code.CodeChallenge, code.Resource, nonNil(code.Scopes), code.Offline,
		code.CreatedAt, ts(code.ExpiresAt), nullTS(code.UsedAt))
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
		return keygate.Errorf(keygate.ECONFLICT, "An authorization code with this hash or grant id already exists.")
	} else if err != nil {
		return err
	}
	return nil
}

// FindOAuthCode returns a code, used or not; ENOTFOUND when unknown.
func (s *Store) FindOAuthCode(ctx context.Context, hash string) (*keygate.OAuthCode, error) {
	var c keygate.OAuthCode
	err := s.queryRow(ctx, `SELECT `+oauthCodeColumns+` FROM oauth_codes WHERE hash = $1`, hash).
		Scan(&c.Hash, &c.GrantID, &c.ClientID, &c.UserID, &c.OrganizationID, &c.RedirectURI,
			&c.CodeChallenge, &c.Resource, &c.Scopes, &c.Offline, &c.CreatedAt, &c.ExpiresAt, &c.UsedAt)
	if err != nil {
		return nil, notFound(err, "Authorization code")
	}
	c.Scopes = nilIfEmpty(c.Scopes)
	c.CreatedAt, c.ExpiresAt, c.UsedAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC(), utc(c.UsedAt)
	return &c, nil
}

// RedeemOAuthCode marks the code used and stores the grant and its tokens
// in one transaction holding the code's row lock. A code already used
// revokes the grant of its first redemption instead, commits that, and
// returns ECONFLICT.
func (s *Store) RedeemOAuthCode(ctx context.Context, codeHash string, at time.Time, grant *keygate.OAuthGrant, tokens ...*keygate.OAuthToken) error {
	var after error
	err := s.write(ctx, func(tx pgx.Tx) (err error) {
		after, err = oauthtx.RedeemCode(ctx, oauthTx{tx, s}, codeHash, at, grant, tokens)
		return err
	})
	if err != nil {
		return err
	}
	return after
}

const oauthGrantColumns = `id, client_id, client_name, user_id, organization_id, resource, scopes,
	created_at, last_used_at, revoked_at`

// oauthTx is the SQL behind the rules of internal/oauthtx. Its lookups
// lock the row they read, so of two uses of one code or refresh token at
// once the second sees the first.
type oauthTx struct {
	tx pgx.Tx
	s  *Store
}

func (o oauthTx) Code(ctx context.Context, hash string) (grantID string, used bool, err error) {
	var usedAt *time.Time
	err = o.tx.QueryRow(ctx, `SELECT grant_id, used_at FROM oauth_codes WHERE hash = $1 FOR UPDATE`, hash).
		Scan(&grantID, &usedAt)
	if err != nil {
		return "", false, notFound(err, "Authorization code")
	}
	return grantID, usedAt != nil, nil
}

func (o oauthTx) UseCode(ctx context.Context, hash string, at time.Time) error {
	_, err := o.tx.Exec(ctx, `UPDATE oauth_codes SET used_at = $1 WHERE hash = $2`, ts(at), hash)
	return dbError(err)
}

func (o oauthTx) Token(ctx context.Context, hash string) (grantID, kind string, used, grantRevoked bool, err error) {
	var usedAt, revokedAt *time.Time
	err = o.tx.QueryRow(ctx, `SELECT t.grant_id, t.kind, t.used_at, g.revoked_at
		FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id
		WHERE t.hash = $1 FOR UPDATE`, hash).Scan(&grantID, &kind, &usedAt, &revokedAt)
	if err != nil {
		return "", "", false, false, notFound(err, "Refresh token")
	}
	return grantID, kind, usedAt != nil, revokedAt != nil, nil
}

func (o oauthTx) UseRefreshToken(ctx context.Context, hash, grantID string, at time.Time) error {
	if _, err := o.tx.Exec(ctx, `UPDATE oauth_tokens SET used_at = $1 WHERE hash = $2`, ts(at), hash); err != nil {
		return dbError(err)
	}
	_, err := o.tx.Exec(ctx, `UPDATE oauth_grants SET last_used_at = $1 WHERE id = $2`, ts(at), grantID)
	return dbError(err)
}

func (o oauthTx) InsertGrant(ctx context.Context, g *keygate.OAuthGrant) error {
	g.CreatedAt = o.s.createdAt(g.CreatedAt)
	_, err := o.tx.Exec(ctx, `INSERT INTO oauth_grants (`+oauthGrantColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		g.ID, g.ClientID, g.ClientName, g.UserID, g.OrganizationID, g.Resource, nonNil(g.Scopes),
		g.CreatedAt, nullTS(g.LastUsedAt), nullTS(g.RevokedAt))
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
		return keygate.Errorf(keygate.ECONFLICT, "An OAuth grant with this id already exists.")
	} else if err != nil {
		return err
	}
	return nil
}

// InsertTokens stores tokens of one grant, filling in GrantID and a zero
// CreatedAt.
func (o oauthTx) InsertTokens(ctx context.Context, grantID string, tokens []*keygate.OAuthToken, at time.Time) error {
	now := o.s.createdAt(at)
	for _, t := range tokens {
		if t.GrantID == "" {
			t.GrantID = grantID
		} else if t.GrantID != grantID {
			return keygate.Errorf(keygate.EINVALID, "Every token must belong to the grant.")
		}
		if t.CreatedAt.IsZero() {
			t.CreatedAt = now
		}
		_, err := o.tx.Exec(ctx, `INSERT INTO oauth_tokens (hash, grant_id, kind, created_at, expires_at, used_at, scopes)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			t.Hash, t.GrantID, t.Kind, ts(t.CreatedAt), ts(t.ExpiresAt), nullTS(t.UsedAt), t.Scopes)
		if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
			return keygate.Errorf(keygate.ECONFLICT, "An OAuth token with this hash already exists.")
		} else if err != nil {
			return err
		}
	}
	return nil
}

// FindOAuthToken returns an access or refresh token whatever its state;
// ENOTFOUND when unknown.
func (s *Store) FindOAuthToken(ctx context.Context, hash string) (*keygate.OAuthToken, error) {
	var t keygate.OAuthToken
	err := s.queryRow(ctx, `SELECT hash, grant_id, kind, created_at, expires_at, used_at, scopes
		FROM oauth_tokens WHERE hash = $1`, hash).
		Scan(&t.Hash, &t.GrantID, &t.Kind, &t.CreatedAt, &t.ExpiresAt, &t.UsedAt, &t.Scopes)
	if err != nil {
		return nil, notFound(err, "OAuth token")
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC(), utc(t.UsedAt)
	return &t, nil
}

// RotateOAuthRefreshToken marks the refresh token used and stores its
// successors in one transaction holding the token's and the grant's row
// locks. Reuse revokes the grant, commits that, and returns ECONFLICT.
func (s *Store) RotateOAuthRefreshToken(ctx context.Context, hash string, at time.Time, next ...*keygate.OAuthToken) error {
	var after error
	err := s.write(ctx, func(tx pgx.Tx) (err error) {
		after, err = oauthtx.RotateRefreshToken(ctx, oauthTx{tx, s}, hash, at, next)
		return err
	})
	if err != nil {
		return err
	}
	return after
}

// FindOAuthGrant returns a grant, revoked or not; ENOTFOUND when unknown.
func (s *Store) FindOAuthGrant(ctx context.Context, id string) (*keygate.OAuthGrant, error) {
	row := s.queryRow(ctx, `SELECT `+oauthGrantColumns+` FROM oauth_grants WHERE id = $1`, id)
	g, err := scanGrant(row)
	return g, notFound(err, "OAuth grant")
}

// ListOAuthGrants returns matching grants newest first, revoked ones only
// when asked.
func (s *Store) ListOAuthGrants(ctx context.Context, filter keygate.OAuthGrantFilter) ([]*keygate.OAuthGrant, error) {
	var w where
	w.equal("organization_id", filter.OrganizationID)
	w.equal("user_id", filter.UserID)
	w.equal("client_id", filter.ClientID)
	if !filter.IncludeRevoked {
		w.add("revoked_at IS NULL")
	}
	rows, err := s.query(ctx, `SELECT `+oauthGrantColumns+`, `+grantExpiry+` FROM oauth_grants`+w.String()+
		` ORDER BY created_at DESC, pos DESC`, w.args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collect(rows, func(row pgx.Row) (*keygate.OAuthGrant, error) {
		var expires *time.Time
		g, err := scanGrant(row, &expires)
		if err == nil && expires != nil {
			g.ExpiresAt = expires.UTC()
		}
		return g, err
	})
}

// grantExpiry selects when a grant's last token expires. A used refresh
// token expires before its successor, so the latest expiry of all its
// tokens is the current refresh token's.
const grantExpiry = `(SELECT MAX(t.expires_at) FROM oauth_tokens t WHERE t.grant_id = oauth_grants.id)`

// RevokeOAuthGrant revokes the grant; ENOTFOUND when unknown or already
// revoked. Its tokens need no change: they are valid only with their grant.
func (s *Store) RevokeOAuthGrant(ctx context.Context, id string, at time.Time) error {
	tag, err := s.exec(ctx,
		`UPDATE oauth_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, ts(at), id)
	return affectedOne(tag, err, "OAuth grant")
}

func (o oauthTx) RevokeGrant(ctx context.Context, id string, at time.Time) error {
	_, err := o.tx.Exec(ctx,
		`UPDATE oauth_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, ts(at), id)
	return dbError(err)
}

// PurgeOAuth deletes expired codes and tokens, and registered clients
// older than unusedClientsBefore that no grant or code refers to.
func (s *Store) PurgeOAuth(ctx context.Context, expiredBefore, unusedClientsBefore time.Time) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM oauth_codes WHERE expires_at < $1`, ts(expiredBefore))
		b.Queue(`DELETE FROM oauth_tokens WHERE expires_at < $1`, ts(expiredBefore))
		b.Queue(`DELETE FROM oauth_clients WHERE created_at < $1
			AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.id)
			AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.id)`,
			ts(unusedClientsBefore))
		return dbError(tx.SendBatch(ctx, b).Close())
	})
}

// scanGrant reads oauthGrantColumns, then any extra columns into extra.
func scanGrant(row pgx.Row, extra ...any) (*keygate.OAuthGrant, error) {
	var g keygate.OAuthGrant
	err := row.Scan(append([]any{&g.ID, &g.ClientID, &g.ClientName, &g.UserID, &g.OrganizationID, &g.Resource, &g.Scopes,
		&g.CreatedAt, &g.LastUsedAt, &g.RevokedAt}, extra...)...)
	if err != nil {
		return nil, err
	}
	g.Scopes = nilIfEmpty(g.Scopes)
	g.CreatedAt, g.LastUsedAt, g.RevokedAt = g.CreatedAt.UTC(), utc(g.LastUsedAt), utc(g.RevokedAt)
	return &g, nil
}

// nilIfEmpty reads a stored list the way the SQLite store does: an empty
// one is nil.
func nilIfEmpty(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return list
}
