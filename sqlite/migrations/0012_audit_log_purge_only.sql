-- Entries are deleted only by the retention purge, which names its cutoff
-- in its own transaction (audit_log_purge.before, back to 0 before it
-- commits, so no other connection ever sees it set): any other DELETE, or
-- one reaching an entry at or after the cutoff, is refused, as UPDATE
-- already is. Times are INTEGER milliseconds since the Unix epoch, UTC.
CREATE TABLE audit_log_purge (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	before INTEGER NOT NULL
);
INSERT INTO audit_log_purge (id, before) VALUES (1, 0);
CREATE TRIGGER audit_log_purge_only BEFORE DELETE ON audit_log
	WHEN OLD.at >= (SELECT before FROM audit_log_purge WHERE id = 1)
BEGIN
	SELECT RAISE(ABORT, 'audit log entries cannot be deleted, except by the retention purge');
END;
