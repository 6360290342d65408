package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// RescueJobs takes back running jobs whose lease expired before now: they
// were held by a process that died. Each such attempt is recorded as
// interrupted, and the job is available again in its turn, or dead when
// the policy says so: a job that kills its process every time cannot
// crash-loop forever.
func (db *DB) RescueJobs(ctx context.Context, now time.Time, policy hooks.RetryPolicy) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx writeTx) error {
		n = 0
		rows, err := tx.Query(`SELECT id, attempts, created_at, ahead FROM jobs WHERE state = 'running' AND locked_until <= ?`, now.UnixMicro())
		if err != nil {
			return err
		}
		var expired []*hooks.Job
		var ahead []bool
		for rows.Next() {
			j := &hooks.Job{AttemptStarted: now} // the attempt is recorded as found now
			var created int64
			var a int
			if err := rows.Scan(&j.ID, &j.Attempts, &created, &a); err != nil {
				rows.Close()
				return err
			}
			j.CreatedAt = time.UnixMicro(created)
			expired = append(expired, j)
			ahead = append(ahead, a == 1)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i, j := range expired {
			state, outcome, finished, errText := hooks.JobAvailable, hooks.OutcomeInterrupted, sql.NullInt64{}, hooks.RescuedError
			// Claimed ahead: it may never have started. Its attempt is
			// given back, and its next claim counts (ahead = 2).
			give, nextAhead := 0, 0
			switch {
			case ahead[i]:
				give, nextAhead, errText = 1, 2, hooks.RescuedAheadError
			case policy.Dead(j, now):
				state, outcome, finished = hooks.JobDead, hooks.OutcomeDead, micros(now)
			}
			// Guarded by what was read: a job that another process rescued,
			// or whose holder ended it, since is no longer this one's.
			res, err := tx.Exec(`UPDATE jobs SET state = ?, locked_until = NULL, last_error = ?, finished_at = COALESCE(?, finished_at),
					attempts = MAX(attempts - ?, 0), ahead = ?
				WHERE id = ? AND attempts = ? AND state = 'running' AND locked_until <= ?`,
				string(state), errText, finished, give, nextAhead, j.ID, j.Attempts, now.UnixMicro())
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil {
				return err
			} else if k == 0 {
				continue
			}
			if err := insertAttempts(tx, []*hooks.Job{j}, outcome, errText); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rescue jobs with expired leases: %w", err)
	}
	return n, nil
}

// ClaimJobs leases up to limit available jobs until now+lease, in queue
// order (priority, then scheduled time, then ID): urgent before regular.
// The first start of them are for waiting workers; the others are claimed
// ahead (see hooks.JobStore).
func (db *DB) ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit, start int) ([]*hooks.Job, error) {
	return db.claim(ctx, now, lease, limit, hooks.NoPriority, start)
}

// ClaimPressing is ClaimJobs for the jobs whose priority is below below
// (more pressing) only.
func (db *DB) ClaimPressing(ctx context.Context, now time.Time, lease time.Duration, limit, below, start int) ([]*hooks.Job, error) {
	return db.claim(ctx, now, lease, limit, below, start)
}

func (db *DB) claim(ctx context.Context, now time.Time, lease time.Duration, limit, below, start int) ([]*hooks.Job, error) {
	var jobs []*hooks.Job
	err := db.write(ctx, func(tx writeTx) error {
		jobs = jobs[:0]
		var spans map[*hooks.Job]span
		rows, err := db.stmts.claim.Query(now.Add(lease).UnixMicro(), now.UnixMicro(), limit, below, start >= limit)
		if err != nil {
			return fmt.Errorf("claim jobs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			j := &hooks.Job{State: hooks.JobRunning, LockedUntil: now.Add(lease)}
			var scheduled, created int64
			var at, n sql.NullInt64
			if err := rows.Scan(&j.ID, &j.RequestRef, &j.Sender, &j.Name, &j.Urgency, &j.Priority, &j.Attempts,
				&scheduled, &created, &j.LastError, &j.Payload, &at, &n); err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			if at.Valid {
				if spans == nil {
					spans = make(map[*hooks.Job]span)
				}
				spans[j] = span{at.Int64, n.Int64}
			}
			j.ScheduledAt, j.CreatedAt = time.UnixMicro(scheduled), time.UnixMicro(created)
			jobs = append(jobs, j)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim jobs: %w", err)
		}
		rows.Close()
		hooks.SortJobs(jobs)
		if jobs, err = db.readClaimed(tx, jobs, spans, now); err != nil {
			return err
		}
		if start > 0 && start < limit && len(jobs) > 0 {
			// The most pressing go to the waiting workers: their
			// attempts count.
			ids := make([]string, 0, start)
			for _, j := range jobs[:min(start, len(jobs))] {
				ids = append(ids, strconv.FormatInt(j.ID, 10))
			}
			if _, err := tx.Exec(`UPDATE jobs SET ahead = 0 WHERE id IN (` + strings.Join(ids, ",") + `)`); err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return jobs, nil
}

// PayloadSQL is a job's payload as an SQL expression over a row of the
// jobs table: the bytes the row keeps, or its span of its request's body
// (payload_at, payload_len; see hooks.ReceiptItem.PayloadInBody), NULL for a job that delivers
// the whole body. Readers of the file outside this package use it too.
const PayloadSQL = `CASE WHEN jobs.payload_at IS NULL THEN jobs.payload_bytes ELSE substr(` + jobBodySQL + `,
	jobs.payload_at + 1, jobs.payload_len) END`

// jobBodySQL is the body of a row of jobs' request, as bytes.
const jobBodySQL = `CAST((SELECT body FROM requests WHERE requests.id = jobs.request_ref) AS BLOB)`

// PayloadOutside returns an error naming the first of the jobs that where
// (an SQL condition on the jobs table, with args) selects whose payload's
// bounds its request's stored body does not reach, missing bounds included
// (hooks.PayloadOutsideBodyError), or nil. PayloadSQL would cut such a
// payload short, or read it as the whole body: readers check first.
func PayloadOutside(q interface {
	QueryRow(query string, args ...any) *sql.Row
}, where string, args ...any) error {
	var id int64
	err := q.QueryRow(`SELECT id FROM jobs WHERE (`+where+`) AND jobs.payload_at IS NOT NULL
		AND COALESCE(jobs.payload_at + jobs.payload_len > length(`+jobBodySQL+`), 1) LIMIT 1`, args...).Scan(&id)
	switch {
	case err == nil:
		return fmt.Errorf("job %d: %s", id, hooks.PayloadOutsideBodyError)
	case errors.Is(err, sql.ErrNoRows):
		return nil
	default:
		return fmt.Errorf("look for payloads outside their bodies: %w", err)
	}
}

// span is where a job's payload lies in its request's body
// (hooks.ReceiptItem.PayloadInBody).
type span struct{ at, n int64 }

// of returns the span's bytes of body.
func (s span) of(body []byte) ([]byte, error) {
	if s.at < 0 || s.n <= 0 || s.at > int64(len(body))-s.n {
		return nil, fmt.Errorf("payload at %d+%d is outside the request's %d-byte body", s.at, s.n, len(body))
	}
	return body[s.at : s.at+s.n : s.at+s.n], nil
}

// readClaimed reads what claimed jobs deliver from their request records:
// the request ID, the name in the URL, the headers and, unless the job has
// a payload of its own (whole, or its span in spans), the body. A job whose
// span the body does not reach is made dead and left out of the jobs
// returned.
func (db *DB) readClaimed(tx writeTx, jobs []*hooks.Job, spans map[*hooks.Job]span, now time.Time) ([]*hooks.Job, error) {
	if len(jobs) == 0 {
		return jobs, nil
	}
	byRef := make(map[int64][]*hooks.Job, len(jobs))
	args := make([]any, 0, len(jobs))
	for _, j := range jobs {
		if byRef[j.RequestRef] == nil {
			args = append(args, j.RequestRef)
		}
		byRef[j.RequestRef] = append(byRef[j.RequestRef], j)
	}
	rows, err := tx.Query(`SELECT id, request_id, name, headers, body FROM requests WHERE id IN (?`+
		strings.Repeat(", ?", len(args)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read claimed jobs' requests: %w", err)
	}
	defer rows.Close()
	bad := map[*hooks.Job]bool{}
	for rows.Next() {
		var id int64
		var rid sql.NullString
		var name string
		var headers, body []byte
		if err := rows.Scan(&id, &rid, &name, &headers, &body); err != nil {
			return nil, fmt.Errorf("read claimed jobs' requests: %w", err)
		}
		h, err := hooks.DecodeHeaderJSON(string(headers))
		if err != nil {
			return nil, fmt.Errorf("decode headers of request %d: %w", id, err)
		}
		for _, j := range byRef[id] {
			j.RequestID, j.Source, j.Header, j.Body = rid.String, name, h, body
			if sp, ok := spans[j]; ok {
				if j.Payload, err = sp.of(body); err != nil {
					bad[j] = true
					continue
				}
			}
			if j.Payload != nil {
				j.Body = j.Payload // one customer of a batch
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read claimed jobs' requests: %w", err)
	}
	rows.Close()
	for j := range bad {
		// Never run: the claim's attempt is taken back.
		if _, err := tx.Exec(`UPDATE jobs SET state = 'dead', attempts = attempts - 1, locked_until = NULL, finished_at = ?, last_error = ?
			WHERE id = ?`,
			now.UnixMicro(), hooks.PayloadOutsideBodyError, j.ID); err != nil {
			return nil, fmt.Errorf("make job %d dead: %w", j.ID, err)
		}
	}
	return slices.DeleteFunc(jobs, func(j *hooks.Job) bool { return bad[j] }), nil
}

// CompleteJobs marks running jobs done, in one statement. Each update
// matches the attempt that claimed the job: a worker whose lease expired,
// and whose job another worker took, cannot mark that other run done.
func (db *DB) CompleteJobs(ctx context.Context, jobs []*hooks.Job, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	q, args := claimedJobs(`UPDATE jobs SET state = 'done', locked_until = NULL, finished_at = ?`, jobs, now.UnixMicro())
	err := db.write(ctx, func(tx writeTx) error {
		done, err := updateClaimed(tx, q, args, jobs)
		if err != nil {
			return err
		}
		return insertAttempts(tx, done, hooks.OutcomeOK, "")
	})
	if err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	return nil
}

// updateClaimed runs an UPDATE that claimedJobs completed and returns the
// jobs it changed: those whose claim still held. Only their runs made an
// attempt of record.
func updateClaimed(tx writeTx, q string, args []any, jobs []*hooks.Job) ([]*hooks.Job, error) {
	rows, err := tx.Query(q+` RETURNING id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		held[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []*hooks.Job
	for _, j := range jobs {
		if held[j.ID] {
			out = append(out, j)
		}
	}
	return out, nil
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
		return db.finishJob(ctx, j, hooks.OutcomeDead, errText, `UPDATE jobs SET state = 'dead', locked_until = NULL, finished_at = ?, last_error = ?
			WHERE id = ? AND attempts = ? AND state = 'running'`, now.UnixMicro(), errText, j.ID, j.Attempts)
	}
	return db.finishJob(ctx, j, hooks.OutcomeFailed, errText, `UPDATE jobs SET state = 'available', locked_until = NULL, scheduled_at = ?, last_error = ?
		WHERE id = ? AND attempts = ? AND state = 'running'`, retryAt.UnixMicro(), errText, j.ID, j.Attempts)
}

func (db *DB) finishJob(ctx context.Context, j *hooks.Job, outcome hooks.Outcome, errText, q string, args ...any) error {
	err := db.write(ctx, func(tx writeTx) error {
		res, err := tx.Exec(q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // another worker holds the job now: not our attempt to record
		}
		return insertAttempts(tx, []*hooks.Job{j}, outcome, errText)
	})
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	return nil
}

// ReleaseJobs returns leased jobs that were not run to the queue, undoing
// the attempt their claim counted; one whose action had started has that
// attempt recorded as interrupted. A job whose claim no longer holds
// (another worker took it) is left alone, and nothing is recorded for it.
func (db *DB) ReleaseJobs(ctx context.Context, jobs []*hooks.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	q, args := claimedJobs(`UPDATE jobs SET state = 'available', locked_until = NULL, attempts = MAX(attempts - 1, 0)`, jobs)
	err := db.write(ctx, func(tx writeTx) error {
		released, err := updateClaimed(tx, q, args, jobs)
		if err != nil {
			return err
		}
		return insertAttempts(tx, released, hooks.OutcomeInterrupted, "")
	})
	if err != nil {
		return fmt.Errorf("release jobs: %w", err)
	}
	return nil
}

// RetryJobs makes the given jobs available now: what Bubblehouse calls
// reprocessing upon request, on our side.
// Done and running jobs are left alone; it returns how many were retried.
func (db *DB) RetryJobs(ctx context.Context, ids []int64, now time.Time) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{now.UnixMicro()}
	for _, id := range ids {
		args = append(args, id)
	}
	// A dead job starts over: attempts and age count from now (no worker
	// can hold it, so resetting attempts cannot confuse a stale one). A job
	// waiting for its next attempt just runs now.
	return db.retry(ctx, `UPDATE jobs SET scheduled_at = ?1,
			attempts = CASE state WHEN 'dead' THEN 0 ELSE attempts END,
			created_at = CASE state WHEN 'dead' THEN ?1 ELSE created_at END,
			state = 'available', finished_at = NULL
		WHERE state IN ('dead', 'available') AND id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
}

// RetryDead makes every dead job that died at or after since available now.
func (db *DB) RetryDead(ctx context.Context, since, now time.Time) (int64, error) {
	return db.retry(ctx, `UPDATE jobs SET state = 'available', attempts = 0, scheduled_at = ?1, created_at = ?1, finished_at = NULL
		WHERE state = 'dead' AND finished_at >= ?2`, now.UnixMicro(), since.UnixMicro())
}

func (db *DB) retry(ctx context.Context, q string, args ...any) (int64, error) {
	n, err := db.execCount(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("retry jobs: %w", err)
	}
	return n, nil
}

// ReplayJobs queues new jobs for a recorded request, already leased to the
// caller until now+lease so that the caller runs them now (a running
// server will not take them unless the lease expires): one for each thing
// the request delivered (each customer of a batch, with its payload), or
// one for the whole body. A request that was not accepted (no 2xx), or was
// a duplicate, is not replayed unless force is set: that would deliver
// what the sender never had accepted.
func (db *DB) ReplayJobs(ctx context.Context, requestRef int64, now time.Time, lease time.Duration, force bool) ([]*hooks.Job, error) {
	var out []*hooks.Job
	err := db.write(ctx, func(tx writeTx) error {
		r := hooks.ReplayedRequest{Ref: requestRef}
		var headers []byte
		var dup sql.NullInt64
		err := tx.QueryRow(`SELECT sender, name, urgency, request_id, headers, body, status, duplicate_of FROM requests WHERE id = ?`,
			requestRef).Scan(&r.Job.Sender, &r.Job.Source, &r.Job.Urgency, &r.Job.RequestID, &headers, &r.Job.Body, &r.Status, &dup)
		if errors.Is(err, sql.ErrNoRows) {
			return hooks.Errorf(hooks.ENOTFOUND, "no request %d", requestRef)
		} else if err != nil {
			return err
		}
		r.DuplicateOf = dup.Int64
		if r.Job.Header, err = hooks.DecodeHeaderJSON(string(headers)); err != nil {
			return fmt.Errorf("decode headers: %w", err)
		}
		// What the request delivered: its jobs' distinct names and payloads.
		if err := PayloadOutside(tx, `request_ref = ?`, requestRef); err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT name, `+PayloadSQL+` AS p FROM jobs WHERE request_ref = ? GROUP BY name, p ORDER BY MIN(id)`, requestRef)
		if err != nil {
			return err
		}
		for rows.Next() {
			var u hooks.ReplayUnit
			if err := rows.Scan(&u.Name, &u.Payload); err != nil {
				rows.Close()
				return err
			}
			r.Units = append(r.Units, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if out, err = hooks.PlanReplay(r, now, lease, force); err != nil {
			return err
		}
		for _, j := range out {
			res, err := tx.Exec(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, attempts, scheduled_at,
				locked_until, created_at, payload_bytes) VALUES (?, ?, ?, ?, ?, 'running', 1, ?, ?, ?, ?)`, requestRef, j.Sender, j.Name,
				string(j.Urgency), j.Priority, now.UnixMicro(), j.LockedUntil.UnixMicro(), now.UnixMicro(), j.Payload)
			if err != nil {
				return err
			}
			if j.ID, err = res.LastInsertId(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay request %d: %w", requestRef, err)
	}
	return out, nil
}

// ExtendLease holds a running job until until, if the caller still holds
// it (same attempt); false means another worker took it.
func (db *DB) ExtendLease(ctx context.Context, j *hooks.Job, until time.Time) (bool, error) {
	n, err := db.execCount(ctx, `UPDATE jobs SET locked_until = ? WHERE id = ? AND attempts = ? AND state = 'running'`,
		until.UnixMicro(), j.ID, j.Attempts)
	if err != nil {
		return false, fmt.Errorf("extend lease of job %d: %w", j.ID, err)
	}
	j.LockedUntil = until
	return n == 1, nil
}
