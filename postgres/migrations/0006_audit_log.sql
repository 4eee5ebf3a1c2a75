-- The audit log: one row per security-relevant action, append-only. seq
-- orders rows and is the pagination cursor. details is a small JSON
-- object, never a secret.
CREATE TABLE audit_log (
	seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id              TEXT NOT NULL UNIQUE,
	at              TIMESTAMPTZ NOT NULL,
	action          TEXT NOT NULL,
	actor_type      TEXT NOT NULL,
	actor_id        TEXT NOT NULL DEFAULT '',
	actor_name      TEXT NOT NULL DEFAULT '',
	address         TEXT NOT NULL DEFAULT '',
	user_agent      TEXT NOT NULL DEFAULT '',
	organization_id TEXT NOT NULL DEFAULT '', -- '' for site-wide actions
	target_id       TEXT NOT NULL DEFAULT '',
	details         JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_organization ON audit_log (organization_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Entries are never changed: only the retention purge deletes them.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log entries cannot be changed';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
