-- Faults injected on purpose, to test how a sender retries.
CREATE TABLE faults (
	id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: servers cache faults by ID
	sender     TEXT    NOT NULL,
	name       TEXT    NOT NULL DEFAULT '',  -- '' matches every hook, webhook or event
	kind       TEXT    NOT NULL CHECK (kind IN ('status', 'delay', 'drop')),
	status     INTEGER NOT NULL DEFAULT 0,
	delay_us   INTEGER NOT NULL DEFAULT 0,
	remaining  INTEGER NOT NULL DEFAULT -1,  -- -1: no count limit
	percent    INTEGER NOT NULL DEFAULT 100,
	expires_at INTEGER,                      -- NULL: until cleared
	created_at INTEGER NOT NULL
);
