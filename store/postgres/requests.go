package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
)

// encoded holds a request's JSON columns.
type encoded struct{ headers, notes string }

func encodeRequest(req *hooks.Request) (encoded, error) {
	enc := encoded{headers: "null", notes: "[]"}
	if req.Header != nil {
		b, err := json.Marshal(req.Header)
		if err != nil {
			return enc, fmt.Errorf("encode headers: %w", err)
		}
		enc.headers = string(b)
	}
	if len(req.Notes) > 0 {
		b, err := json.Marshal(req.Notes)
		if err != nil {
			return enc, fmt.Errorf("encode notes: %w", err)
		}
		enc.notes = string(b)
	}
	return enc, nil
}

// nullID is id as a statement argument: NULL when 0.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// insertRequest records req and sets its ID.
func (db *DB) insertRequest(w *wtx, req *hooks.Request) error {
	enc, err := encodeRequest(req)
	if err != nil {
		return err
	}
	return db.insertEncoded(w, req, enc)
}

func (db *DB) insertEncoded(w *wtx, req *hooks.Request, enc encoded) error {
	err := w.queryRow(`INSERT INTO requests (sender, name, request_id, urgency, method, path, remote_addr,
			headers, body, status, response, latency_us, notes, duplicate_of, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		string(req.Sender), req.Name, req.RequestID, string(req.Urgency), req.Method, req.Path, req.RemoteAddr,
		enc.headers, req.Body, req.Status, req.Response, req.Latency.Microseconds(), enc.notes, nullID(req.DuplicateOf),
		req.ReceivedAt).Scan(&req.ID)
	if err != nil {
		return fmt.Errorf("insert request: %w", err)
	}
	w.requests = append(w.requests, req.ID)
	return nil
}

// jobArgs are a job's column values, in insertJob's order.
func jobArgs(j *hooks.Job) []any {
	if j.State == "" {
		j.State = hooks.JobAvailable
	}
	return []any{string(j.Sender), j.Name, string(j.Urgency), j.Priority, string(j.State), j.ScheduledAt, j.CreatedAt,
		nullTime(j.FinishedAt), j.Payload}
}

// insertJob queues j for request requestRef and sets its ID.
func (db *DB) insertJob(w *wtx, j *hooks.Job, requestRef int64) error {
	args := append([]any{requestRef}, jobArgs(j)...)
	if err := w.queryRow(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at,
			finished_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`, args...).Scan(&j.ID); err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	j.RequestRef = requestRef
	w.jobs = w.jobs || j.State == hooks.JobAvailable
	return nil
}

// entryColumns are what scanEntry reads, in its order.
const entryColumns = `state, status, response, request_ref, locked_until, created_at`

func scanEntry(row pgx.Row, sender hooks.Sender, key string) (*hooks.Entry, error) {
	e := &hooks.Entry{Sender: sender, Key: key}
	var ref *int64
	var locked *time.Time
	if err := row.Scan(&e.State, &e.Response.Status, &e.Response.Body, &ref, &locked, &e.CreatedAt); err != nil {
		return nil, err
	}
	if ref != nil {
		e.RequestRef = *ref
	}
	e.LockedUntil = timeOf(locked)
	return e, nil
}

// readEntry reads the entry of key inside w's transaction.
func readEntry(w *wtx, sender hooks.Sender, key string) (*hooks.Entry, error) {
	return scanEntry(w.queryRow(`SELECT `+entryColumns+` FROM idempotency WHERE sender = $1 AND key = $2`, string(sender), key), sender, key)
}

// SaveReceipt writes an accepted request in one transaction: its record, its
// idempotency keys (answered with the request's status and response) and its
// job. When a key is already taken, no job is written: a done entry is
// returned so that its answer is replayed (the repeat is recorded as a
// duplicate and any new request ID of it replays the same answer); a pending
// entry under a live lease is returned for the caller to wait on, and then
// nothing at all is written. A pending entry whose lease expired (by the
// database's clock) belonged to a process that died: this request takes it
// over, in one guarded statement, so that of two replicas only one does.
func (db *DB) SaveReceipt(ctx context.Context, r *hooks.Receipt) (*hooks.Entry, error) {
	req := r.Request
	r.Keys = uniqueKeys(r.Keys)
	// Encoding happens here, in the caller's goroutine, so that the writers
	// only execute statements.
	enc, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	var found *hooks.Entry
	status, response, notes := req.Status, req.Response, len(req.Notes)
	err = db.write(ctx, func(w *wtx) error {
		// A retried run starts from the request as it was given.
		found = nil
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		if r.Job != nil {
			r.Job.ID = 0
		}
		var err error
		found, err = db.saveReceipt(w, r, enc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("save %s receipt: %w", req.Sender, err)
	}
	return found, nil
}

// saveReceipt is SaveReceipt's work inside the transaction. One statement
// writes the request, every key that is free and, if all were, the job: the
// whole of it for a new request. Only when a key was taken does it go on,
// key by key, to take over expired reservations or answer as a repeat.
func (db *DB) saveReceipt(w *wtx, r *hooks.Receipt, enc encoded) (*hooks.Entry, error) {
	req, keys := r.Request, r.Keys
	if keys == nil {
		keys = []string{}
	}
	stamp := db.stamp()
	hasJob := r.Job != nil
	var jobArg []any
	if hasJob {
		jobArg = jobArgs(r.Job)
	} else {
		jobArg = jobArgs(&hooks.Job{State: hooks.JobAvailable})
	}
	args := []any{string(req.Sender), req.Name, req.RequestID, string(req.Urgency), req.Method, req.Path, req.RemoteAddr,
		enc.headers, req.Body, req.Status, req.Response, req.Latency.Microseconds(), enc.notes, req.ReceivedAt,
		stamp, keys, hasJob}
	args = append(args, jobArg...)
	var got []string
	var jobID *int64
	err := w.queryRow(`WITH req AS (
			INSERT INTO requests (sender, name, request_id, urgency, method, path, remote_addr, headers, body, status,
				response, latency_us, notes, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			RETURNING id),
		taken AS (
			INSERT INTO idempotency (sender, key, state, status, response, request_ref, created_at)
			SELECT $1, k, 'done', $10, $11, (SELECT id FROM req), COALESCE($15::timestamptz, now())
			FROM unnest($16::text[]) AS k
			ON CONFLICT (sender, key) DO NOTHING
			RETURNING key),
		job AS (
			INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at, finished_at, payload)
			SELECT (SELECT id FROM req), $18, $19, $20, $21, $22, $23, $24, $25, $26
			WHERE $17::boolean AND (SELECT count(*) FROM taken) = cardinality($16::text[])
			RETURNING id)
		SELECT (SELECT id FROM req), ARRAY(SELECT key FROM taken), (SELECT id FROM job)`, args...).Scan(&req.ID, &got, &jobID)
	if err != nil {
		return nil, fmt.Errorf("insert request: %w", err)
	}
	w.requests = append(w.requests, req.ID)
	if len(got) < len(keys) {
		obtained := make(map[string]bool, len(got))
		for _, k := range got {
			obtained[k] = true
		}
		for i, k := range keys {
			if obtained[k] {
				continue
			}
			ok, err := takeKey(w, req, k, stamp)
			if err != nil {
				return nil, err
			} else if ok {
				continue
			}
			e, err := readEntry(w, req.Sender, k)
			if err != nil {
				return nil, fmt.Errorf("read idempotency key: %w", err)
			}
			return e, db.undoReceipt(w, req, keys, i, e)
		}
	}
	if hasJob {
		if jobID != nil {
			r.Job.ID, r.Job.RequestRef = *jobID, req.ID
			w.jobs = w.jobs || r.Job.State == hooks.JobAvailable
		} else if err := db.insertJob(w, r.Job, req.ID); err != nil {
			return nil, err
		}
	}
	return nil, db.insertItems(w, req, r.Items, stamp)
}

// takeKey gives key to req when it is free or reserved under an expired
// lease (by the database's clock), in one guarded statement, and reports
// whether it did; stamp is the new key's creation time (nil: now()). When it
// did not, the row is locked until the transaction ends, so that the entry
// read next is the one that stays.
func takeKey(w *wtx, req *hooks.Request, key string, stamp *time.Time) (bool, error) {
	rows, err := w.query(`INSERT INTO idempotency (sender, key, state, status, response, request_ref, created_at)
		VALUES ($1, $2, 'done', $3, $4, $5, COALESCE($6::timestamptz, now()))
		ON CONFLICT (sender, key) DO UPDATE SET state = 'done', status = excluded.status, response = excluded.response,
			request_ref = excluded.request_ref, locked_until = NULL, owner = NULL
		WHERE idempotency.state = 'pending' AND idempotency.locked_until <= now()
		RETURNING key`, string(req.Sender), key, req.Status, req.Response, req.ID, stamp)
	if err != nil {
		return false, fmt.Errorf("take over idempotency key: %w", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("take over idempotency key: %w", err)
	}
	return n == 1, nil
}

// undoReceipt handles keys[i], found taken as e after the request and the
// free keys were written. A pending entry means the request is executing
// elsewhere: everything is taken back and the caller waits. A done entry
// means this is a repeat: its record becomes a duplicate's, the keys before
// keys[i] (a new request ID of a known event) replay the same answer, and
// the ones after it are not kept.
func (db *DB) undoReceipt(w *wtx, req *hooks.Request, keys []string, i int, e *hooks.Entry) error {
	if e.State == hooks.EntryPending {
		// Only this request's keys point at its brand-new record.
		if _, err := w.exec(`DELETE FROM idempotency WHERE sender = $1 AND key = ANY($2) AND request_ref = $3`,
			string(req.Sender), keys, req.ID); err != nil {
			return fmt.Errorf("take back idempotency keys: %w", err)
		}
		if _, err := w.exec(`DELETE FROM requests WHERE id = $1`, req.ID); err != nil {
			return fmt.Errorf("take back request: %w", err)
		}
		w.requests = slices.DeleteFunc(w.requests, func(id int64) bool { return id == req.ID })
		req.ID = 0
		return nil
	}
	if _, err := w.exec(`DELETE FROM idempotency WHERE sender = $1 AND key = ANY($2) AND request_ref = $3`,
		string(req.Sender), keys[i+1:], req.ID); err != nil {
		return fmt.Errorf("take back idempotency keys: %w", err)
	}
	req.MarkDuplicate(e)
	notes, err := json.Marshal(req.Notes)
	if err != nil {
		return fmt.Errorf("encode notes: %w", err)
	}
	if _, err := w.exec(`UPDATE requests SET status = $1, response = $2, duplicate_of = $3, notes = $4 WHERE id = $5`,
		req.Status, req.Response, req.DuplicateOf, string(notes), req.ID); err != nil {
		return fmt.Errorf("mark request duplicate: %w", err)
	}
	if _, err := w.exec(`UPDATE idempotency SET status = $1, response = $2, request_ref = $3
		WHERE sender = $4 AND key = ANY($5) AND request_ref = $6`,
		req.Status, req.Response, e.RequestRef, string(req.Sender), keys[:i], req.ID); err != nil {
		return fmt.Errorf("replay answer under idempotency keys: %w", err)
	}
	return nil
}

// insertItems queues a batch's items: each whose key is free (or that has
// none) gets its job; the others were accepted before and are marked
// Duplicate. Two statements whatever the number of items: one takes the
// keys, one queues the jobs.
func (db *DB) insertItems(w *wtx, req *hooks.Request, items []*hooks.ReceiptItem, stamp *time.Time) error {
	if len(items) == 0 {
		return nil
	}
	keys := []string{}
	seen := map[string]bool{}
	for _, it := range items {
		it.Duplicate = false
		if it.Job != nil {
			it.Job.ID = 0
		}
		if it.Key == "" {
			continue
		}
		if seen[it.Key] {
			it.Duplicate = true // the same key earlier in this batch took it
			continue
		}
		seen[it.Key] = true
		keys = append(keys, it.Key)
	}
	if len(keys) > 0 {
		rows, err := w.query(`INSERT INTO idempotency (sender, key, state, status, response, request_ref, created_at)
			SELECT $1, k, 'done', $2, NULL, $3, COALESCE($4::timestamptz, now()) FROM unnest($5::text[]) AS k
			ON CONFLICT (sender, key) DO NOTHING
			RETURNING key`, string(req.Sender), req.Status, req.ID, stamp, keys)
		if err != nil {
			return fmt.Errorf("insert item keys: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("insert item keys: %w", err)
		}
		free := make(map[string]bool, len(got))
		for _, k := range got {
			free[k] = true
		}
		for _, it := range items {
			if it.Key != "" && !it.Duplicate && !free[it.Key] {
				it.Duplicate = true
			}
		}
	}
	var queued []*hooks.Job
	var senders, names, urgencies, states []string
	var priorities []int32
	var scheduled, created []time.Time
	var finished []*time.Time
	var payloads [][]byte
	for _, it := range items {
		if it.Duplicate || it.Job == nil {
			continue
		}
		j := it.Job
		if j.State == "" {
			j.State = hooks.JobAvailable
		}
		queued = append(queued, j)
		senders, names, urgencies = append(senders, string(j.Sender)), append(names, j.Name), append(urgencies, string(j.Urgency))
		priorities, states = append(priorities, int32(j.Priority)), append(states, string(j.State))
		scheduled, created = append(scheduled, j.ScheduledAt), append(created, j.CreatedAt)
		finished, payloads = append(finished, nullTime(j.FinishedAt)), append(payloads, j.Payload)
	}
	if len(queued) == 0 {
		return nil
	}
	// Identities are drawn in the order rows are inserted, which ORDER BY
	// fixes: the ascending IDs returned belong to the items in order.
	rows, err := w.query(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at,
			finished_at, payload)
		SELECT $1, u.sender, u.name, u.urgency, u.priority, u.state, u.scheduled_at, u.created_at, u.finished_at, u.payload
		FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[], $8::timestamptz[],
			$9::timestamptz[], $10::bytea[]) WITH ORDINALITY
			AS u(sender, name, urgency, priority, state, scheduled_at, created_at, finished_at, payload, ord)
		ORDER BY u.ord
		RETURNING id`, req.ID, senders, names, urgencies, priorities, states, scheduled, created, finished, payloads)
	if err != nil {
		return fmt.Errorf("insert item jobs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("insert item jobs: %w", err)
	}
	if len(ids) != len(queued) {
		return fmt.Errorf("insert item jobs: %d ids for %d jobs", len(ids), len(queued))
	}
	slices.Sort(ids)
	for i, j := range queued {
		j.ID, j.RequestRef = ids[i], req.ID
		w.jobs = w.jobs || j.State == hooks.JobAvailable
	}
	return nil
}

// uniqueKeys drops repeated keys (a request ID that equals a content key),
// which would otherwise make a request a duplicate of itself.
func uniqueKeys(keys []string) []string {
	for i := 1; i < len(keys); i++ {
		if slices.Contains(keys[:i], keys[i]) {
			out := append([]string(nil), keys[:i]...)
			for _, k := range keys[i:] {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
			return out
		}
	}
	return keys
}

// ReserveKeys takes the idempotency keys for a request that will execute inline.
// It returns nil when all keys are now held by owner, pending until
// leaseUntil; otherwise it writes nothing and returns the entry that holds
// the first taken key: done (replay it) or pending under a live lease
// (wait). A pending entry whose lease has expired belonged to a request that
// died or overran; it is taken over, and its owner can no longer finish or
// release it. The taking is one guarded statement (INSERT … ON CONFLICT …
// DO UPDATE … WHERE <expired>), so of two replicas reserving one key, one
// owns it. Expiry is judged by the database's clock, and the lease lasts as
// long from the database's now() as leaseUntil is from DB.Now (or the local
// clock).
func (db *DB) ReserveKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error) {
	keys = uniqueKeys(keys)
	if keys == nil {
		keys = []string{}
	}
	var found *hooks.Entry
	err := db.write(ctx, func(w *wtx) error {
		found = nil
		var err error
		found, err = db.reserve(w, sender, keys, owner, leaseUntil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reserve %s request: %w", sender, err)
	}
	return found, nil
}

func (db *DB) reserve(w *wtx, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error) {
	// The keys that exist, locked: a done or live one is answered without
	// writing anything; the values of expired ones are kept, to put back if
	// the reservation fails.
	rows, err := w.query(`SELECT key, `+entryColumns+`, owner, state = 'done' OR locked_until > now()
		FROM idempotency WHERE sender = $1 AND key = ANY($2) FOR UPDATE`, string(sender), keys)
	if err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	type existing struct {
		e     *hooks.Entry
		owner *int64
		live  bool
	}
	have := map[string]existing{}
	for rows.Next() {
		var x existing
		var key string
		var ref *int64
		var locked *time.Time
		x.e = &hooks.Entry{Sender: sender}
		if err := rows.Scan(&key, &x.e.State, &x.e.Response.Status, &x.e.Response.Body, &ref, &locked, &x.e.CreatedAt,
			&x.owner, &x.live); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read idempotency keys: %w", err)
		}
		x.e.Key, x.e.LockedUntil = key, timeOf(locked)
		if ref != nil {
			x.e.RequestRef = *ref
		}
		have[key] = x
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	for _, k := range keys {
		if x, ok := have[k]; ok && x.live {
			return x.e, nil
		}
	}
	// The guarded statement: each key is inserted, or taken over when its
	// lease has expired; a key that another transaction took meanwhile is
	// neither.
	rows, err = w.query(`INSERT INTO idempotency (sender, key, state, locked_until, owner, created_at)
		SELECT $1, k, 'pending', now() + $4 * interval '1 microsecond', $5, COALESCE($3::timestamptz, now())
		FROM unnest($2::text[]) AS k
		ON CONFLICT (sender, key) DO UPDATE SET locked_until = excluded.locked_until, owner = excluded.owner
		WHERE idempotency.state = 'pending' AND idempotency.locked_until <= now()
		RETURNING key`, string(sender), keys, db.stamp(), micros(leaseUntil.Sub(db.clockNow())), owner)
	if err != nil {
		return nil, fmt.Errorf("reserve idempotency keys: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reserve idempotency keys: %w", err)
	}
	if len(got) == len(keys) {
		return nil, nil
	}
	// Another replica took a key between the two statements: put back what
	// this one wrote, and answer with the first key taken.
	reserved := map[string]bool{}
	for _, k := range got {
		reserved[k] = true
	}
	var first string
	for _, k := range keys {
		if !reserved[k] {
			first = k
			break
		}
	}
	for _, k := range got {
		x, ok := have[k]
		if !ok {
			_, err = w.exec(`DELETE FROM idempotency WHERE sender = $1 AND key = $2`, string(sender), k)
		} else {
			_, err = w.exec(`UPDATE idempotency SET locked_until = $3, owner = $4 WHERE sender = $1 AND key = $2`,
				string(sender), k, nullTime(x.e.LockedUntil), x.owner)
		}
		if err != nil {
			return nil, fmt.Errorf("put back idempotency key: %w", err)
		}
	}
	e, err := readEntry(w, sender, first)
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	return e, nil
}

// FinishReserved ends an inline request that ReserveKeys let through with a final
// answer: it records the request, stores its answer under its keys and
// queues its job, in one transaction. If the reservation was taken over
// (its lease expired while it ran), the keys are not touched and no job is
// queued: when the taker has already answered, the request is recorded as
// its duplicate and that entry is returned, for its answer to be replayed.
// Each key's answer is stored by a statement guarded by the reservation
// (pending, and held by owner).
func (db *DB) FinishReserved(ctx context.Context, r *hooks.Receipt, owner int64) (*hooks.Entry, error) {
	req := r.Request
	keys := uniqueKeys(r.Keys)
	if keys == nil {
		keys = []string{}
	}
	status, response, notes := req.Status, req.Response, len(req.Notes)
	var lost *hooks.Entry
	var takenOver bool
	err := db.write(ctx, func(w *wtx) error {
		lost, takenOver = nil, false
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		for i, k := range keys {
			tag, err := w.exec(`UPDATE idempotency SET state = 'done', status = $1, response = $2, locked_until = NULL, owner = NULL
				WHERE sender = $3 AND key = $4 AND state = 'pending' AND owner = $5`, req.Status, req.Response, string(req.Sender), k, owner)
			if err != nil {
				return fmt.Errorf("store answer under idempotency key: %w", err)
			}
			if tag.RowsAffected() == 1 {
				continue
			}
			if i > 0 {
				return fmt.Errorf("idempotency key %q was taken over while %q was kept", k, keys[0])
			}
			e, err := readEntry(w, req.Sender, k)
			switch {
			case err == nil && e.State == hooks.EntryDone:
				lost = e
				req.MarkDuplicate(e)
			case err != nil && !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("read idempotency key: %w", err)
			default:
				// A retry holds the key and is running now: its answer
				// will be the one kept, so this one must not go out. The
				// request is recorded by the caller, with what it sends.
				takenOver = true
				req.Note("idempotency key taken over by a retry while this request ran; its answer was not kept, and the sender is asked to retry for the retry's")
				return nil
			}
			return db.insertRequest(w, req)
		}
		if err := db.insertRequest(w, req); err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE idempotency SET request_ref = $1 WHERE sender = $2 AND key = ANY($3)`,
			req.ID, string(req.Sender), keys); err != nil {
			return fmt.Errorf("link idempotency keys: %w", err)
		}
		if r.Job != nil {
			return db.insertJob(w, r.Job, req.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish %s reserved request: %w", req.Sender, err)
	}
	if takenOver {
		return nil, hooks.Errorf(hooks.ECONFLICT, "a retry with this request ID took over while this request ran past its lease; retry to get that answer")
	}
	return lost, nil
}

// ReleaseKeys frees keys that owner reserved for a request that got no final
// answer (it asked the sender to retry), so that the retry executes. Keys
// taken over by another request are left to it.
func (db *DB) ReleaseKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64) error {
	if keys == nil {
		keys = []string{}
	}
	err := db.write(ctx, func(w *wtx) error {
		_, err := w.exec(`DELETE FROM idempotency WHERE sender = $1 AND key = ANY($2) AND state = 'pending' AND owner = $3`,
			string(sender), keys, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("release %s idempotency keys: %w", sender, err)
	}
	return nil
}

// Record writes the record of a request that was refused or replayed.
func (db *DB) Record(ctx context.Context, req *hooks.Request) error {
	enc, err := encodeRequest(req)
	if err != nil {
		return err
	}
	if err := db.write(ctx, func(w *wtx) error { return db.insertEncoded(w, req, enc) }); err != nil {
		return fmt.Errorf("record %s request: %w", req.Sender, err)
	}
	return nil
}

// LookupKey returns the idempotency entry for a key, or an ENOTFOUND error.
func (db *DB) LookupKey(ctx context.Context, sender hooks.Sender, key string) (*hooks.Entry, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+entryColumns+` FROM idempotency WHERE sender = $1 AND key = $2`, string(sender), key)
	e, err := scanEntry(row, sender, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, hooks.Errorf(hooks.ENOTFOUND, "no idempotency record for %q", key)
	} else if err != nil {
		return nil, fmt.Errorf("lookup idempotency key: %w", translate(err))
	}
	return e, nil
}

// purgeBatch is how many rows a purge deletes in one transaction.
const purgeBatch = 1000

// purge runs del, each time in a transaction of its own (outside the group
// commit, so that no request waits behind a purge), until it deletes fewer
// than purgeBatch rows, and returns how many went in all.
func (db *DB) purge(ctx context.Context, del func(ctx context.Context, tx pgx.Tx) (int64, error)) (int64, error) {
	var total int64
	for {
		select {
		case <-db.quit:
			return total, ErrClosed
		default:
		}
		var n int64
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) (err error) {
			n, err = del(ctx, tx)
			return err
		})
		if err != nil {
			return total, translate(err)
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// PurgeIdempotency deletes idempotency entries created before t, a batch at
// a time, and returns how many went.
func (db *DB) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM idempotency WHERE (sender, key) IN
			(SELECT sender, key FROM idempotency WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, purgeBatch)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("purge idempotency: %w", err)
	}
	return total, nil
}

// FindRequests returns request records, newest first.
func (db *DB) FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if f.ID != 0 {
		arg("id = ?", f.ID)
	}
	if f.Sender != "" {
		arg("sender = ?", string(f.Sender))
	}
	if f.Name != "" {
		arg("name = ?", f.Name)
	}
	if f.RequestID != "" {
		arg("request_id = ?", f.RequestID)
	}
	if f.Status != 0 {
		arg("status = ?", f.Status)
	} else if f.StatusClass != 0 {
		arg("status / 100 = ?", f.StatusClass)
	}
	if f.Search != "" {
		// The body is bytes, the headers JSON text: the same text is
		// looked for in both.
		arg("(position(convert_to(?::text, 'UTF8') IN COALESCE(body, '')) > 0 OR strpos(headers, ?::text) > 0)", f.Search)
	}
	if !f.Since.IsZero() {
		arg("received_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		arg("received_at < ?", f.Until)
	}
	if f.BeforeID != 0 {
		arg("id < ?", f.BeforeID)
	}
	q := `SELECT id, sender, name, request_id, urgency, method, path, remote_addr, headers, body, status, response,
		latency_us, notes, duplicate_of, received_at FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find requests: %w", translate(err))
	}
	defer rows.Close()
	var out []*hooks.Request
	for rows.Next() {
		r := &hooks.Request{}
		var headers, notes string
		var dup *int64
		var latency int64
		if err := rows.Scan(&r.ID, &r.Sender, &r.Name, &r.RequestID, &r.Urgency, &r.Method, &r.Path, &r.RemoteAddr,
			&headers, &r.Body, &r.Status, &r.Response, &latency, &notes, &dup, &r.ReceivedAt); err != nil {
			return nil, fmt.Errorf("find requests: %w", translate(err))
		}
		r.Header = http.Header{}
		if err := json.Unmarshal([]byte(headers), &r.Header); err != nil {
			return nil, fmt.Errorf("decode headers of request %d: %w", r.ID, err)
		}
		if err := json.Unmarshal([]byte(notes), &r.Notes); err != nil {
			return nil, fmt.Errorf("decode notes of request %d: %w", r.ID, err)
		}
		if dup != nil {
			r.DuplicateOf = *dup
		}
		r.Latency = time.Duration(latency) * time.Microsecond
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find requests: %w", translate(err))
	}
	return out, nil
}

// PurgeRecords deletes request records received before t, with their jobs
// and attempts, a batch at a time, and returns how many requests went. A
// request with a job still to deliver (available or running) is kept,
// whatever its age: purging never loses a delivery.
func (db *DB) PurgeRecords(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		// IDs grow with time: the oldest records come first in id order.
		rows, err := tx.Query(ctx, `SELECT id FROM requests WHERE received_at < $1
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE request_ref = requests.id AND state IN ('available', 'running'))
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, before, purgeBatch)
		if err != nil {
			return 0, err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		for _, q := range []string{
			`DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE request_ref = ANY($1))`,
			`DELETE FROM jobs WHERE request_ref = ANY($1)`,
			`DELETE FROM requests WHERE id = ANY($1)`,
		} {
			if _, err := tx.Exec(ctx, q, ids); err != nil {
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

// sortJobs puts claimed jobs in queue order: priority, scheduled time, ID.
func sortJobs(jobs []*hooks.Job) {
	sort.Slice(jobs, func(a, b int) bool {
		ja, jb := jobs[a], jobs[b]
		if ja.Priority != jb.Priority {
			return ja.Priority < jb.Priority
		}
		if !ja.ScheduledAt.Equal(jb.ScheduledAt) {
			return ja.ScheduledAt.Before(jb.ScheduledAt)
		}
		return ja.ID < jb.ID
	})
}
