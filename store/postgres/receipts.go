package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
)

// encoded holds a request's JSON columns.
type encoded struct{ headers, notes string }

func encodeRequest(req *hooks.Request) (encoded, error) {
	enc := encoded{headers: string(hooks.AppendHeaderJSON(make([]byte, 0, 512), req.Header)), notes: "[]"}
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
	if err := w.queryRow(insertRequestSQL, requestArgs(req, enc)...).Scan(&req.ID); err != nil {
		return fmt.Errorf("insert request: %w", err)
	}
	w.requests = append(w.requests, req.ID)
	return nil
}

// insertRequestSQL records a request and returns its ID.
const insertRequestSQL = `INSERT INTO requests (sender, name, request_id, urgency, method, path, remote_addr,
		headers, body, status, response, latency_us, notes, duplicate_of, received_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`

// requestArgs are insertRequestSQL's arguments for req.
func requestArgs(req *hooks.Request, enc encoded) []any {
	return []any{string(req.Sender), req.Name, req.RequestID, string(req.Urgency), req.Method, req.Path, req.RemoteAddr,
		enc.headers, req.Body, req.Status, req.Response, req.Latency.Microseconds(), enc.notes, nullID(req.DuplicateOf),
		req.ReceivedAt}
}

// jobArgs are a job's column values, in insertJob's order.
func jobArgs(j *hooks.Job) []any {
	if j.State == "" {
		j.State = hooks.JobAvailable
	}
	var locked *time.Time
	if j.State == hooks.JobRunning {
		locked = &j.LockedUntil // leased at once to a waiting worker (hooks.Queue.Offer)
	}
	return []any{string(j.Sender), j.Name, string(j.Urgency), j.Priority, string(j.State), j.ScheduledAt, j.CreatedAt,
		nullTime(j.FinishedAt), j.Payload, j.Attempts, locked}
}

// jobLeaseSQL are the values of a new job's claim columns, from its state
// and jobArgs' attempts ($a) and locked_until ($l): a job written leased
// (running) holds the lease for this store handle ($h), its end by the
// database's clock as long after now() as locked_until is after created_at
// ($c).
func jobLeaseSQL(a, l, c, h string) string {
	return a + `, ` + l + `::timestamptz, CASE WHEN ` + l + `::timestamptz IS NULL THEN NULL ELSE now() + (` + l +
		`::timestamptz - ` + c + `::timestamptz) END, CASE WHEN ` + l + `::timestamptz IS NULL THEN NULL ELSE ` + h + `::bigint END`
}

// insertJob queues j for request requestRef and sets its ID.
func (db *DB) insertJob(w *wtx, j *hooks.Job, requestRef int64) error {
	args := append([]any{requestRef}, jobArgs(j)...)
	args = append(args, db.id)
	if err := w.queryRow(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at,
			finished_at, payload_bytes, attempts, locked_until, lease_expires, claimed_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, `+jobLeaseSQL("$11", "$12", "$8", "$13")+`) RETURNING id`,
		args...).Scan(&j.ID); err != nil {
		return fmt.Errorf("insert job: %w", err)
	}
	j.RequestRef = requestRef
	if j.State == hooks.JobAvailable {
		w.queued(j.Priority)
	}
	return nil
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
	op := writeOp{fn: func(w *wtx) error {
		// A retried run starts from the request as it was given.
		found = nil
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		if r.Job != nil {
			r.Job.ID = 0
		}
		var err error
		found, err = db.saveReceipt(w, r, enc)
		return err
	}}
	if len(r.Items) == 0 {
		// The usual receipt is one statement, which can travel with its
		// batch's others.
		args := db.receiptArgs(r, enc)
		op.pipe = &pipedOp{sql: receiptSQL, args: args, read: func(row pgx.Row, w *wtx) (bool, error) {
			var res receiptResult
			if err := res.scan(row); err != nil {
				return false, fmt.Errorf("insert request: %w", err)
			}
			return res.whole(r, w), nil
		}}
	}
	if err := db.do(ctx, op); err != nil {
		return nil, fmt.Errorf("save %s receipt: %w", req.Sender, err)
	}
	return found, nil
}

// receiptSQL writes a request, every one of its keys that is free and, if
// all were, its job: the whole of a new request, in one statement.
var receiptSQL = `WITH req AS (
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
			INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at, finished_at, payload_bytes,
				attempts, locked_until, lease_expires, claimed_by)
			SELECT (SELECT id FROM req), $18, $19, $20, $21, $22, $23, $24, $25, $26, ` + jobLeaseSQL("$27", "$28", "$24", "$29") + `
			WHERE $17::boolean AND (SELECT count(*) FROM taken) = cardinality($16::text[])
			RETURNING id)
		SELECT (SELECT id FROM req), ARRAY(SELECT key FROM taken), (SELECT id FROM job)`

// receiptArgs are receiptSQL's arguments for r.
func (db *DB) receiptArgs(r *hooks.Receipt, enc encoded) []any {
	req, keys := r.Request, r.Keys
	if keys == nil {
		keys = []string{}
	}
	hasJob := r.Job != nil
	var jobArg []any
	if hasJob {
		jobArg = jobArgs(r.Job)
	} else {
		jobArg = jobArgs(&hooks.Job{State: hooks.JobAvailable})
	}
	args := []any{string(req.Sender), req.Name, req.RequestID, string(req.Urgency), req.Method, req.Path, req.RemoteAddr,
		enc.headers, req.Body, req.Status, req.Response, req.Latency.Microseconds(), enc.notes, req.ReceivedAt,
		db.stamp(), keys, hasJob}
	return append(append(args, jobArg...), db.id)
}

// receiptResult is what receiptSQL returns: the request's ID, the keys it
// took and its job's ID (nil unless it took them all).
type receiptResult struct {
	id    int64
	got   []string
	jobID *int64
}

func (res *receiptResult) scan(row pgx.Row) error { return row.Scan(&res.id, &res.got, &res.jobID) }

// whole reports whether receiptSQL saved r whole (it took every key), and
// then sets r's IDs and what w announces. Otherwise r needs more statements.
func (res *receiptResult) whole(r *hooks.Receipt, w *wtx) bool {
	if len(res.got) < len(r.Keys) || len(r.Items) > 0 || (r.Job != nil && res.jobID == nil) {
		return false
	}
	r.Request.ID = res.id
	w.requests = append(w.requests, res.id)
	if r.Job != nil {
		r.Job.ID, r.Job.RequestRef = *res.jobID, res.id
		if r.Job.State == hooks.JobAvailable {
			w.queued(r.Job.Priority)
		}
	}
	return true
}

// saveReceipt is SaveReceipt's work inside the transaction: receiptSQL,
// and only when a key was taken, key by key, the take-over of expired
// reservations or the answer of a repeat; then a batch's items.
func (db *DB) saveReceipt(w *wtx, r *hooks.Receipt, enc encoded) (*hooks.Entry, error) {
	req, keys := r.Request, r.Keys
	if keys == nil {
		keys = []string{}
	}
	stamp := db.stamp()
	var res receiptResult
	if err := res.scan(w.queryRow(receiptSQL, db.receiptArgs(r, enc)...)); err != nil {
		return nil, fmt.Errorf("insert request: %w", err)
	}
	if len(r.Items) == 0 && res.whole(r, w) {
		return nil, nil
	}
	req.ID = res.id
	w.requests = append(w.requests, req.ID)
	jobID := res.jobID
	if got := res.got; len(got) < len(keys) {
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
	if r.Job != nil {
		if jobID != nil {
			r.Job.ID, r.Job.RequestRef = *jobID, req.ID
			if r.Job.State == hooks.JobAvailable {
				w.queued(r.Job.Priority)
			}
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
			request_ref = excluded.request_ref, locked_until = NULL, lease_expires = NULL, owner = NULL
		WHERE idempotency.state = 'pending' AND idempotency.lease_expires <= now()
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
		// In key order: two replicas storing batches that share customers
		// take the keys' locks in one order. (Writes grouped in one
		// transaction can still meet in opposite orders; the writer runs a
		// deadlock's loser again.)
		rows, err := w.query(`INSERT INTO idempotency (sender, key, state, status, response, request_ref, created_at)
			SELECT $1, k, 'done', $2, NULL, $3, COALESCE($4::timestamptz, now()) FROM unnest($5::text[]) AS k ORDER BY k
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
	var spanAt, spanLen []*int32
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
		if it.PayloadInBody(req.Body) {
			at, n := int32(it.At), int32(len(j.Payload))
			payloads, spanAt, spanLen = append(payloads, nil), append(spanAt, &at), append(spanLen, &n)
		} else {
			payloads, spanAt, spanLen = append(payloads, j.Payload), append(spanAt, nil), append(spanLen, nil)
		}
		finished = append(finished, nullTime(j.FinishedAt))
	}
	if len(queued) == 0 {
		return nil
	}
	// Identities are drawn in the order rows are inserted, which ORDER BY
	// fixes: the ascending IDs returned belong to the items in order.
	rows, err := w.query(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at,
			finished_at, payload_bytes, payload_at, payload_len)
		SELECT $1, u.sender, u.name, u.urgency, u.priority, u.state, u.scheduled_at, u.created_at, u.finished_at, u.payload_bytes,
			u.payload_at, u.payload_len
		FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[], $8::timestamptz[],
			$9::timestamptz[], $10::bytea[], $11::int[], $12::int[]) WITH ORDINALITY
			AS u(sender, name, urgency, priority, state, scheduled_at, created_at, finished_at, payload_bytes, payload_at, payload_len, ord)
		ORDER BY u.ord
		RETURNING id`, req.ID, senders, names, urgencies, priorities, states, scheduled, created, finished, payloads, spanAt, spanLen)
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
		if j.State == hooks.JobAvailable {
			w.queued(j.Priority)
		}
	}
	return nil
}

// Record writes the record of a request that was refused or replayed.
func (db *DB) Record(ctx context.Context, req *hooks.Request) error {
	enc, err := encodeRequest(req)
	if err != nil {
		return err
	}
	op := writeOp{fn: func(w *wtx) error { return db.insertEncoded(w, req, enc) }}
	op.pipe = &pipedOp{sql: insertRequestSQL, args: requestArgs(req, enc), read: func(row pgx.Row, w *wtx) (bool, error) {
		if err := row.Scan(&req.ID); err != nil {
			return false, fmt.Errorf("insert request: %w", err)
		}
		w.requests = append(w.requests, req.ID)
		return true, nil
	}}
	if err := db.do(ctx, op); err != nil {
		return fmt.Errorf("record %s request: %w", req.Sender, err)
	}
	return nil
}
