-- A batch customer's idempotency key is kept in its job's row, item_key,
-- rather than in a row of its own in idempotency: one row per customer
-- instead of two, and one B-tree fewer to write (the key's row and its
-- created_at index entry, against the unique index below). A customer
-- always has a job (delivered or stored), and jobs grow in id as they
-- are created, so their keys are purged in id order from item_key_purge's
-- mark, without an index on time. The request is kept while its jobs hold
-- keys (PurgeRecords).
--
-- Keys written before this migration stay where they are, and are looked
-- up there until purged.
ALTER TABLE jobs ADD COLUMN item_key TEXT;
CREATE UNIQUE INDEX jobs_item_key ON jobs (sender, item_key) WHERE item_key IS NOT NULL;

-- How far PurgeIdempotency has gone through jobs: no job with an id up to
-- upto holds a key any more.
CREATE TABLE item_key_purge (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	upto INTEGER NOT NULL
);
INSERT INTO item_key_purge (id, upto) VALUES (1, 0);

-- Every idempotency key, where it is kept: the answer of a request, or a
-- batch customer's key in its job (done, with its request's status).
CREATE VIEW idempotency_keys (sender, key, state, status, response, request_ref, locked_until, owner, created_at) AS
	SELECT sender, key, state, status, response, request_ref, locked_until, owner, created_at FROM idempotency
	UNION ALL
	SELECT j.sender, j.item_key, 'done', r.status, NULL, j.request_ref, NULL, NULL, j.created_at
	FROM jobs j JOIN requests r ON r.id = j.request_ref
	WHERE j.item_key IS NOT NULL;
