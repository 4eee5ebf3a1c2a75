-- OAuth for MCP: dynamically registered clients, authorization codes,
-- grants and their access and refresh tokens. Codes, tokens and client
-- secrets are stored only as the hex SHA-256 of their value.

CREATE TABLE oauth_clients (
	id                         TEXT PRIMARY KEY,
	name                       TEXT NOT NULL,
	uri                        TEXT NOT NULL DEFAULT '',
	redirect_uris              TEXT[] NOT NULL DEFAULT '{}',
	grant_types                TEXT[] NOT NULL DEFAULT '{}',
	token_endpoint_auth_method TEXT NOT NULL,
	secret_hash                TEXT NOT NULL DEFAULT '',
	source                     TEXT NOT NULL,
	created_at                 TIMESTAMPTZ NOT NULL
);

-- Grants outlive their user, organization and client (revoked or not, for
-- the record), so those ids are not foreign keys, as with tokens.
CREATE TABLE oauth_grants (
	pos             BIGINT GENERATED ALWAYS AS IDENTITY,
	id              TEXT PRIMARY KEY,
	client_id       TEXT NOT NULL,
	client_name     TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	organization_id TEXT NOT NULL,
	resource        TEXT NOT NULL,
	scopes          TEXT[] NOT NULL DEFAULT '{}',
	created_at      TIMESTAMPTZ NOT NULL,
	last_used_at    TIMESTAMPTZ,
	revoked_at      TIMESTAMPTZ
);
CREATE INDEX oauth_grants_organization ON oauth_grants (organization_id, created_at);
CREATE INDEX oauth_grants_user ON oauth_grants (user_id, created_at);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

-- A code names the grant its redemption creates (grant_id), so a second
-- redemption can revoke it. Used codes stay until they expire for that.
CREATE TABLE oauth_codes (
	hash            TEXT PRIMARY KEY,
	grant_id        TEXT NOT NULL UNIQUE,
	client_id       TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	organization_id TEXT NOT NULL,
	redirect_uri    TEXT NOT NULL,
	code_challenge  TEXT NOT NULL,
	resource        TEXT NOT NULL,
	scopes          TEXT[] NOT NULL DEFAULT '{}',
	offline         BOOLEAN NOT NULL DEFAULT false,
	created_at      TIMESTAMPTZ NOT NULL,
	expires_at      TIMESTAMPTZ NOT NULL,
	used_at         TIMESTAMPTZ
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
CREATE INDEX oauth_codes_client ON oauth_codes (client_id);

-- Access and refresh tokens. A refresh token's used_at is set when it is
-- exchanged for its successor; presenting it again revokes the grant.
CREATE TABLE oauth_tokens (
	hash       TEXT PRIMARY KEY,
	grant_id   TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
	kind       TEXT NOT NULL, -- access or refresh
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL,
	used_at    TIMESTAMPTZ
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);
