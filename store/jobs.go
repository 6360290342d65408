package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// RescueJobs makes running jobs whose lease expired before now available
// again: they were held by a process that died, and are claimed again in
// their turn.
func (db *DB) RescueJobs(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE jobs SET state = 'available', locked_until = NULL
			WHERE state = 'running' AND locked_until <= ?`, now.UnixMicro())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("rescue jobs with expired leases: %w", err)
	}
	return n, nil
}

// ClaimJobs leases up to limit available jobs until now+lease, in queue
// order (priority, then scheduled time, then ID): urgent before regular.
func (db *DB) ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*hooks.Job, error) {
	var jobs []*hooks.Job
	err := db.write(ctx, func(tx *sql.Tx) error {
		jobs = jobs[:0]
		rows, err := tx.Query(`UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = ?1
			WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND scheduled_at <= ?2
				ORDER BY priority, scheduled_at, id LIMIT ?3)
			RETURNING id, request_ref, sender, name, urgency, priority, attempts, scheduled_at, created_at, last_error,
				(SELECT request_id FROM requests WHERE requests.id = jobs.request_ref),
				(SELECT body FROM requests WHERE requests.id = jobs.request_ref)`,
			now.Add(lease).UnixMicro(), now.UnixMicro(), limit)
		if err != nil {
			return fmt.Errorf("claim jobs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			j := &hooks.Job{State: hooks.JobRunning, LockedUntil: now.Add(lease)}
			var scheduled, created int64
			var rid sql.NullString
			if err := rows.Scan(&j.ID, &j.RequestRef, &j.Sender, &j.Name, &j.Urgency, &j.Priority, &j.Attempts,
				&scheduled, &created, &j.LastError, &rid, &j.Body); err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			j.RequestID = rid.String
			j.ScheduledAt, j.CreatedAt = time.UnixMicro(scheduled), time.UnixMicro(created)
			jobs = append(jobs, j)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
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
	return jobs, nil
}

// CompleteJobs marks running jobs done, in one statement. Each update
// matches the attempt that claimed the job: a worker whose lease expired,
// and whose job another worker took, cannot mark that other run done.
func (db *DB) CompleteJobs(ctx context.Context, jobs []*hooks.Job, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	q, args := claimedJobs(`UPDATE jobs SET state = 'done', locked_until = NULL, finished_at = ?`, jobs, now.UnixMicro())
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	return nil
}

// claimedJobs completes an UPDATE with a WHERE clause that matches each
// job in the attempt that claimed it.
func claimedJobs(update string, jobs []*hooks.Job, args ...any) (string, []any) {
	for _, j := range jobs {
		args = append(args, j.ID, j.Attempts)
	}
	return update + ` WHERE state = 'running' AND (id, attempts) IN (VALUES (?, ?)` +
		strings.Repeat(", (?, ?)", len(jobs)-1) + `)`, args
}

// FailJob records a failed attempt: the job is available again at retryAt,
// or dead.
func (db *DB) FailJob(ctx context.Context, j *hooks.Job, now, retryAt time.Time, dead bool, errText string) error {
	if dead {
		return db.finishJob(ctx, j, `UPDATE jobs SET state = 'dead', locked_until = NULL, finished_at = ?, last_error = ?
			WHERE id = ? AND attempts = ? AND state = 'running'`, now.UnixMicro(), errText, j.ID, j.Attempts)
	}
	return db.finishJob(ctx, j, `UPDATE jobs SET state = 'available', locked_until = NULL, scheduled_at = ?, last_error = ?
		WHERE id = ? AND attempts = ? AND state = 'running'`, retryAt.UnixMicro(), errText, j.ID, j.Attempts)
}

func (db *DB) finishJob(ctx context.Context, j *hooks.Job, q string, args ...any) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	return nil
}

// ReleaseJobs returns leased jobs that were not run to the queue, undoing
// the attempt their claim counted.
func (db *DB) ReleaseJobs(ctx context.Context, jobs []*hooks.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	q, args := claimedJobs(`UPDATE jobs SET state = 'available', locked_until = NULL, attempts = MAX(attempts - 1, 0)`, jobs)
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("release jobs: %w", err)
	}
	return nil
}

// JobFilter selects jobs; zero fields match all.
type JobFilter struct {
	State hooks.JobState
	Name  string
	Limit int
}

// FindJobs returns jobs, oldest first.
func (db *DB) FindJobs(ctx context.Context, f JobFilter) ([]*hooks.Job, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT id, request_ref, sender, name, urgency, priority, state, attempts,
		scheduled_at, locked_until, created_at, last_error FROM jobs
		WHERE (?1 = '' OR state = ?1) AND (?2 = '' OR name = ?2) ORDER BY id LIMIT ?3`, f.State, f.Name, f.Limit)
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
