-- Core tables. Times are INTEGER milliseconds since the Unix epoch, UTC;
-- NULL means "never" (expires_at) or "not yet" (last_used_at, revoked_at).

CREATE TABLE organizations (
	id                TEXT PRIMARY KEY,
	slug              TEXT NOT NULL UNIQUE,
	name              TEXT NOT NULL,
	plan              TEXT NOT NULL,
	entitlements      TEXT NOT NULL DEFAULT '{}', -- JSON keygate.Entitlements
	max_active_tokens INTEGER NOT NULL DEFAULT 0,
	created_at        INTEGER NOT NULL
);

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE, -- stored lower-case
	name          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	is_admin      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);

CREATE TABLE memberships (
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role            TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Tokens outlive their organization (revoked, for the record), so
-- organization_id is not a foreign key.
CREATE TABLE tokens (
	id              TEXT PRIMARY KEY,
	organization_id TEXT NOT NULL,
	api             TEXT NOT NULL,
	name            TEXT NOT NULL,
	scopes          TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
	environment     TEXT NOT NULL,
	hash            TEXT NOT NULL UNIQUE,
	hint            TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	created_by      TEXT NOT NULL,
	last_used_at    INTEGER,
	expires_at      INTEGER,
	revoked_at      INTEGER
);
CREATE INDEX tokens_organization_api ON tokens (organization_id, api, created_at);
-- Covers the active-token count that every create runs under the write lock.
CREATE INDEX tokens_active ON tokens (organization_id, api, expires_at) WHERE revoked_at IS NULL;

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY, -- hex SHA-256 of the cookie value
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf_token TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE admin_keys (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	hint       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
);

CREATE TABLE signing_keys (
	id          TEXT PRIMARY KEY,
	private_key BLOB NOT NULL,
	created_at  INTEGER NOT NULL
);

-- token_id is '' for an organization's OAuth traffic.
CREATE TABLE usage (
	organization_id TEXT NOT NULL,
	token_id        TEXT NOT NULL,
	hour            INTEGER NOT NULL,
	requests        INTEGER NOT NULL DEFAULT 0,
	errors          INTEGER NOT NULL DEFAULT 0,
	rate_limited    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (organization_id, token_id, hour)
);
CREATE INDEX usage_organization_hour ON usage (organization_id, hour);

-- AUTOINCREMENT so a pruned seq is never handed out again: watchers resume
-- from the last seq they saw.
CREATE TABLE changes (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	kind       TEXT NOT NULL,
	id         TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX changes_created_at ON changes (created_at);
