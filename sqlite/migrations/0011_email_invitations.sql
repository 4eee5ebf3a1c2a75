-- An invitation email holds its invitation's id, not its link: the sender
-- rebuilds the link when it sends, from the id and email.link_key, which
-- is not in the database. Its bodies are rendered then too.
ALTER TABLE emails ADD COLUMN invitation_id TEXT NOT NULL DEFAULT '';
