package keygate

import (
	"context"
	"slices"
	"time"
)

// OAuth for MCP. keygate is the authorization server for the MCP endpoints
// it guards: an MCP client (Claude.ai, an IDE, a script) gets a user's
// consent on keygate's pages and receives an access token that works only
// on one API's MCP endpoint. The types below are what the stores keep;
// package oauth holds the protocol.
//
// Every secret here (authorization code, access token, refresh token,
// client secret) is stored as its SHA-256 hash (HashToken), never itself.

// MCPEndpoint is an API's MCP endpoint: keygate asks MCP clients for an
// OAuth token (or the API's own token) and proxies to an MCP server.
type MCPEndpoint struct {
	// Path is where the endpoint is served on the API's listener ("/mcp").
	Path string
	// Upstream is the URL of the MCP server requests are forwarded to.
	Upstream string
	// Scopes are what every call to the endpoint needs; an OAuth token
	// missing one is refused with insufficient_scope naming them all.
	Scopes []string
	// AllowAPITokens lets clients without OAuth use an API token in the
	// API's token header instead.
	AllowAPITokens bool
}

// Where an OAuth client's registration comes from.
const (
	OAuthClientConfig     = "config"     // pre-registered in keygate's config
	OAuthClientRegistered = "registered" // RFC 7591 dynamic registration
	OAuthClientMetadata   = "metadata"   // Client ID Metadata Document: the id is an HTTPS URL
)

// How an OAuth client authenticates at the token endpoint.
const (
	OAuthAuthNone        = "none" // public client: PKCE only
	OAuthAuthSecretBasic = "client_secret_basic"
	OAuthAuthSecretPost  = "client_secret_post"
)

// OAuth grant types keygate issues tokens for.
const (
	OAuthGrantAuthorizationCode = "authorization_code"
	OAuthGrantRefreshToken      = "refresh_token"
)

// OAuthClient is an application that asks users for access to an MCP
// endpoint.
type OAuthClient struct {
	ID   string // client_id: "kgc_…" when registered, the URL for metadata documents
	Name string // shown on the consent page
	// URI is the client's home page (client_uri), when it gave one.
	URI          string
	RedirectURIs []string
	GrantTypes   []string
	// TokenEndpointAuthMethod is one of the OAuthAuth constants.
	TokenEndpointAuthMethod string
	// SecretHash is the hex SHA-256 of the client secret; "" for public clients.
	SecretHash string
	Source     string // one of the OAuthClient source constants
	CreatedAt  time.Time
}

// Public reports whether the client has no secret and relies on PKCE alone.
func (c *OAuthClient) Public() bool {
	return c.TokenEndpointAuthMethod == OAuthAuthNone || c.TokenEndpointAuthMethod == ""
}

// AllowsGrant reports whether the client registered the grant type.
// A client that named none gets authorization_code only (RFC 7591 §2).
func (c *OAuthClient) AllowsGrant(grantType string) bool {
	if len(c.GrantTypes) == 0 {
		return grantType == OAuthGrantAuthorizationCode
	}
	return slices.Contains(c.GrantTypes, grantType)
}

// OAuthCode is an authorization code as stored: issued when the user
// approves, redeemed once at the token endpoint.
type OAuthCode struct {
	Hash string // hex SHA-256 of the code
	// GrantID is the id the grant gets when the code is redeemed, chosen up
	// front so that a second redemption can revoke what the first produced.
	GrantID        string
	ClientID       string
	UserID         string
	OrganizationID string
	// RedirectURI is the redirect_uri of the authorization request as sent,
	// "" when it was omitted; the token request must repeat it.
	RedirectURI string
	// CodeChallenge is the PKCE S256 challenge.
	CodeChallenge string
	Resource      string // the MCP endpoint's resource URL (RFC 8707)
	Scopes        []string
	// Offline says a refresh token is issued with the access token.
	Offline   bool
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// OAuthGrant is what a user approved: one client's access to one MCP
// endpoint on behalf of one organization. Every access and refresh token
// belongs to a grant, and revoking the grant revokes them all (the refresh
// token "family").
type OAuthGrant struct {
	ID             string
	ClientID       string
	ClientName     string // as shown on the consent page, kept for listings
	UserID         string
	OrganizationID string
	Resource       string
	Scopes         []string
	CreatedAt      time.Time
	LastUsedAt     *time.Time // last refresh
	RevokedAt      *time.Time
	// ExpiresAt is when the last of the grant's tokens expires: its current
	// refresh token's expiry (each refresh moves it on), or the access
	// token's when the client got no refresh token. After it the grant
	// gives no access and the client must ask the user again; zero when no
	// token is left. Only ListOAuthGrants sets it: FindOAuthGrant is on
	// every MCP request's path and leaves it zero.
	ExpiresAt time.Time
}

// Active reports whether the grant has not been revoked.
func (g *OAuthGrant) Active() bool { return g.RevokedAt == nil }

// Kinds of OAuth tokens.
const (
	OAuthAccessToken  = "access"
	OAuthRefreshToken = "refresh"
)

// OAuthToken is an access or refresh token as stored.
type OAuthToken struct {
	Hash      string // hex SHA-256 of the token
	GrantID   string
	Kind      string // OAuthAccessToken or OAuthRefreshToken
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is when a refresh token was exchanged for its successor;
	// presenting it again is reuse.
	UsedAt *time.Time
	// Scopes narrows an access token to a subset of its grant's scopes, as
	// a refresh that asked for fewer gets (RFC 6749 §6); nil: the grant's.
	Scopes []string
}

// ScopesOf returns the scopes the token carries: its own when narrowed,
// else its grant's.
func (t *OAuthToken) ScopesOf(g *OAuthGrant) []string {
	if t.Scopes != nil {
		return t.Scopes
	}
	return g.Scopes
}

// Expired reports whether the token's expiry has passed at now.
func (t *OAuthToken) Expired(now time.Time) bool { return !now.Before(t.ExpiresAt) }

// OAuthStore keeps OAuth clients, codes, grants and tokens. sqlite.Store
// implements it; so must every store that serves the MCP endpoint.
type OAuthStore interface {
	// CreateOAuthClient stores a dynamically registered client; ECONFLICT
	// when the id is taken.
	CreateOAuthClient(ctx context.Context, c *OAuthClient) error
	// FindOAuthClient returns a registered client; ENOTFOUND when unknown.
	FindOAuthClient(ctx context.Context, id string) (*OAuthClient, error)

	// CreateOAuthCode stores a new authorization code.
	CreateOAuthCode(ctx context.Context, code *OAuthCode) error
	// FindOAuthCode returns a code, used or not; ENOTFOUND when unknown.
	FindOAuthCode(ctx context.Context, hash string) (*OAuthCode, error)
	// RedeemOAuthCode marks the code used at at and stores grant (whose ID
	// must be the code's GrantID) and tokens, in one atomic step. When the
	// code was already used it stores nothing, revokes the grant its first
	// redemption created, and returns ECONFLICT; ENOTFOUND when unknown.
	RedeemOAuthCode(ctx context.Context, codeHash string, at time.Time, grant *OAuthGrant, tokens ...*OAuthToken) error

	// FindOAuthToken returns an access or refresh token, whatever its state;
	// ENOTFOUND when unknown.
	FindOAuthToken(ctx context.Context, hash string) (*OAuthToken, error)
	// RotateOAuthRefreshToken marks the refresh token used at at, stores its
	// successors (same grant) and records the grant's last use, atomically.
	// A refresh token already used is reuse: the grant is revoked (and stays
	// revoked) and the call returns ECONFLICT. ENOTFOUND when the token is
	// unknown, not a refresh token, or unused but of a revoked grant.
	RotateOAuthRefreshToken(ctx context.Context, hash string, at time.Time, next ...*OAuthToken) error

	// FindOAuthGrant returns a grant, revoked or not; ENOTFOUND when unknown.
	FindOAuthGrant(ctx context.Context, id string) (*OAuthGrant, error)
	// ListOAuthGrants returns matching grants, newest first, with their
	// ExpiresAt.
	ListOAuthGrants(ctx context.Context, filter OAuthGrantFilter) ([]*OAuthGrant, error)
	// RevokeOAuthGrant revokes the grant and so every token of it;
	// ENOTFOUND when unknown or already revoked.
	RevokeOAuthGrant(ctx context.Context, id string, at time.Time) error

	// PurgeOAuth deletes codes and tokens that expired before
	// expiredBefore, and registered clients created before
	// unusedClientsBefore that no grant refers to.
	PurgeOAuth(ctx context.Context, expiredBefore, unusedClientsBefore time.Time) error
}

// OAuthGrantFilter selects grants; empty fields match everything.
type OAuthGrantFilter struct {
	OrganizationID string
	UserID         string
	ClientID       string
	IncludeRevoked bool
}
