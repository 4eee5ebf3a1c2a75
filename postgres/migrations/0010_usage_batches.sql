-- Usage batches already written: a batch retried after a write that
-- committed but reported a failure (a timeout) is not counted twice. Ids
-- older than a day are deleted by later batches.
CREATE TABLE usage_batches (
	id         TEXT PRIMARY KEY,
	written_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_batches_written_at ON usage_batches (written_at);
