-- Every request that reached a hook route, accepted or refused.
CREATE TABLE requests (
	id           INTEGER PRIMARY KEY,
	sender       TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	request_id   TEXT    NOT NULL DEFAULT '',
	urgency      TEXT    NOT NULL DEFAULT '',
	method       TEXT    NOT NULL DEFAULT '',
	path         TEXT    NOT NULL DEFAULT '',
	remote_addr  TEXT    NOT NULL DEFAULT '',
	headers      TEXT    NOT NULL DEFAULT '{}', -- JSON, secrets redacted
	body         BLOB,
	status       INTEGER NOT NULL,
	response     BLOB,
	latency_us   INTEGER NOT NULL DEFAULT 0,
	notes        TEXT    NOT NULL DEFAULT '[]', -- JSON array of strings
	duplicate_of INTEGER,
	received_at  INTEGER NOT NULL              -- unix microseconds
);
-- IDs grow with time, so id order is arrival order: no index on received_at.
CREATE INDEX requests_sender_request_id ON requests (sender, request_id);

-- One row per idempotency key: the answer replayed to every repeat.
CREATE TABLE idempotency (
	sender       TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
	status       INTEGER NOT NULL DEFAULT 0,
	response     BLOB,
	request_ref  INTEGER,
	locked_until INTEGER,
	owner        INTEGER,                       -- token of the pending request's reservation
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (sender, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created_at ON idempotency (created_at);

-- The durable queue that hands accepted requests to the integrator's code.
CREATE TABLE jobs (
	id           INTEGER PRIMARY KEY,
	request_ref  INTEGER NOT NULL REFERENCES requests (id),
	sender       TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	urgency      TEXT    NOT NULL,
	priority     INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
	state        TEXT    NOT NULL CHECK (state IN ('available', 'running', 'done', 'dead')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	scheduled_at INTEGER NOT NULL,
	locked_until INTEGER,
	last_error   TEXT    NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	finished_at  INTEGER
);
-- Partial indexes: each job enters and leaves each one once, so the write
-- cost per job stays low however many done jobs accumulate.
CREATE INDEX jobs_available ON jobs (priority, scheduled_at, id) WHERE state = 'available';
CREATE INDEX jobs_running ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead';
