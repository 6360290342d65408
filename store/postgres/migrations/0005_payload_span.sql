-- A job that delivers a part of its request's body (a customer of a
-- Bloomreach batch) may keep that part's bounds instead of a copy of it:
-- payload_at and payload_len, a byte offset and length in requests.body.
-- The record and its jobs are purged together, so the body outlives them.
-- Existing jobs keep their payloads. As SQLite's 0008_payload_span.sql,
-- which says why payload is renamed: a replica of an older hookbay fails
-- its statements rather than deliver a whole batch to each customer.
ALTER TABLE jobs RENAME COLUMN payload TO payload_bytes;
ALTER TABLE jobs ADD COLUMN payload_at integer CHECK (payload_at >= 0),
	ADD COLUMN payload_len integer CHECK (payload_len > 0);
