-- A batch's customers are delivered one job each, with the item as payload.
ALTER TABLE jobs ADD COLUMN payload BLOB;

-- OAuth 2.0 access tokens issued by hookbay's token endpoint, kept hashed.
CREATE TABLE oauth_tokens (
	hash       BLOB    PRIMARY KEY,  -- SHA-256 of the token
	client_id  TEXT    NOT NULL,
	scopes     TEXT    NOT NULL DEFAULT '',
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oauth_tokens_expires_at ON oauth_tokens (expires_at);
