-- Invitations to organizations: an owner invites an email with a role;
-- the person joins by opening the invitation's link and accepting. Only
-- the SHA-256 of the link's secret is kept.
CREATE TABLE invitations (
	pos             BIGINT GENERATED ALWAYS AS IDENTITY,
	id              TEXT PRIMARY KEY,
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	email           TEXT NOT NULL, -- stored lower-case
	role            TEXT NOT NULL,
	hash            TEXT NOT NULL UNIQUE,
	invited_by      TEXT NOT NULL,
	created_at      TIMESTAMPTZ NOT NULL,
	expires_at      TIMESTAMPTZ NOT NULL,
	accepted_at     TIMESTAMPTZ,
	accepted_by     TEXT NOT NULL DEFAULT '',
	revoked_at      TIMESTAMPTZ
);
CREATE INDEX invitations_organization ON invitations (organization_id, created_at);
