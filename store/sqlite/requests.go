package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/hookbay/hookbay/hooks"
)

// statements are prepared once on the writer's connection through
// database/sql, for the writes off the hot path.
type statements struct {
	getEntry *sql.Stmt
}

func (s *statements) prepare(db *sql.DB) error {
	var err error
	s.getEntry, err = db.Prepare(`SELECT state, status, response, request_ref, locked_until, created_at
		FROM idempotency WHERE sender = ? AND key = ?`)
	if err != nil {
		return fmt.Errorf("prepare idempotency lookup: %w", err)
	}
	return nil
}

func (s *statements) close() {
	if s.getEntry != nil {
		s.getEntry.Close()
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
		{&h.insertJob, `INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at, finished_at, payload)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
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

// Commit writes an accepted request in one transaction: its record, its
// idempotency keys (answered with the request's status and response) and its
// job. When a key is already taken, no job is written: a done entry is
// returned so that its answer is replayed (the repeat is recorded as a
// duplicate and any new request ID of it replays the same answer); a pending
// entry under a live lease is returned for the caller to wait on, and then
// nothing at all is written. A pending entry whose lease expired belonged to
// a process that died: this request takes it over.
func (db *DB) Commit(ctx context.Context, r *hooks.Receipt) (*hooks.Entry, error) {
	req := r.Request
	r.Keys = uniqueKeys(r.Keys)
	// Encoding happens here, in the caller's goroutine, so that the single
	// writer only executes statements.
	enc, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	var found *hooks.Entry
	status, response, notes := req.Status, req.Response, len(req.Notes)
	err = db.write(ctx, func(tx *sql.Tx) error {
		// A retried run starts from the request as it was given.
		found = nil
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		if err := db.insertEncoded(req, enc); err != nil {
			return err
		}
		now := db.Now()
		for i, k := range r.Keys {
			// The UNIQUE key decides: no row affected means the key is taken.
			if ok, err := db.insertEntry(req.Sender, k, req.Status, req.Response, req.ID, now); err != nil {
				return fmt.Errorf("insert idempotency key: %w", err)
			} else if ok {
				continue
			}
			e, err := scanEntry(tx.Stmt(db.stmts.getEntry).QueryRow(req.Sender, k), req.Sender, k)
			if err != nil {
				return fmt.Errorf("read idempotency key: %w", err)
			}
			if e.State == hooks.EntryPending && !e.LockedUntil.After(now) {
				if _, err := tx.Exec(`UPDATE idempotency SET state = 'done', status = ?, response = ?, request_ref = ?, locked_until = NULL
					WHERE sender = ? AND key = ?`, req.Status, req.Response, req.ID, req.Sender, k); err != nil {
					return fmt.Errorf("take over idempotency key: %w", err)
				}
				continue
			}
			found = e
			return db.undoCommit(tx, req, r.Keys[:i], e)
		}
		if r.Job != nil {
			if err := db.insertJob(r.Job, req.ID); err != nil {
				return err
			}
		}
		return db.insertItems(req, r.Items, now)
	})
	if err != nil {
		return nil, fmt.Errorf("commit %s request: %w", req.Sender, err)
	}
	return found, nil
}

// insertItems queues a batch's items: each whose key is free (or that has
// none) gets its job; the others were accepted before and are marked
// Duplicate.
func (db *DB) insertItems(req *hooks.Request, items []*hooks.ReceiptItem, now time.Time) error {
	for _, it := range items {
		it.Duplicate = false
		if it.Key != "" {
			if ok, err := db.insertEntry(req.Sender, it.Key, req.Status, nil, req.ID, now); err != nil {
				return fmt.Errorf("insert item key: %w", err)
			} else if !ok {
				it.Duplicate = true
				continue
			}
		}
		if it.Job != nil {
			if err := db.insertJob(it.Job, req.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// uniqueKeys drops repeated keys (a request ID that equals a content key),
// which would otherwise make a request a duplicate of itself.
func uniqueKeys(keys []string) []string {
	for i := 1; i < len(keys); i++ {
		for _, k := range keys[:i] {
			if k == keys[i] {
				out := append([]string(nil), keys[:i]...)
				for _, k := range keys[i:] {
					if !slices.Contains(out, k) {
						out = append(out, k)
					}
				}
				return out
			}
		}
	}
	return keys
}

// undoCommit handles a taken key found after the request and the keys
// before it were written. A pending entry means the request is executing
// elsewhere: everything is taken back and the caller waits. A done entry
// means this is a repeat: its record becomes a duplicate's, and the keys
// already written (a new request ID of a known event) replay the same answer.
func (db *DB) undoCommit(tx *sql.Tx, req *hooks.Request, written []string, e *hooks.Entry) error {
	if e.State == hooks.EntryPending {
		if _, err := tx.Exec(`DELETE FROM requests WHERE id = ?`, req.ID); err != nil {
			return fmt.Errorf("take back request: %w", err)
		}
		for _, k := range written {
			if _, err := tx.Exec(`DELETE FROM idempotency WHERE sender = ? AND key = ?`, req.Sender, k); err != nil {
				return fmt.Errorf("take back idempotency key: %w", err)
			}
		}
		req.ID = 0
		return nil
	}
	req.MarkDuplicate(e)
	notes, err := json.Marshal(req.Notes)
	if err != nil {
		return fmt.Errorf("encode notes: %w", err)
	}
	if _, err := tx.Exec(`UPDATE requests SET status = ?, response = ?, duplicate_of = ?, notes = ? WHERE id = ?`,
		req.Status, req.Response, req.DuplicateOf, notes, req.ID); err != nil {
		return fmt.Errorf("mark request duplicate: %w", err)
	}
	for _, k := range written {
		if _, err := tx.Exec(`UPDATE idempotency SET status = ?, response = ?, request_ref = ? WHERE sender = ? AND key = ?`,
			req.Status, req.Response, e.RequestRef, req.Sender, k); err != nil {
			return fmt.Errorf("replay answer under idempotency key: %w", err)
		}
	}
	return nil
}

func scanEntry(row *sql.Row, sender hooks.Sender, key string) (*hooks.Entry, error) {
	e := &hooks.Entry{Sender: sender, Key: key}
	var ref, locked sql.NullInt64
	var created int64
	if err := row.Scan(&e.State, &e.Response.Status, &e.Response.Body, &ref, &locked, &created); err != nil {
		return nil, err
	}
	e.RequestRef = ref.Int64
	e.LockedUntil = fromMicros(locked)
	e.CreatedAt = time.UnixMicro(created)
	return e, nil
}

// encoded holds a request's JSON columns.
type encoded struct{ headers, notes []byte }

func encodeRequest(req *hooks.Request) (encoded, error) {
	enc := encoded{headers: appendHeaderJSON(make([]byte, 0, 512), req.Header), notes: []byte("[]")}
	if len(req.Notes) > 0 {
		var err error
		if enc.notes, err = json.Marshal(req.Notes); err != nil {
			return enc, fmt.Errorf("encode notes: %w", err)
		}
	}
	return enc, nil
}

// appendHeaderJSON appends h encoded as json.Marshal encodes it (names
// sorted, each with its array of values) without reflection: every request
// record stores its headers, so this runs once per request.
func appendHeaderJSON(dst []byte, h http.Header) []byte {
	if h == nil {
		return append(dst, "null"...)
	}
	var buf [32]string
	names := buf[:0]
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, k := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		vals := h[k]
		if vals == nil {
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, '[')
		for j, v := range vals {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, v)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Printable ASCII that needs no
// escape is copied as is; anything else is left to encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
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

func (db *DB) insertJob(j *hooks.Job, requestRef int64) error {
	if j.State == "" {
		j.State = hooks.JobAvailable
	}
	hot, err := db.hotStmts()
	if err != nil {
		return err
	}
	var finished driver.Value
	if !j.FinishedAt.IsZero() {
		finished = j.FinishedAt.UnixMicro()
	}
	res, err := hot.exec(hot.insertJob, requestRef, string(j.Sender), j.Name, string(j.Urgency), int64(j.Priority),
		string(j.State), j.ScheduledAt.UnixMicro(), j.CreatedAt.UnixMicro(), finished, j.Payload)
	if err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	j.RequestRef = requestRef
	if j.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	return nil
}

// Reserve takes the idempotency keys for a request that will execute inline.
// It returns nil when all keys are now held by owner, pending until
// leaseUntil; otherwise it writes nothing and returns the entry that holds
// the first taken key: done (replay it) or pending under a live lease
// (wait). A pending entry whose lease has expired belonged to a request that
// died or overran; it is taken over, and its owner can no longer finish or
// release it.
func (db *DB) Reserve(ctx context.Context, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error) {
	keys = uniqueKeys(keys)
	var found *hooks.Entry
	err := db.write(ctx, func(tx *sql.Tx) error {
		found = nil
		now := db.Now()
		for _, k := range keys {
			e, err := scanEntry(tx.Stmt(db.stmts.getEntry).QueryRow(sender, k), sender, k)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				continue
			case err != nil:
				return fmt.Errorf("read idempotency key: %w", err)
			case e.State == hooks.EntryDone || e.LockedUntil.After(now):
				found = e
				return nil
			}
		}
		for _, k := range keys {
			if _, err := tx.Exec(`INSERT INTO idempotency (sender, key, state, locked_until, owner, created_at)
				VALUES (?, ?, 'pending', ?, ?, ?)
				ON CONFLICT (sender, key) DO UPDATE SET locked_until = excluded.locked_until, owner = excluded.owner`,
				sender, k, leaseUntil.UnixMicro(), owner, now.UnixMicro()); err != nil {
				return fmt.Errorf("reserve idempotency key: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserve %s request: %w", sender, err)
	}
	return found, nil
}

// Finish ends an inline request that Reserve let through with a final
// answer: it records the request, stores its answer under its keys and
// queues its job, in one transaction. If the reservation was taken over
// (its lease expired while it ran), the keys are not touched and no job is
// queued: when the taker has already answered, the request is recorded as
// its duplicate and that entry is returned, for its answer to be replayed.
func (db *DB) Finish(ctx context.Context, r *hooks.Receipt, owner int64) (*hooks.Entry, error) {
	req := r.Request
	keys := uniqueKeys(r.Keys)
	status, response, notes := req.Status, req.Response, len(req.Notes)
	var lost *hooks.Entry
	var takenOver bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		lost, takenOver = nil, false
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		for i, k := range keys {
			res, err := tx.Exec(`UPDATE idempotency SET state = 'done', status = ?, response = ?, locked_until = NULL, owner = NULL
				WHERE sender = ? AND key = ? AND state = 'pending' AND owner = ?`, req.Status, req.Response, req.Sender, k, owner)
			if err != nil {
				return fmt.Errorf("store answer under idempotency key: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store answer under idempotency key: %w", err)
			} else if n == 1 {
				continue
			}
			if i > 0 {
				return fmt.Errorf("idempotency key %q was taken over while %q was kept", k, keys[0])
			}
			e, err := scanEntry(tx.Stmt(db.stmts.getEntry).QueryRow(req.Sender, k), req.Sender, k)
			switch {
			case err == nil && e.State == hooks.EntryDone:
				lost = e
				req.MarkDuplicate(e)
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("read idempotency key: %w", err)
			default:
				// A retry holds the key and is running now: its answer
				// will be the one kept, so this one must not go out. The
				// request is recorded by the caller, with what it sends.
				takenOver = true
				req.Note("idempotency key taken over by a retry while this request ran; its answer was not kept, and the sender is asked to retry for the retry's")
				return nil
			}
			return db.insertRequest(req)
		}
		if err := db.insertRequest(req); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := tx.Exec(`UPDATE idempotency SET request_ref = ? WHERE sender = ? AND key = ?`, req.ID, req.Sender, k); err != nil {
				return fmt.Errorf("link idempotency key: %w", err)
			}
		}
		if r.Job != nil {
			return db.insertJob(r.Job, req.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish %s request: %w", req.Sender, err)
	}
	if takenOver {
		return nil, hooks.Errorf(hooks.ECONFLICT, "a retry with this request ID took over while this request ran past its lease; retry to get that answer")
	}
	return lost, nil
}

// Release frees keys that owner reserved for a request that got no final
// answer (it asked the sender to retry), so that the retry executes. Keys
// taken over by another request are left to it.
func (db *DB) Release(ctx context.Context, sender hooks.Sender, keys []string, owner int64) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.Exec(`DELETE FROM idempotency WHERE sender = ? AND key = ? AND state = 'pending' AND owner = ?`,
				sender, k, owner); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %s idempotency keys: %w", sender, err)
	}
	return nil
}

// Record writes the record of a request that was refused or replayed.
func (db *DB) Record(ctx context.Context, req *hooks.Request) error {
	if err := db.write(ctx, func(tx *sql.Tx) error { return db.insertRequest(req) }); err != nil {
		return fmt.Errorf("record %s request: %w", req.Sender, err)
	}
	return nil
}

// Lookup returns the idempotency entry for a key, or an ENOTFOUND error.
func (db *DB) Lookup(ctx context.Context, sender hooks.Sender, key string) (*hooks.Entry, error) {
	row := db.rdb.QueryRowContext(ctx, `SELECT state, status, response, request_ref, locked_until, created_at
		FROM idempotency WHERE sender = ? AND key = ?`, sender, key)
	e, err := scanEntry(row, sender, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, hooks.Errorf(hooks.ENOTFOUND, "no idempotency record for %q", key)
	} else if err != nil {
		return nil, fmt.Errorf("lookup idempotency key: %w", err)
	}
	return e, nil
}

// PurgeIdempotency deletes idempotency entries created before t, a batch at
// a time so that the writer is never held long, and returns how many went.
func (db *DB) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(tx *sql.Tx) (int64, error) {
		res, err := tx.Exec(`DELETE FROM idempotency WHERE (sender, key) IN
			(SELECT sender, key FROM idempotency WHERE created_at < ? LIMIT ?)`, before.UnixMicro(), purgeBatch)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	if err != nil {
		return total, fmt.Errorf("purge idempotency: %w", err)
	}
	return total, nil
}

// purgeBatch is how many rows a purge deletes in one transaction.
const purgeBatch = 1000

// purge runs del in write transactions of its own until one deletes fewer
// than purgeBatch rows, and returns how many went in all.
func (db *DB) purge(ctx context.Context, del func(*sql.Tx) (int64, error)) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.write(ctx, func(tx *sql.Tx) (err error) {
			n, err = del(tx)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// RequestFilter selects request records; zero fields match all.
type RequestFilter struct {
	ID        int64
	Sender    hooks.Sender
	Name      string
	RequestID string
	Since     time.Time
	Limit     int
}

// FindRequests returns request records, newest first.
func (db *DB) FindRequests(ctx context.Context, f RequestFilter) ([]*hooks.Request, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT id, sender, name, request_id, urgency, method, path, remote_addr,
		headers, body, status, response, latency_us, notes, duplicate_of, received_at FROM requests
		WHERE (?1 = '' OR sender = ?1) AND (?2 = '' OR name = ?2) AND (?3 = '' OR request_id = ?3)
			AND (?5 = 0 OR id = ?5) AND received_at >= ?6
		ORDER BY id DESC LIMIT ?4`, f.Sender, f.Name, f.RequestID, f.Limit, f.ID, f.Since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("find requests: %w", err)
	}
	defer rows.Close()
	var out []*hooks.Request
	for rows.Next() {
		r := &hooks.Request{}
		var headers, notes []byte
		var dup sql.NullInt64
		var latency, received int64
		if err := rows.Scan(&r.ID, &r.Sender, &r.Name, &r.RequestID, &r.Urgency, &r.Method, &r.Path, &r.RemoteAddr,
			&headers, &r.Body, &r.Status, &r.Response, &latency, &notes, &dup, &received); err != nil {
			return nil, fmt.Errorf("find requests: %w", err)
		}
		r.Header = http.Header{}
		if err := json.Unmarshal(headers, &r.Header); err != nil {
			return nil, fmt.Errorf("decode headers of request %d: %w", r.ID, err)
		}
		if err := json.Unmarshal(notes, &r.Notes); err != nil {
			return nil, fmt.Errorf("decode notes of request %d: %w", r.ID, err)
		}
		r.DuplicateOf = dup.Int64
		r.Latency = time.Duration(latency) * time.Microsecond
		r.ReceivedAt = time.UnixMicro(received)
		out = append(out, r)
	}
	return out, rows.Err()
}

// PurgeRecords deletes request records received before t, with their jobs
// and attempts, a batch at a time, and returns how many requests went. A
// request with a job still to deliver (available or running) is kept,
// whatever its age: purging never loses a delivery.
func (db *DB) PurgeRecords(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(tx *sql.Tx) (int64, error) {
		// IDs grow with time: the oldest records come first in id order.
		rows, err := tx.Query(`SELECT id FROM requests WHERE received_at < ?
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE request_ref = requests.id AND state IN ('available', 'running'))
			ORDER BY id LIMIT ?`, before.UnixMicro(), purgeBatch)
		if err != nil {
			return 0, err
		}
		var ids []any
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return 0, err
		}
		in := "(?" + strings.Repeat(",?", len(ids)-1) + ")"
		for _, q := range []string{
			`DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE request_ref IN ` + in + `)`,
			`DELETE FROM jobs WHERE request_ref IN ` + in,
			`DELETE FROM requests WHERE id IN ` + in,
		} {
			if _, err := tx.Exec(q, ids...); err != nil {
				return 0, err
			}
		}
		return int64(len(ids)), nil
	})
	if err != nil {
		return total, fmt.Errorf("purge request records: %w", err)
	}
	return total, nil
}
