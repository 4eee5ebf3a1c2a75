-- Live keygate instances: each beats every few seconds (shared-split rate
-- limiting counts them while Redis is unreachable). A beat deletes the rows
-- of instances that stopped beating. seen_at is INTEGER milliseconds since
-- the Unix epoch, UTC.
CREATE TABLE instances (
	id      TEXT PRIMARY KEY,
	seen_at INTEGER NOT NULL
);
