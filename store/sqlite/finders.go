package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// RequestFilter is the domain's request filter, kept under this name for
// the callers that still spell it here.
type RequestFilter = hooks.RequestFilter

// FindRequests returns request records, newest first.
func (db *DB) FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error) {
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

// JobFilter is the domain's job filter, kept under this name for the
// callers that still spell it here.
type JobFilter = hooks.JobFilter

// FindJobs returns jobs, oldest first.
func (db *DB) FindJobs(ctx context.Context, f hooks.JobFilter) ([]*hooks.Job, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT id, request_ref, sender, name, urgency, priority, state, attempts,
		scheduled_at, locked_until, created_at, last_error FROM jobs
		WHERE (?1 = '' OR state = ?1) AND (?2 = '' OR name = ?2) AND (?4 = 0 OR request_ref = ?4)
		ORDER BY id LIMIT ?3`, f.State, f.Name, f.Limit, f.RequestRef)
	if err != nil {
		return nil, fmt.Errorf("find jobs: %w", err)
	}
	defer rows.Close()
	var out []*hooks.Job
	for rows.Next() {
		j := &hooks.Job{}
		var scheduled, created int64
		var locked sql.NullInt64
		if err := rows.Scan(&j.ID, &j.RequestRef, &j.Sender, &j.Name, &j.Urgency, &j.Priority, &j.State, &j.Attempts,
			&scheduled, &locked, &created, &j.LastError); err != nil {
			return nil, fmt.Errorf("find jobs: %w", err)
		}
		j.ScheduledAt, j.CreatedAt, j.LockedUntil = time.UnixMicro(scheduled), time.UnixMicro(created), fromMicros(locked)
		out = append(out, j)
	}
	return out, rows.Err()
}
