-- Every attempt to run a job: when, how long, how it ended.
CREATE TABLE job_attempts (
	id          INTEGER PRIMARY KEY,
	job_id      INTEGER NOT NULL REFERENCES jobs (id),
	attempt     INTEGER NOT NULL,
	started_at  INTEGER NOT NULL,
	duration_us INTEGER NOT NULL,
	outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'dead', 'interrupted')),
	error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX job_attempts_job ON job_attempts (job_id, id);
CREATE INDEX jobs_request ON jobs (request_ref);
