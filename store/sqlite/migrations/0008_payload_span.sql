-- A job that delivers a part of its request's body (a customer of a
-- Bloomreach batch) may keep that part's bounds instead of a copy of it:
-- payload_at and payload_len, a byte offset and length in requests.body.
-- The record and its jobs are purged together, so the body outlives them.
-- Existing jobs keep their payloads.
--
-- The copy's column is renamed, payload to payload_bytes: to an older
-- hookbay a job without a payload delivers the whole body, which for such
-- a job would deliver the whole batch to each customer. Renamed, the older
-- version's statements fail instead, loudly, and deliver nothing.
ALTER TABLE jobs RENAME COLUMN payload TO payload_bytes;
ALTER TABLE jobs ADD COLUMN payload_at INTEGER CHECK (payload_at >= 0);
ALTER TABLE jobs ADD COLUMN payload_len INTEGER CHECK (payload_len > 0);
