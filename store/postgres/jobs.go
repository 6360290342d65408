package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
)

// A job's later updates (complete, fail, release, extend) match the claim
// that leased it: state running, the attempt it counted, and this handle as
// the claimer. A replica whose lease expired, and whose job another took,
// changes nothing; nor does a handle opened after a crash, for the jobs its
// predecessor held (they come back through RescueJobs once their lease
// expires).
const claimedBy = `jobs.state = 'running' AND jobs.attempts = u.attempts AND jobs.claimed_by = `

// claimArrays lists the jobs' IDs and attempts, for unnest.
func claimArrays(jobs []*hooks.Job) (ids []int64, attempts []int32) {
	for _, j := range jobs {
		ids, attempts = append(ids, j.ID), append(attempts, int32(j.Attempts))
	}
	return ids, attempts
}

// attempt is the record of one finished attempt.
type attempt struct {
	job     *hooks.Job
	outcome hooks.Outcome
	err     string
}

// insertAttempts records the attempts just finished, in one statement.
// Jobs finished without being run (tests, store-action bookkeeping) have no
// AttemptStarted and no record.
func insertAttempts(w *wtx, atts []attempt) error {
	var ids, durations []int64
	var nums []int32
	var started []time.Time
	var outcomes, errs []string
	for _, a := range atts {
		if a.job.AttemptStarted.IsZero() {
			continue
		}
		ids, nums = append(ids, a.job.ID), append(nums, int32(a.job.Attempts))
		w.jobs = append(w.jobs, a.job.ID)
		started, durations = append(started, a.job.AttemptStarted), append(durations, a.job.AttemptDuration.Microseconds())
		outcomes, errs = append(outcomes, string(a.outcome)), append(errs, a.err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := w.exec(`INSERT INTO job_attempts (job_id, attempt, started_at, duration_us, outcome, error)
		SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::bigint[], $5::text[], $6::text[])`,
		ids, nums, started, durations, outcomes, errs); err != nil {
		return fmt.Errorf("record attempts: %w", err)
	}
	return nil
}

// attemptsOf pairs each of jobs whose ID is in owned with outcome and err.
func attemptsOf(jobs []*hooks.Job, owned map[int64]bool, outcome hooks.Outcome, err string) []attempt {
	var out []attempt
	for _, j := range jobs {
		if owned[j.ID] {
			out = append(out, attempt{j, outcome, err})
		}
	}
	return out
}

// collectIDs reads a RETURNING id result into a set.
func collectIDs(rows pgx.Rows, err error) (map[int64]bool, error) {
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	set := make(map[int64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// RescueJobs takes back running jobs whose lease expired: they were held by
// a process that died. Each such attempt is recorded as interrupted, and the
// job is available again in its turn, or dead when the policy says so: a job
// that kills its process every time cannot crash-loop forever.
//
// Expiry is judged by the database's clock: now (the caller's) only stamps
// the interrupted attempt and judges the job's age for the policy. The
// update is guarded (still running,
// same attempt, lease still expired), so two replicas rescuing at once
// record each job once.
func (db *DB) RescueJobs(ctx context.Context, now time.Time, policy hooks.RetryPolicy) (int64, error) {
	var n int64
	err := db.write(ctx, func(w *wtx) error {
		n = 0
		rows, err := w.query(`SELECT id, attempts, created_at, ahead = 1 FROM jobs
			WHERE state = 'running' AND lease_expires <= now()`)
		if err != nil {
			return err
		}
		var expired []*hooks.Job
		var ahead []bool
		for rows.Next() {
			j := &hooks.Job{AttemptStarted: now} // the attempt is recorded as found now
			var a bool
			if err := rows.Scan(&j.ID, &j.Attempts, &j.CreatedAt, &a); err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, j)
			ahead = append(ahead, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(expired) == 0 {
			return err
		}
		ids, attempts := claimArrays(expired)
		dead := make([]bool, len(expired))
		for i, j := range expired {
			// Claimed ahead, it may never have started: its attempt is
			// given back, and its next claim counts (ahead = 2).
			dead[i] = !ahead[i] && policy.Dead(j, now)
		}
		owned, err := collectIDs(w.query(`UPDATE jobs SET
				state = CASE WHEN u.dead THEN 'dead' ELSE 'available' END,
				locked_until = NULL, lease_expires = NULL, claimed_by = NULL,
				last_error = CASE WHEN u.ahead THEN $6 ELSE $1 END,
				attempts = CASE WHEN u.ahead THEN greatest(jobs.attempts - 1, 0) ELSE jobs.attempts END,
				ahead = CASE WHEN u.ahead THEN 2 ELSE 0 END,
				finished_at = CASE WHEN u.dead THEN $2 ELSE jobs.finished_at END
			FROM unnest($3::bigint[], $4::int[], $5::boolean[], $7::boolean[]) AS u(id, attempts, dead, ahead)
			WHERE jobs.id = u.id AND jobs.state = 'running' AND jobs.attempts = u.attempts
				AND jobs.lease_expires <= now()
			RETURNING jobs.id`, hooks.RescuedError, now, ids, attempts, dead, hooks.RescuedAheadError, ahead))
		if err != nil {
			return err
		}
		var atts []attempt
		for i, j := range expired {
			if !owned[j.ID] {
				continue // another replica rescued it first
			}
			outcome, errText := hooks.OutcomeInterrupted, hooks.RescuedError
			if dead[i] {
				outcome = hooks.OutcomeDead
			}
			if ahead[i] {
				errText = hooks.RescuedAheadError
			}
			atts = append(atts, attempt{j, outcome, errText})
		}
		n = int64(len(atts))
		for _, a := range atts {
			if a.outcome == hooks.OutcomeInterrupted {
				w.queued(0) // available again: of any priority
			}
		}
		return insertAttempts(w, atts)
	})
	if err != nil {
		return 0, fmt.Errorf("rescue jobs with expired leases: %w", err)
	}
	return n, nil
}

// ClaimJobs leases up to limit available jobs whose time has come by now, in
// queue order (priority, then scheduled time, then ID): urgent before
// regular. The rows are locked with FOR UPDATE SKIP LOCKED inside the
// claiming statement, so that replicas claiming at once never get the same
// job and never wait for each other.
//
// The jobs returned, and the rows, say the lease ends at now+lease, by the
// caller's clock, which is when the caller must be done; the database
// judges it expired once lease has passed since its own now() at the claim.
//
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

// payloadSQL is a job's payload, over a row of jobs and its request r:
// the bytes the row keeps, or its bounds in the request's body (payload_at,
// payload_len; see hooks.ReceiptItem.PayloadInBody), NULL for a job that
// delivers the whole body.
const payloadSQL = `COALESCE(jobs.payload_bytes, substring(r.body FROM jobs.payload_at + 1 FOR jobs.payload_len))`

// payloadOutsideSQL is true for a row of jobs whose payload's bounds its
// request r's body does not reach (hooks.PayloadOutsideBodyError):
// payloadSQL would cut such a payload short.
const payloadOutsideSQL = `(jobs.payload_at IS NOT NULL AND COALESCE(jobs.payload_at::bigint + jobs.payload_len > length(r.body), true))`

func (db *DB) claim(ctx context.Context, now time.Time, lease time.Duration, limit, below, start int) ([]*hooks.Job, error) {
	var jobs []*hooks.Job
	err := db.write(ctx, func(w *wtx) error {
		jobs = jobs[:0]
		var bad []int64 // jobs whose payload cannot be read: made dead
		rows, err := w.query(`WITH c AS (
				SELECT id FROM jobs WHERE state = 'available' AND scheduled_at <= $1 AND priority < $5
				ORDER BY priority, scheduled_at, id LIMIT $2
				FOR UPDATE SKIP LOCKED)
			UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, claimed_by = $3,
				ahead = CASE WHEN $6 OR jobs.ahead = 2 THEN 0 ELSE 1 END,
				locked_until = $1::timestamptz + $4 * interval '1 microsecond',
				lease_expires = now() + $4 * interval '1 microsecond'
			FROM c, requests r
			WHERE jobs.id = c.id AND r.id = jobs.request_ref
			RETURNING jobs.id, jobs.request_ref, jobs.sender, jobs.name, jobs.urgency, jobs.priority, jobs.attempts,
				jobs.scheduled_at, jobs.created_at, jobs.last_error, r.request_id, r.name, r.headers,
				COALESCE(`+payloadSQL+`, r.body), (jobs.payload_bytes IS NOT NULL OR jobs.payload_at IS NOT NULL), `+payloadOutsideSQL,
			now, limit, db.id, micros(lease), below, start >= limit)
		if err != nil {
			return fmt.Errorf("claim jobs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			j := &hooks.Job{State: hooks.JobRunning, LockedUntil: now.Add(lease)}
			var headers string
			var item, outside bool
			if err := rows.Scan(&j.ID, &j.RequestRef, &j.Sender, &j.Name, &j.Urgency, &j.Priority, &j.Attempts,
				&j.ScheduledAt, &j.CreatedAt, &j.LastError, &j.RequestID, &j.Source, &headers, &j.Body, &item, &outside); err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			if outside {
				bad = append(bad, j.ID)
				continue
			}
			if item {
				j.Payload = j.Body // one customer of a batch
			}
			if j.Header, err = hooks.DecodeHeaderJSON(headers); err != nil {
				return fmt.Errorf("decode headers of job %d: %w", j.ID, err)
			}
			jobs = append(jobs, j)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if len(bad) > 0 {
			// Never run: the claim's attempt is taken back.
			if _, err := w.exec(`UPDATE jobs SET state = 'dead', attempts = attempts - 1, locked_until = NULL, lease_expires = NULL,
				claimed_by = NULL, finished_at = $1, last_error = $2 WHERE id = ANY($3)`, now, hooks.PayloadOutsideBodyError, bad); err != nil {
				return fmt.Errorf("claim jobs: make jobs %v dead: %w", bad, err)
			}
			w.jobs = append(w.jobs, bad...) // the replicas' inspectors hear of them
		}
		hooks.SortJobs(jobs)
		if start > 0 && start < limit && len(jobs) > 0 {
			// The most pressing go to the waiting workers: their
			// attempts count.
			ids := make([]int64, 0, start)
			for _, j := range jobs[:min(start, len(jobs))] {
				ids = append(ids, j.ID)
			}
			if _, err := w.exec(`UPDATE jobs SET ahead = 0 WHERE id = ANY($1)`, ids); err != nil {
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

// CompleteJobs marks running jobs done, in one statement. Each update
// matches the claim that leased the job: a worker whose lease expired, and
// whose job another worker took, cannot mark that other run done.
func (db *DB) CompleteJobs(ctx context.Context, jobs []*hooks.Job, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	ids, attempts := claimArrays(jobs)
	err := db.write(ctx, func(w *wtx) error {
		owned, err := collectIDs(w.query(`UPDATE jobs SET state = 'done', locked_until = NULL, lease_expires = NULL, claimed_by = NULL, finished_at = $1
			FROM unnest($2::bigint[], $3::int[]) AS u(id, attempts)
			WHERE jobs.id = u.id AND `+claimedBy+`$4
			RETURNING jobs.id`, now, ids, attempts, db.id))
		if err != nil {
			return err
		}
		// Only runs that still held their job made an attempt of record.
		return insertAttempts(w, attemptsOf(jobs, owned, hooks.OutcomeOK, ""))
	})
	if err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	return nil
}

// FailJob records a failed attempt: the job is available again at retryAt,
// or dead.
func (db *DB) FailJob(ctx context.Context, j *hooks.Job, now, retryAt time.Time, dead bool, errText string) error {
	// The error can hold any bytes (a downstream's answer, a cut in the
	// middle of a character), and text refuses some: without this the
	// failure would not be recorded, and the job would run again and again.
	errText = cleanText(errText)
	ids, attempts := claimArrays([]*hooks.Job{j})
	err := db.write(ctx, func(w *wtx) error {
		var q string
		var args []any
		outcome := hooks.OutcomeFailed
		if dead {
			outcome = hooks.OutcomeDead
			q, args = `UPDATE jobs SET state = 'dead', locked_until = NULL, lease_expires = NULL, claimed_by = NULL, finished_at = $1, last_error = $2`,
				[]any{now, errText}
		} else {
			q, args = `UPDATE jobs SET state = 'available', locked_until = NULL, lease_expires = NULL, claimed_by = NULL, scheduled_at = $1, last_error = $2`,
				[]any{retryAt, errText}
		}
		owned, err := collectIDs(w.query(q+` FROM unnest($3::bigint[], $4::int[]) AS u(id, attempts)
			WHERE jobs.id = u.id AND `+claimedBy+`$5 RETURNING jobs.id`, append(args, ids, attempts, db.id)...))
		if err != nil {
			return err
		}
		// A job another worker holds now is not ours to record. (No
		// wake-up: a retry is due later, and the pool polls.)
		return insertAttempts(w, attemptsOf([]*hooks.Job{j}, owned, outcome, errText))
	})
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	return nil
}

// ReleaseJobs returns leased jobs that were not run to the queue, undoing
// the attempt their claim counted; those started have their attempt
// recorded as interrupted.
func (db *DB) ReleaseJobs(ctx context.Context, jobs []*hooks.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	ids, attempts := claimArrays(jobs)
	err := db.write(ctx, func(w *wtx) error {
		owned, err := collectIDs(w.query(`UPDATE jobs SET state = 'available', locked_until = NULL, lease_expires = NULL, claimed_by = NULL,
				attempts = GREATEST(jobs.attempts - 1, 0)
			FROM unnest($1::bigint[], $2::int[]) AS u(id, attempts)
			WHERE jobs.id = u.id AND `+claimedBy+`$3
			RETURNING jobs.id`, ids, attempts, db.id))
		if err != nil {
			return err
		}
		if len(owned) > 0 {
			w.queued(0) // released: of any priority
		}
		return insertAttempts(w, attemptsOf(jobs, owned, hooks.OutcomeInterrupted, ""))
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
	// A dead job starts over: attempts and age count from now. A job
	// waiting for its next attempt just runs now.
	return db.retry(ctx, ids, `UPDATE jobs SET scheduled_at = $1,
			attempts = CASE state WHEN 'dead' THEN 0 ELSE attempts END,
			created_at = CASE state WHEN 'dead' THEN $1 ELSE created_at END,
			state = 'available', finished_at = NULL
		WHERE state IN ('dead', 'available') AND id = ANY($2)`, now, ids)
}

// RetryDead makes every dead job that died at or after since available now.
func (db *DB) RetryDead(ctx context.Context, since, now time.Time) (int64, error) {
	return db.retry(ctx, nil, `UPDATE jobs SET state = 'available', attempts = 0, scheduled_at = $1, created_at = $1, finished_at = NULL
		WHERE state = 'dead' AND finished_at >= $2`, now, since)
}

// retry runs a retry statement and announces the change: the jobs ids
// names, or, without ids, that jobs changed.
func (db *DB) retry(ctx context.Context, ids []int64, q string, args ...any) (int64, error) {
	var n int64
	err := db.write(ctx, func(w *wtx) error {
		tag, err := w.exec(q, args...)
		n = tag.RowsAffected()
		if n > 0 {
			w.queued(0) // queued again: of any priority
			if ids != nil {
				w.jobs = append(w.jobs, ids...)
			} else {
				w.manyJobs = true
			}
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retry jobs: %w", err)
	}
	return n, nil
}

// ReplayJobs queues new jobs for a recorded request, already leased to the
// caller until now+lease (expiring, for the database, once lease has passed
// since its now()) so that the caller runs them now (a running server will
// not take them unless the lease expires): one for each thing the request
// delivered (each customer of a batch, with its payload), or one for the
// whole body. A request that was not accepted (no 2xx), or was a duplicate,
// is not replayed unless force is set: that would deliver what the sender
// never had accepted.
func (db *DB) ReplayJobs(ctx context.Context, requestRef int64, now time.Time, lease time.Duration, force bool) ([]*hooks.Job, error) {
	var out []*hooks.Job
	err := db.write(ctx, func(w *wtx) error {
		r := hooks.ReplayedRequest{Ref: requestRef}
		var headers string
		var dup *int64
		err := w.queryRow(`SELECT sender, name, urgency, request_id, headers, body, status, duplicate_of FROM requests WHERE id = $1`,
			requestRef).Scan(&r.Job.Sender, &r.Job.Source, &r.Job.Urgency, &r.Job.RequestID, &headers, &r.Job.Body, &r.Status, &dup)
		if errors.Is(err, pgx.ErrNoRows) {
			return hooks.Errorf(hooks.ENOTFOUND, "no request %d", requestRef)
		} else if err != nil {
			return err
		}
		if dup != nil {
			r.DuplicateOf = *dup
		}
		if r.Job.Header, err = hooks.DecodeHeaderJSON(headers); err != nil {
			return fmt.Errorf("decode headers: %w", err)
		}
		// What the request delivered: its jobs' distinct names and payloads.
		var bad int64
		switch err := w.queryRow(`SELECT jobs.id FROM jobs JOIN requests r ON r.id = jobs.request_ref
			WHERE jobs.request_ref = $1 AND `+payloadOutsideSQL+` LIMIT 1`, requestRef).Scan(&bad); {
		case err == nil:
			return fmt.Errorf("job %d: %s", bad, hooks.PayloadOutsideBodyError)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		rows, err := w.query(`SELECT jobs.name, `+payloadSQL+` AS p FROM jobs JOIN requests r ON r.id = jobs.request_ref
			WHERE jobs.request_ref = $1 GROUP BY jobs.name, p ORDER BY MIN(jobs.id)`, requestRef)
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
			if err := w.queryRow(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, attempts, scheduled_at,
					locked_until, lease_expires, claimed_by, created_at, payload_bytes)
				VALUES ($1, $2, $3, $4, $5, 'running', 1, $6, $6::timestamptz + $7 * interval '1 microsecond',
					now() + $7 * interval '1 microsecond', $8, $6, $9)
				RETURNING id`, requestRef, string(j.Sender), j.Name, string(j.Urgency), j.Priority, now,
				micros(lease), db.id, j.Payload).Scan(&j.ID); err != nil {
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
// it (same claim); false means another worker took it. The job shows until;
// the database judges the lease expired as long after its now() as until
// is after DB.Now (or the local clock).
func (db *DB) ExtendLease(ctx context.Context, j *hooks.Job, until time.Time) (bool, error) {
	var n int64
	left := micros(until.Sub(db.clockNow()))
	err := db.write(ctx, func(w *wtx) error {
		tag, err := w.exec(`UPDATE jobs SET locked_until = $1, lease_expires = now() + $2 * interval '1 microsecond'
			WHERE id = $3 AND attempts = $4 AND state = 'running' AND claimed_by = $5`, until, left, j.ID, j.Attempts, db.id)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("extend lease of job %d: %w", j.ID, err)
	}
	j.LockedUntil = until
	return n == 1, nil
}
