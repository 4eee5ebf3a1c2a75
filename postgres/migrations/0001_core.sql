-- Core tables. Times are TIMESTAMPTZ kept to the millisecond (what the
-- SQLite store keeps too); NULL means "never" (expires_at) or "not yet"
-- (last_used_at, revoked_at). Tables are created in the connection's
-- current schema.
--
-- pos columns record insertion order, to order rows created in the same
-- millisecond the way they were created.

CREATE TABLE organizations (
	id                TEXT PRIMARY KEY,
	slug              TEXT NOT NULL UNIQUE,
	name              TEXT NOT NULL,
	plan              TEXT NOT NULL,
	entitlements      JSONB NOT NULL DEFAULT '{}', -- keygate.Entitlements
	max_active_tokens INTEGER NOT NULL DEFAULT 0,
	created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE, -- stored lower-case
	name          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	is_admin      BOOLEAN NOT NULL DEFAULT false,
	created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role            TEXT NOT NULL,
	created_at      TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Tokens outlive their organization (revoked, for the record), so
-- organization_id is not a foreign key.
CREATE TABLE tokens (
	pos             BIGINT GENERATED ALWAYS AS IDENTITY,
	id              TEXT PRIMARY KEY,
	organization_id TEXT NOT NULL,
	api             TEXT NOT NULL,
	name            TEXT NOT NULL,
	scopes          TEXT[] NOT NULL DEFAULT '{}',
	environment     TEXT NOT NULL,
	hash            TEXT NOT NULL UNIQUE,
	hint            TEXT NOT NULL,
	created_at      TIMESTAMPTZ NOT NULL,
	created_by      TEXT NOT NULL,
	last_used_at    TIMESTAMPTZ,
	expires_at      TIMESTAMPTZ,
	revoked_at      TIMESTAMPTZ
);
CREATE INDEX tokens_organization_api ON tokens (organization_id, api, created_at);
-- Covers the active-token count that every limited create runs while it
-- holds the organization's row lock.
CREATE INDEX tokens_active ON tokens (organization_id, api, expires_at) WHERE revoked_at IS NULL;

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY, -- hex SHA-256 of the cookie value
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf_token TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE admin_keys (
	pos        BIGINT GENERATED ALWAYS AS IDENTITY,
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	hint       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	revoked_at TIMESTAMPTZ
);

CREATE TABLE signing_keys (
	pos         BIGINT GENERATED ALWAYS AS IDENTITY,
	id          TEXT PRIMARY KEY,
	private_key BYTEA NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL
);

-- token_id is '' for an organization's OAuth traffic.
CREATE TABLE usage (
	organization_id TEXT NOT NULL,
	token_id        TEXT NOT NULL,
	hour            TIMESTAMPTZ NOT NULL,
	requests        BIGINT NOT NULL DEFAULT 0,
	errors          BIGINT NOT NULL DEFAULT 0,
	rate_limited    BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (organization_id, token_id, hour)
);
CREATE INDEX usage_organization_hour ON usage (organization_id, hour);

-- seq comes from a sequence, so a pruned seq is never handed out again:
-- watchers resume from the last seq they saw. Writers take an advisory
-- lock before inserting, so rows commit in seq order.
CREATE TABLE changes (
	seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind       TEXT NOT NULL,
	id         TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX changes_created_at ON changes (created_at);
