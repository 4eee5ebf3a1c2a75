-- Usage batches already written: a batch retried after a write that
-- committed but reported a failure (a timeout) is not counted twice. Ids
-- older than a day are deleted by later batches. written_at is INTEGER
-- milliseconds since the Unix epoch, UTC.
CREATE TABLE usage_batches (
	id         TEXT PRIMARY KEY,
	written_at INTEGER NOT NULL
);
CREATE INDEX usage_batches_written_at ON usage_batches (written_at);
