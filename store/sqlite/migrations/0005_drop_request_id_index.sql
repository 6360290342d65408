-- Lookups by request ID filter in a scan of the records (FindRequests), and
-- repeats are found through the idempotency table, so this index served no
-- query while costing every accepted request a B-tree insert.
DROP INDEX IF EXISTS requests_sender_request_id;
