-- Token rotation: a token keeps its id (and so its usage history and its
-- place under the active-token limit) and gets a new secret; the secret it
-- replaced keeps working until previous_hash_expires_at.
ALTER TABLE tokens ADD COLUMN rotated_at INTEGER;
ALTER TABLE tokens ADD COLUMN previous_hash TEXT;
ALTER TABLE tokens ADD COLUMN previous_hash_expires_at INTEGER;
CREATE UNIQUE INDEX tokens_previous_hash ON tokens (previous_hash) WHERE previous_hash IS NOT NULL;
