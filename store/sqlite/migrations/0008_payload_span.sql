-- A job that delivers a part of its request's body (a customer of a
-- Bloomreach batch) may keep that part's bounds instead of a copy of it:
-- payload_at and payload_len, a byte offset and length in requests.body,
-- with payload NULL. The record and its jobs are purged together, so the
-- body outlives them. Existing jobs keep their payloads.
ALTER TABLE jobs ADD COLUMN payload_at INTEGER CHECK (payload_at >= 0);
ALTER TABLE jobs ADD COLUMN payload_len INTEGER CHECK (payload_len > 0);
