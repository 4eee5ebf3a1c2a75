-- An access token issued by a refresh that asked for fewer scopes carries
-- only those (RFC 6749 §6). NULL: the token has its grant's scopes.
ALTER TABLE oauth_tokens ADD COLUMN scopes TEXT; -- JSON array of strings
