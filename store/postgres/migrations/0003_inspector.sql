-- The inspector's filters (FindRequests), each an index range read newest
-- first instead of a scan of the table, as SQLite's 0006_inspector.sql
-- has them. Each key grows with the id within its value (a sender, a name,
-- an error status), so that a new record lands on the last page of each
-- index: a few more pages written per group commit. The sender's request
-- ID has no index, as on SQLite: its values are random, and an index on
-- them would cost more per record than the record itself.
--
-- Migrations run in a transaction, so these are built without
-- CONCURRENTLY: on a large requests table, the first replica to start
-- holds writes to it until they are built.
CREATE INDEX requests_sender ON requests (sender, id);
CREATE INDEX requests_name ON requests (name, id);
-- Errors only, so that the usual 2xx answer costs nothing here. A filter
-- reaches it only when its condition implies status >= 300 to the
-- planner (a literal bound, as SQLite's FindRequests adds).
CREATE INDEX requests_error_status ON requests (status, id) WHERE status >= 300;
