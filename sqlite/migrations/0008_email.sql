-- Email: the outbox the sender drains, each organization's choice of
-- emails, and the indexes the once-per-token notice scans walk. Times are
-- INTEGER milliseconds since the Unix epoch, UTC.

-- A pending email's next_attempt_at is when it is due; claiming it moves
-- next_attempt_at to the end of the claim's lease. recipients is a JSON
-- array of addresses. No column holds a secret.
CREATE TABLE emails (
	id              TEXT PRIMARY KEY,
	organization_id TEXT NOT NULL DEFAULT '',
	kind            TEXT NOT NULL,
	recipients      TEXT NOT NULL,
	subject         TEXT NOT NULL,
	text_body       TEXT NOT NULL,
	html_body       TEXT NOT NULL,
	state           TEXT NOT NULL, -- pending, sent or failed
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,
	last_attempt_at INTEGER,
	last_error      TEXT NOT NULL DEFAULT '',
	sent_at         INTEGER,
	created_at      INTEGER NOT NULL
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE state = 'pending';
CREATE INDEX emails_created ON emails (created_at);

-- disabled is a JSON array of the kinds turned off; no row: all on.
CREATE TABLE email_settings (
	organization_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
	disabled        TEXT NOT NULL DEFAULT '[]',
	updated_at      INTEGER NOT NULL
);

-- The notice scans select tokens by one of these times in a window.
CREATE INDEX tokens_expires_at ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tokens_created_at ON tokens (created_at);
CREATE INDEX tokens_revoked_at ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;
