-- The audit log: one row per security-relevant action, append-only. seq
-- orders rows and is the pagination cursor. Times are INTEGER milliseconds
-- since the Unix epoch, UTC. details is a small JSON object, never a secret.
CREATE TABLE audit_log (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT NOT NULL UNIQUE,
	at              INTEGER NOT NULL,
	action          TEXT NOT NULL,
	actor_type      TEXT NOT NULL,
	actor_id        TEXT NOT NULL DEFAULT '',
	actor_name      TEXT NOT NULL DEFAULT '',
	address         TEXT NOT NULL DEFAULT '',
	user_agent      TEXT NOT NULL DEFAULT '',
	organization_id TEXT NOT NULL DEFAULT '', -- '' for site-wide actions
	target_id       TEXT NOT NULL DEFAULT '',
	details         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_organization ON audit_log (organization_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Entries are never changed: only the retention purge deletes them.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit log entries cannot be changed');
END;
