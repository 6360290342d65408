-- How a running job was claimed, for the rescue of a process that died:
-- 0 for a worker waiting for it (its attempt counts), 1 ahead into the
-- claimer's line, where it may not have started (its attempt is given back
-- on rescue), 2 given back so once, so that its next claim counts whatever
-- it is for: a job that kills its process from the line cannot crash-loop
-- uncounted. As SQLite's 0007_claimed_ahead.sql.
ALTER TABLE jobs ADD COLUMN ahead smallint NOT NULL DEFAULT 0 CHECK (ahead IN (0, 1, 2));
