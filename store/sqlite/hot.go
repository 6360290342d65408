package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/mattn/go-sqlite3"
)

// statements are prepared once on the writer's connection through
// database/sql, for the writes off the hot path, which run them as they
// are (they belong to that connection).
type statements struct {
	getEntry *sql.Stmt
	claim    *sql.Stmt
}

func (s *statements) prepare(c *sql.Conn) error {
	ctx := context.Background()
	var err error
	s.getEntry, err = c.PrepareContext(ctx, `SELECT state, status, response, request_ref, locked_until, created_at
		FROM idempotency WHERE sender = ? AND key = ?`)
	if err != nil {
		return fmt.Errorf("prepare idempotency lookup: %w", err)
	}
	// One statement per claim, parsed once: the claimed jobs' request
	// columns are read by primary key in the same statement.
	s.claim, err = c.PrepareContext(ctx, `UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = ?1,
			ahead = CASE WHEN ?5 OR ahead = 2 THEN 0 ELSE 1 END
		WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND scheduled_at <= ?2 AND priority < ?4
			ORDER BY priority, scheduled_at, id LIMIT ?3)
		RETURNING id, request_ref, sender, name, urgency, priority, attempts, scheduled_at, created_at, last_error, payload_bytes,
			payload_at, payload_len`)
	if err != nil {
		return fmt.Errorf("prepare claim: %w", err)
	}
	return nil
}

func (s *statements) close() {
	for _, st := range []*sql.Stmt{s.getEntry, s.claim} {
		if st != nil {
			st.Close()
		}
	}
}

// hotStatements are the inserts that every accepted request runs, prepared
// on the writer's raw SQLite connection: called directly they skip
// database/sql's per-call argument conversion, locking and allocations,
// which profiling put at more than half of SQLite's own time on these
// inserts. They run inside the writer's current transaction, on the same
// connection.
type hotStatements struct {
	insertRequest, insertEntry, insertJob *sqlite3.SQLiteStmt
	items                                 itemStatements
	args                                  []driver.NamedValue // reused by exec
}

// exec runs st with args. The driver's argument list is reused from call
// to call: only the writer goroutine runs hot statements, one at a time.
func (h *hotStatements) exec(st *sqlite3.SQLiteStmt, args ...driver.Value) (driver.Result, error) {
	h.args = h.args[:0]
	for i, v := range args {
		h.args = append(h.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	res, err := st.ExecContext(context.Background(), h.args)
	clear(h.args) // keep no body alive until the next call
	return res, err
}

// hotStmts returns the hot statements of the writer's connection, preparing
// them on first use. Only write functions (on the writer goroutine) call it.
func (db *DB) hotStmts() (*hotStatements, error) {
	if db.hot != nil {
		return db.hot, nil
	}
	h := &hotStatements{}
	for _, st := range []struct {
		dst **sqlite3.SQLiteStmt
		q   string
	}{
		{&h.insertRequest, `INSERT INTO requests (sender, name, request_id, urgency, method, path, remote_addr,
			headers, body, status, response, latency_us, notes, duplicate_of, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&h.insertEntry, `INSERT INTO idempotency (sender, key, state, status, response, request_ref, locked_until, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sender, key) DO NOTHING`},
		{&h.insertJob, `INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at, finished_at, payload_bytes,
			attempts, locked_until, payload_at, payload_len, item_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sender, item_key) WHERE item_key IS NOT NULL DO NOTHING`},
	} {
		ds, err := db.raw.Prepare(st.q)
		if err != nil {
			h.close()
			return nil, fmt.Errorf("prepare %q: %w", st.q, err)
		}
		*st.dst = ds.(*sqlite3.SQLiteStmt)
	}
	db.hot = h
	return h, nil
}

func (h *hotStatements) close() {
	if h == nil {
		return
	}
	for _, st := range []*sqlite3.SQLiteStmt{h.insertRequest, h.insertEntry, h.insertJob} {
		if st != nil {
			st.Close()
		}
	}
	h.items.close()
}

// insertEntry inserts a done idempotency entry unless the key is taken, and
// reports whether it did.
func (db *DB) insertEntry(sender hooks.Sender, key string, status int, response []byte, requestRef int64, now time.Time) (bool, error) {
	hot, err := db.hotStmts()
	if err != nil {
		return false, err
	}
	res, err := hot.exec(hot.insertEntry, string(sender), key, string(hooks.EntryDone), int64(status),
		response, requestRef, nil, now.UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// nullable is v as a driver value: NULL when zero.
func nullable(v int64) driver.Value {
	if v == 0 {
		return nil
	}
	return v
}

func (db *DB) insertRequest(req *hooks.Request) error {
	enc, err := encodeRequest(req)
	if err != nil {
		return err
	}
	return db.insertEncoded(req, enc)
}

func (db *DB) insertEncoded(req *hooks.Request, enc encoded) error {
	hot, err := db.hotStmts()
	if err != nil {
		return err
	}
	res, err := hot.exec(hot.insertRequest, string(req.Sender), req.Name, req.RequestID, string(req.Urgency),
		req.Method, req.Path, req.RemoteAddr, enc.headers, req.Body, int64(req.Status), req.Response,
		req.Latency.Microseconds(), enc.notes, nullable(req.DuplicateOf), req.ReceivedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("insert request: %w", err)
	}
	if req.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("insert request: %w", err)
	}
	return nil
}

// jobTimes defaults a new job's state to available and returns its
// finished_at and locked_until columns (NULL when they do not apply).
func jobTimes(j *hooks.Job) (finished, locked driver.Value) {
	if j.State == "" {
		j.State = hooks.JobAvailable
	}
	if !j.FinishedAt.IsZero() {
		finished = j.FinishedAt.UnixMicro()
	}
	if j.State == hooks.JobRunning {
		locked = j.LockedUntil.UnixMicro() // leased at once to a waiting worker (hooks.Queue.Offer)
	}
	return finished, locked
}

func (db *DB) insertJob(j *hooks.Job, requestRef int64) error {
	_, err := db.insertJobAt(j, requestRef, j.Payload, nil, nil, nil)
	return err
}

// insertJobAt inserts a job whose payload is the bytes given, or its
// bounds at, n in the request's body (see jobPayload), and whose item key
// is key (nil for none). It reports false, and writes nothing, when
// another job holds that key.
func (db *DB) insertJobAt(j *hooks.Job, requestRef int64, payload []byte, at, n, key driver.Value) (bool, error) {
	hot, err := db.hotStmts()
	if err != nil {
		return false, err
	}
	finished, locked := jobTimes(j)
	res, err := hot.exec(hot.insertJob, requestRef, string(j.Sender), j.Name, string(j.Urgency), int64(j.Priority),
		string(j.State), j.ScheduledAt.UnixMicro(), j.CreatedAt.UnixMicro(), finished, payload, int64(j.Attempts), locked, at, n, key)
	if err != nil {
		return false, fmt.Errorf("insert job: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("insert job: %w", err)
	} else if k == 0 {
		return false, nil
	}
	j.RequestRef = requestRef
	if j.ID, err = res.LastInsertId(); err != nil {
		return false, fmt.Errorf("insert job: %w", err)
	}
	return true, nil
}
