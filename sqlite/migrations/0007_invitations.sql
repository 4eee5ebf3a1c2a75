-- Invitations to organizations: an owner invites an email with a role;
-- the person joins by opening the invitation's link and accepting. Only
-- the SHA-256 of the link's secret is kept. Times are INTEGER
-- milliseconds since the Unix epoch, UTC.
CREATE TABLE invitations (
	id              TEXT PRIMARY KEY,
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	email           TEXT NOT NULL, -- stored lower-case
	role            TEXT NOT NULL,
	hash            TEXT NOT NULL UNIQUE,
	invited_by      TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	accepted_at     INTEGER,
	accepted_by     TEXT NOT NULL DEFAULT '',
	revoked_at      INTEGER
);
CREATE INDEX invitations_organization ON invitations (organization_id, created_at);
