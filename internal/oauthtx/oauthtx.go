// Package oauthtx holds the rules of the OAuth store's one-time
// credentials: redeeming an authorization code and rotating a refresh
// token. The SQLite and PostgreSQL stores run them inside a transaction of
// their own and differ only in the SQL behind Tx, so a rule such as "a
// code used twice revokes what its first use granted" is written once.
package oauthtx

import (
	"context"
	"time"

	"github.com/keygate/keygate"
)

// Tx is a store's open write transaction, as the rules use it. Lookups
// lock the row they read where the database locks rows, and return
// ENOTFOUND for an unknown hash.
type Tx interface {
	// Code returns the grant an authorization code names and whether it
	// was used.
	Code(ctx context.Context, hash string) (grantID string, used bool, err error)
	UseCode(ctx context.Context, hash string, at time.Time) error
	// Token returns an OAuth token's grant and kind, whether it was used
	// and whether its grant is revoked.
	Token(ctx context.Context, hash string) (grantID, kind string, used, grantRevoked bool, err error)
	// UseRefreshToken marks the token used and records its grant's last
	// use, both at at.
	UseRefreshToken(ctx context.Context, hash, grantID string, at time.Time) error
	InsertGrant(ctx context.Context, g *keygate.OAuthGrant) error
	// InsertTokens stores tokens under grantID, created at at unless set.
	InsertTokens(ctx context.Context, grantID string, tokens []*keygate.OAuthToken, at time.Time) error
	RevokeGrant(ctx context.Context, id string, at time.Time) error
}

// RedeemCode marks the code used and stores grant and tokens. A code used
// before is reuse: the grant its first redemption created is revoked, and
// after is ECONFLICT, to return once the transaction (with the
// revocation) has committed. err means roll back.
func RedeemCode(ctx context.Context, tx Tx, codeHash string, at time.Time, grant *keygate.OAuthGrant, tokens []*keygate.OAuthToken) (after, err error) {
	grantID, used, err := tx.Code(ctx, codeHash)
	if err != nil {
		return nil, err
	}
	if used {
		return keygate.Errorf(keygate.ECONFLICT, "The authorization code was already used; its grant is revoked."), tx.RevokeGrant(ctx, grantID, at)
	}
	if grant.ID != grantID {
		return nil, keygate.Errorf(keygate.EINVALID, "The grant must have the id the authorization code names.")
	}
	if err := tx.UseCode(ctx, codeHash, at); err != nil {
		return nil, err
	}
	if err := tx.InsertGrant(ctx, grant); err != nil {
		return nil, err
	}
	return nil, tx.InsertTokens(ctx, grant.ID, tokens, at)
}

// RotateRefreshToken marks the refresh token used, records its grant's
// last use and stores next under the same grant. A refresh token used
// before is reuse: its grant is revoked (and stays revoked) and after is
// ECONFLICT, to return once that has committed. An access token, or one
// of a revoked grant, is ENOTFOUND. err means roll back.
func RotateRefreshToken(ctx context.Context, tx Tx, hash string, at time.Time, next []*keygate.OAuthToken) (after, err error) {
	grantID, kind, used, revoked, err := tx.Token(ctx, hash)
	if err != nil {
		return nil, err
	}
	if kind != keygate.OAuthRefreshToken {
		return nil, keygate.Errorf(keygate.ENOTFOUND, "Refresh token not found.")
	}
	if used {
		return keygate.Errorf(keygate.ECONFLICT, "The refresh token was already used; its grant is revoked."), tx.RevokeGrant(ctx, grantID, at)
	}
	if revoked {
		return nil, keygate.Errorf(keygate.ENOTFOUND, "Refresh token not found.")
	}
	if err := tx.UseRefreshToken(ctx, hash, grantID, at); err != nil {
		return nil, err
	}
	return nil, tx.InsertTokens(ctx, grantID, next, at)
}
