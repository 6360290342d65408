package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// searchWindow bounds a text search: it reads at most this many records
// (by id) below the page's start, so that a search costs the same on a
// store of a million records as on one of a hundred thousand. A page that
// comes out short was not necessarily the last: the next one, from
// BeforeID = start - searchWindow, searches the records before.
// (A variable only so that tests can make it small.)
var searchWindow int64 = 100_000

// SearchWindow is how many records, counted by id down from BeforeID (or
// from the newest), one text search (RequestFilter.Search) reads.
func (db *DB) SearchWindow() int64 { return searchWindow }

// FindRequests returns request records, newest first, filtered by every
// field of f that is set. The indexes of 0006_inspector.sql serve the
// filters by sender, name and error status; id order is arrival order, so
// that a page is an index range, never a sort. The request ID, the time
// range and a text search (in the body's bytes and the stored headers,
// case-sensitive, as on PostgreSQL) filter the records those read, newest
// first until the page is full; a text search reads at most SearchWindow
// records.
func (db *DB) FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q, args := requestsQuery(f)
	rows, err := db.rdb.QueryContext(ctx, q, args...)
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
		if r.Header, err = hooks.DecodeHeaderJSON(string(headers)); err != nil {
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find requests: %w", err)
	}
	return out, nil
}

// requestsQuery is FindRequests' statement for f, whose Limit is set.
func requestsQuery(f hooks.RequestFilter) (string, []any) {
	var where []string
	var args []any
	cond := func(c string, vs ...any) {
		where = append(where, c)
		args = append(args, vs...)
	}
	if f.ID != 0 {
		cond("id = ?", f.ID)
	}
	if f.Sender != "" {
		cond("sender = ?", string(f.Sender))
	}
	if f.Name != "" {
		cond("name = ?", f.Name)
	}
	if f.RequestID != "" {
		cond("request_id = ?", f.RequestID)
	}
	switch {
	case f.Status != 0:
		cond("status = ?", f.Status)
	case f.StatusClass != 0:
		cond("status >= ? AND status < ?", f.StatusClass*100, f.StatusClass*100+100)
	}
	if f.Status >= 300 || (f.Status == 0 && f.StatusClass >= 3) {
		// Spelled out: it is what lets the planner use the partial index
		// on error statuses.
		cond("status >= 300")
	}
	if !f.Since.IsZero() {
		cond("received_at >= ?", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		cond("received_at < ?", f.Until.UnixMicro())
	}
	if f.BeforeID != 0 {
		cond("id < ?", f.BeforeID)
	}
	if f.AfterID != 0 {
		cond("id > ?", f.AfterID)
	}
	if f.Search != "" {
		// instr on a BLOB compares bytes: the body as stored, whatever it
		// is; the headers are JSON text.
		top := "(SELECT COALESCE(MAX(id), 0) + 1 FROM requests)"
		if f.BeforeID != 0 {
			top = "?"
			args = append(args, f.BeforeID)
		}
		where = append(where, "id >= "+top+" - ?", "(instr(body, ?) > 0 OR instr(headers, ?) > 0)")
		args = append(args, searchWindow, []byte(f.Search), f.Search)
	}
	q := `SELECT id, sender, name, request_id, urgency, method, path, remote_addr,
		headers, body, status, response, latency_us, notes, duplicate_of, received_at FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, f.Limit)
	return q, args
}

// FindJobs returns jobs, oldest first, filtered by every field of f that
// is set; AfterID pages forwards.
func (db *DB) FindJobs(ctx context.Context, f hooks.JobFilter) ([]*hooks.Job, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	switch f.State {
	case "":
	case hooks.JobAvailable, hooks.JobRunning, hooks.JobDone, hooks.JobDead:
		// Spelled out, so that the partial index of that state (dead,
		// running, available) can serve the query.
		where = append(where, "state = '"+string(f.State)+"'")
	default:
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if f.Sender != "" {
		where = append(where, "sender = ?")
		args = append(args, string(f.Sender))
	}
	if f.Name != "" {
		where = append(where, "name = ?")
		args = append(args, f.Name)
	}
	if f.RequestRef != 0 {
		where = append(where, "request_ref = ?")
		args = append(args, f.RequestRef)
	}
	if f.AfterID != 0 {
		where = append(where, "id > ?")
		args = append(args, f.AfterID)
	}
	q := `SELECT id, request_ref, sender, name, urgency, priority, state, attempts,
		scheduled_at, locked_until, created_at, finished_at, last_error FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, f.Limit)
	rows, err := db.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find jobs: %w", err)
	}
	defer rows.Close()
	var out []*hooks.Job
	for rows.Next() {
		j := &hooks.Job{}
		var scheduled, created int64
		var locked, finished sql.NullInt64
		if err := rows.Scan(&j.ID, &j.RequestRef, &j.Sender, &j.Name, &j.Urgency, &j.Priority, &j.State, &j.Attempts,
			&scheduled, &locked, &created, &finished, &j.LastError); err != nil {
			return nil, fmt.Errorf("find jobs: %w", err)
		}
		j.ScheduledAt, j.CreatedAt = time.UnixMicro(scheduled), time.UnixMicro(created)
		j.LockedUntil, j.FinishedAt = fromMicros(locked), fromMicros(finished)
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find jobs: %w", err)
	}
	return out, nil
}
