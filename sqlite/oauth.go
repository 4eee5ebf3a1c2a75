package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/oauthtx"
)

// OAuth for MCP: registered clients, authorization codes, grants and their
// tokens (keygate.OAuthStore). Redeeming a code and rotating a refresh
// token each run in one BEGIN IMMEDIATE transaction, so of two concurrent
// attempts exactly one succeeds and the other is seen as reuse.

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
	redirects, err := encodeStrings(c.RedirectURIs)
	if err != nil {
		return err
	}
	grants, err := encodeStrings(c.GrantTypes)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO oauth_clients (`+oauthClientColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.URI, redirects, grants, c.TokenEndpointAuthMethod, c.SecretHash, c.Source, millis(c.CreatedAt))
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
		return keygate.Errorf(keygate.ECONFLICT, "An OAuth client with this id already exists.")
	} else if err != nil {
		return err
	}
	return nil
}

// FindOAuthClient returns ENOTFOUND for an unknown id.
func (s *Store) FindOAuthClient(ctx context.Context, id string) (*keygate.OAuthClient, error) {
	row := s.queryRow(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients WHERE id = ?`, id)
	var (
		c                 keygate.OAuthClient
		redirects, grants string
		createdAt         int64
	)
	err := row.Scan(&c.ID, &c.Name, &c.URI, &redirects, &grants, &c.TokenEndpointAuthMethod,
		&c.SecretHash, &c.Source, &createdAt)
	if err != nil {
		return nil, notFound(err, "OAuth client")
	}
	if err := decodeStrings(redirects, &c.RedirectURIs); err != nil {
		return nil, err
	}
	if err := decodeStrings(grants, &c.GrantTypes); err != nil {
		return nil, err
	}
	c.CreatedAt = fromMillis(createdAt)
	return &c, nil
}

const oauthCodeColumns = `hash, grant_id, client_id, user_id, organization_id, redirect_uri,
	code_challenge, resource, scopes, offline, created_at, expires_at, used_at`

// CreateOAuthCode stores a new authorization code, filling in a zero CreatedAt.
func (s *Store) CreateOAuthCode(ctx context.Context, code *keygate.OAuthCode) error {
	code.CreatedAt = s.createdAt(code.CreatedAt)
	scopes, err := encodeStrings(code.Scopes)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO oauth_codes (`+oauthCodeColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		code.Hash, code.GrantID, code.ClientID, code.UserID, code.OrganizationID, code.RedirectURI,
		code.CodeChallenge, code.Resource, scopes, code.Offline,
		millis(code.CreatedAt), millis(code.ExpiresAt), nullMillis(code.UsedAt))
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ECONFLICT {
		return keygate.Errorf(keygate.ECONFLICT, "An authorization code with this hash or grant id already exists.")
	} else if err != nil {
		return err
	}
	return nil
}

// FindOAuthCode returns a code, used or not; ENOTFOUND when unknown.
func (s *Store) FindOAuthCode(ctx context.Context, hash string) (*keygate.OAuthCode, error) {
	row := s.queryRow(ctx, `SELECT `+oauthCodeColumns+` FROM oauth_codes WHERE hash = ?`, hash)
	var (
		c                    keygate.OAuthCode
		scopes               string
		createdAt, expiresAt int64
		usedAt               sql.NullInt64
	)
	err := row.Scan(&c.Hash, &c.GrantID, &c.ClientID, &c.UserID, &c.OrganizationID, &c.RedirectURI,
		&c.CodeChallenge, &c.Resource, &scopes, &c.Offline, &createdAt, &expiresAt, &usedAt)
	if err != nil {
		return nil, notFound(err, "Authorization code")
	}
	if err := decodeStrings(scopes, &c.Scopes); err != nil {
		return nil, err
	}
	c.CreatedAt = fromMillis(createdAt)
	c.ExpiresAt = fromMillis(expiresAt)
	c.UsedAt = fromNullMillis(usedAt)
	return &c, nil
}

// RedeemOAuthCode marks the code used and stores the grant and its tokens
// in one transaction. A code already used revokes the grant of its first
// redemption instead, commits that, and returns ECONFLICT.
func (s *Store) RedeemOAuthCode(ctx context.Context, codeHash string, at time.Time, grant *keygate.OAuthGrant, tokens ...*keygate.OAuthToken) error {
	var after error
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
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

// oauthTx is the SQL behind the rules of internal/oauthtx.
type oauthTx struct {
	tx *sql.Tx
	s  *Store
}

func (o oauthTx) Code(ctx context.Context, hash string) (grantID string, used bool, err error) {
	var usedAt sql.NullInt64
	err = o.tx.QueryRowContext(ctx, `SELECT grant_id, used_at FROM oauth_codes WHERE hash = ?`, hash).Scan(&grantID, &usedAt)
	if err != nil {
		return "", false, notFound(err, "Authorization code")
	}
	return grantID, usedAt.Valid, nil
}

func (o oauthTx) UseCode(ctx context.Context, hash string, at time.Time) error {
	_, err := o.tx.ExecContext(ctx, `UPDATE oauth_codes SET used_at = ? WHERE hash = ?`, millis(at), hash)
	return dbError(err)
}

func (o oauthTx) Token(ctx context.Context, hash string) (grantID, kind string, used, grantRevoked bool, err error) {
	var usedAt, revokedAt sql.NullInt64
	err = o.tx.QueryRowContext(ctx, `SELECT t.grant_id, t.kind, t.used_at, g.revoked_at
		FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id
		WHERE t.hash = ?`, hash).Scan(&grantID, &kind, &usedAt, &revokedAt)
	if err != nil {
		return "", "", false, false, notFound(err, "Refresh token")
	}
	return grantID, kind, usedAt.Valid, revokedAt.Valid, nil
}

func (o oauthTx) UseRefreshToken(ctx context.Context, hash, grantID string, at time.Time) error {
	if _, err := o.tx.ExecContext(ctx, `UPDATE oauth_tokens SET used_at = ? WHERE hash = ?`, millis(at), hash); err != nil {
		return dbError(err)
	}
	_, err := o.tx.ExecContext(ctx, `UPDATE oauth_grants SET last_used_at = ? WHERE id = ?`, millis(at), grantID)
	return dbError(err)
}

func (o oauthTx) InsertGrant(ctx context.Context, g *keygate.OAuthGrant) error {
	g.CreatedAt = o.s.createdAt(g.CreatedAt)
	scopes, err := encodeStrings(g.Scopes)
	if err != nil {
		return err
	}
	_, err = o.tx.ExecContext(ctx, `INSERT INTO oauth_grants (`+oauthGrantColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.ClientID, g.ClientName, g.UserID, g.OrganizationID, g.Resource, scopes,
		millis(g.CreatedAt), nullMillis(g.LastUsedAt), nullMillis(g.RevokedAt))
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
		var scopes sql.NullString
		if t.Scopes != nil {
			encoded, err := encodeScopes(t.Scopes)
			if err != nil {
				return err
			}
			scopes = sql.NullString{String: encoded, Valid: true}
		}
		_, err := o.tx.ExecContext(ctx, `INSERT INTO oauth_tokens (hash, grant_id, kind, created_at, expires_at, used_at, scopes)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			t.Hash, t.GrantID, t.Kind, millis(t.CreatedAt), millis(t.ExpiresAt), nullMillis(t.UsedAt), scopes)
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
	row := s.queryRow(ctx, `SELECT hash, grant_id, kind, created_at, expires_at, used_at, scopes
		FROM oauth_tokens WHERE hash = ?`, hash)
	var (
		t                    keygate.OAuthToken
		createdAt, expiresAt int64
		usedAt               sql.NullInt64
		scopes               sql.NullString
	)
	if err := row.Scan(&t.Hash, &t.GrantID, &t.Kind, &createdAt, &expiresAt, &usedAt, &scopes); err != nil {
		return nil, notFound(err, "OAuth token")
	}
	if scopes.Valid {
		if err := json.Unmarshal([]byte(scopes.String), &t.Scopes); err != nil {
			return nil, fmt.Errorf("sqlite: decode OAuth token scopes: %w", err)
		}
	}
	t.CreatedAt = fromMillis(createdAt)
	t.ExpiresAt = fromMillis(expiresAt)
	t.UsedAt = fromNullMillis(usedAt)
	return &t, nil
}

// RotateOAuthRefreshToken marks the refresh token used and stores its
// successors in one transaction. Reuse revokes the grant, commits that,
// and returns ECONFLICT.
func (s *Store) RotateOAuthRefreshToken(ctx context.Context, hash string, at time.Time, next ...*keygate.OAuthToken) error {
	var after error
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
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
	row := s.queryRow(ctx, `SELECT `+oauthGrantColumns+` FROM oauth_grants WHERE id = ?`, id)
	g, err := scanGrant(row)
	return g, notFound(err, "OAuth grant")
}

// ListOAuthGrants returns matching grants newest first, revoked ones only
// when asked.
func (s *Store) ListOAuthGrants(ctx context.Context, filter keygate.OAuthGrantFilter) ([]*keygate.OAuthGrant, error) {
	rows, err := s.query(ctx, `SELECT `+oauthGrantColumns+`, `+grantExpiry+` FROM oauth_grants
		WHERE (?1 = '' OR organization_id = ?1) AND (?2 = '' OR user_id = ?2)
		AND (?3 = '' OR client_id = ?3) AND (?4 OR revoked_at IS NULL)
		ORDER BY created_at DESC, rowid DESC`,
		filter.OrganizationID, filter.UserID, filter.ClientID, filter.IncludeRevoked)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []*keygate.OAuthGrant
	for rows.Next() {
		var expires sql.NullInt64
		g, err := scanGrant(rows, &expires)
		if err != nil {
			return nil, dbError(err)
		}
		if expires.Valid {
			g.ExpiresAt = fromMillis(expires.Int64)
		}
		out = append(out, g)
	}
	return out, dbError(rows.Err())
}

// grantExpiry selects when a grant's last token expires. A used refresh
// token expires before its successor, so the latest expiry of all its
// tokens is the current refresh token's.
const grantExpiry = `(SELECT MAX(t.expires_at) FROM oauth_tokens t WHERE t.grant_id = oauth_grants.id)`

// RevokeOAuthGrant revokes the grant; ENOTFOUND when unknown or already
// revoked. Its tokens need no change: they are valid only with their grant.
func (s *Store) RevokeOAuthGrant(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx,
		`UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, millis(at), id)
	return affectedOne(res, err, "OAuth grant")
}

func (o oauthTx) RevokeGrant(ctx context.Context, id string, at time.Time) error {
	_, err := o.tx.ExecContext(ctx,
		`UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, millis(at), id)
	return dbError(err)
}

// PurgeOAuth deletes expired codes and tokens, and registered clients
// older than unusedClientsBefore that no grant or code refers to.
func (s *Store) PurgeOAuth(ctx context.Context, expiredBefore, unusedClientsBefore time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM oauth_codes WHERE expires_at < ?`, []any{millis(expiredBefore)}},
			{`DELETE FROM oauth_tokens WHERE expires_at < ?`, []any{millis(expiredBefore)}},
			{`DELETE FROM oauth_clients WHERE created_at < ?
				AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.id)
				AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.id)`,
				[]any{millis(unusedClientsBefore)}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return dbError(err)
			}
		}
		return nil
	})
}

// scanGrant reads oauthGrantColumns, then any extra columns into extra.
func scanGrant(row rowScanner, extra ...any) (*keygate.OAuthGrant, error) {
	var (
		g                   keygate.OAuthGrant
		scopes              string
		createdAt           int64
		lastUsed, revokedAt sql.NullInt64
	)
	err := row.Scan(append([]any{&g.ID, &g.ClientID, &g.ClientName, &g.UserID, &g.OrganizationID, &g.Resource, &scopes,
		&createdAt, &lastUsed, &revokedAt}, extra...)...)
	if err != nil {
		return nil, err
	}
	if err := decodeStrings(scopes, &g.Scopes); err != nil {
		return nil, err
	}
	g.CreatedAt = fromMillis(createdAt)
	g.LastUsedAt = fromNullMillis(lastUsed)
	g.RevokedAt = fromNullMillis(revokedAt)
	return &g, nil
}

// encodeStrings stores a list as a JSON array; nil becomes [].
func encodeStrings(list []string) (string, error) {
	if list == nil {
		list = []string{}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return "", fmt.Errorf("sqlite: encode list: %w", err)
	}
	return string(b), nil
}

// decodeStrings reads a stored list; an empty one becomes nil.
func decodeStrings(stored string, into *[]string) error {
	var list []string
	if err := json.Unmarshal([]byte(stored), &list); err != nil {
		return fmt.Errorf("sqlite: decode list: %w", err)
	}
	if len(list) == 0 {
		list = nil
	}
	*into = list
	return nil
}
