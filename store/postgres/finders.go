package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// FindAttempts returns a job's attempts, oldest first.
func (db *DB) FindAttempts(ctx context.Context, jobID int64) ([]*hooks.Attempt, error) {
	rows, err := db.pool.Query(ctx, `SELECT attempt, started_at, duration_us, outcome, error FROM job_attempts
		WHERE job_id = $1 ORDER BY id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("find attempts: %w", translate(err))
	}
	defer rows.Close()
	var out []*hooks.Attempt
	for rows.Next() {
		a := &hooks.Attempt{JobID: jobID}
		var dur int64
		if err := rows.Scan(&a.Attempt, &a.StartedAt, &dur, &a.Outcome, &a.Error); err != nil {
			return nil, fmt.Errorf("find attempts: %w", translate(err))
		}
		a.Duration = time.Duration(dur) * time.Microsecond
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find attempts: %w", translate(err))
	}
	return out, nil
}

// FindJobs returns jobs, oldest first.
func (db *DB) FindJobs(ctx context.Context, f hooks.JobFilter) ([]*hooks.Job, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.pool.Query(ctx, `SELECT id, request_ref, sender, name, urgency, priority, state, attempts,
			scheduled_at, locked_until, created_at, finished_at, last_error FROM jobs
		WHERE ($1 = '' OR state = $1) AND ($2 = '' OR sender = $2) AND ($3 = '' OR name = $3)
			AND ($4 = 0 OR request_ref = $4) AND id > $5
		ORDER BY id LIMIT $6`, string(f.State), string(f.Sender), f.Name, f.RequestRef, f.AfterID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("find jobs: %w", translate(err))
	}
	defer rows.Close()
	var out []*hooks.Job
	for rows.Next() {
		j := &hooks.Job{}
		var locked, finished *time.Time
		if err := rows.Scan(&j.ID, &j.RequestRef, &j.Sender, &j.Name, &j.Urgency, &j.Priority, &j.State, &j.Attempts,
			&j.ScheduledAt, &locked, &j.CreatedAt, &finished, &j.LastError); err != nil {
			return nil, fmt.Errorf("find jobs: %w", translate(err))
		}
		j.LockedUntil, j.FinishedAt = timeOf(locked), timeOf(finished)
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find jobs: %w", translate(err))
	}
	return out, nil
}

// searchWindow bounds a text search, as on SQLite: it reads at most this
// many records (by id) below the page's start, and the next page, from
// BeforeID = start - searchWindow, reads the records before. (A variable
// only so that tests can make it small.)
var searchWindow int64 = 100_000

// SearchWindow is how many records, counted by id down from BeforeID (or
// from the newest), one text search (RequestFilter.Search) reads.
func (db *DB) SearchWindow() int64 { return searchWindow }

// FindRequests returns request records, newest first, filtered by every
// field of f that is set. The indexes of 0003_inspector.sql serve the
// filters by sender, name and error status; id order is arrival order, so
// that a page is an index range read backwards, never a sort. The request
// ID, the time range and a text search filter the records those read,
// newest first until the page is full; a text search reads at most
// SearchWindow records.
func (db *DB) FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q, args := requestsQuery(f)
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
		if r.Header, err = hooks.DecodeHeaderJSON(headers); err != nil {
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

// requestsQuery is FindRequests' statement for f, whose Limit is set, and
// its arguments.
func requestsQuery(f hooks.RequestFilter) (string, []any) {
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
	switch {
	case f.Status != 0:
		arg("status = ?", f.Status)
	case f.StatusClass != 0:
		// A range, not status / 100: an index on status can serve a range.
		arg("status >= ?", f.StatusClass*100)
		arg("status < ?", f.StatusClass*100+100)
	}
	if f.Status >= 300 || (f.Status == 0 && f.StatusClass >= 3) {
		// Spelled out: the partial index on error statuses
		// (requests_error_status) serves a statement only when its WHERE
		// clause implies the index's status >= 300, and a bound parameter
		// implies nothing in a generic plan, the one a statement the pool
		// has prepared ends up with.
		where = append(where, "status >= 300")
	}
	if f.Search != "" {
		// The body is bytes, the headers JSON text: the same text is
		// looked for in both, in at most searchWindow records below the
		// page's start, as on SQLite.
		if f.BeforeID != 0 {
			arg("id >= ?::bigint - "+fmt.Sprint(searchWindow), f.BeforeID)
		} else {
			where = append(where, "id >= (SELECT COALESCE(max(id), 0) + 1 FROM requests) - "+fmt.Sprint(searchWindow))
		}
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
	if f.AfterID != 0 {
		arg("id > ?", f.AfterID)
	}
	q := `SELECT id, sender, name, request_id, urgency, method, path, remote_addr, headers, body, status, response,
		latency_us, notes, duplicate_of, received_at FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	return q, args
}
