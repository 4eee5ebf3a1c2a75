-- Entries are deleted only by the retention purge, which names its cutoff
-- in its own transaction (SET LOCAL keygate.audit_purge_before): any other
-- DELETE, or one reaching an entry at or after the cutoff, and TRUNCATE
-- are refused, as UPDATE already is.
CREATE FUNCTION audit_log_purge_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	cutoff TEXT := current_setting('keygate.audit_purge_before', true);
BEGIN
	IF TG_OP = 'DELETE' AND cutoff IS NOT NULL AND cutoff <> '' AND OLD.at < cutoff::timestamptz THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'audit log entries cannot be deleted, except by the retention purge';
END;
$$;
CREATE TRIGGER audit_log_purge_only BEFORE DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_purge_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_purge_only();
