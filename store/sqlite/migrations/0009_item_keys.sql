-- A batch customer's idempotency key is kept in its job's row, item_key,
-- rather than in a row of its own in idempotency: one row per customer
-- instead of two, and one index entry less (the unique index below against
-- idempotency's primary key and created_at index). A customer always has a
-- job (delivered or stored), created with its batch's record.
ALTER TABLE jobs ADD COLUMN item_key TEXT;
CREATE UNIQUE INDEX jobs_item_key ON jobs (sender, item_key) WHERE item_key IS NOT NULL;

-- How far PurgeIdempotency has taken item keys off: no job with an id up
-- to upto holds one. A keyed job's id grows with its request's arrival
-- (such jobs are only written with their request), so the purge goes on
-- from here in id order, with no index on time; PurgeRecords brings the
-- mark down when it deletes the last jobs, whose ids SQLite then hands out
-- again.
--
-- Keys written before this migration stay in idempotency, where they are
-- looked up until purged: legacy_until is past the newest of them (0 when
-- there is none), and a purge of everything created before it clears it.
CREATE TABLE item_key_purge (
	id           INTEGER PRIMARY KEY CHECK (id = 1),
	upto         INTEGER NOT NULL,
	legacy_until INTEGER NOT NULL
);
INSERT INTO item_key_purge (id, upto, legacy_until) VALUES (1, 0,
	coalesce((SELECT max(created_at) + 1 FROM idempotency WHERE sender = 'bloomreach' AND instr(key, '/item:') > 0), 0));

-- Every idempotency key, where it is kept: the answer of a request, or a
-- batch customer's key in its job (done, with its request's status, from
-- its request's arrival).
CREATE VIEW idempotency_keys (sender, key, state, status, response, request_ref, locked_until, owner, created_at) AS
	SELECT sender, key, state, status, response, request_ref, locked_until, owner, created_at FROM idempotency
	UNION ALL
	SELECT j.sender, j.item_key, 'done', r.status, NULL, j.request_ref, NULL, NULL, r.received_at
	FROM jobs j JOIN requests r ON r.id = j.request_ref
	WHERE j.item_key IS NOT NULL;
