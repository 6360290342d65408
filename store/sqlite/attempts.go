package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// insertAttempts records the attempt each job just finished.
func insertAttempts(tx writeTx, jobs []*hooks.Job, outcome hooks.Outcome, errText string) error {
	for _, j := range jobs {
		started := j.AttemptStarted
		if started.IsZero() {
			continue // finished without being run (tests, or store-action bookkeeping)
		}
		if _, err := tx.Exec(`INSERT INTO job_attempts (job_id, attempt, started_at, duration_us, outcome, error)
			VALUES (?, ?, ?, ?, ?, ?)`, j.ID, j.Attempts, started.UnixMicro(), j.AttemptDuration.Microseconds(),
			string(outcome), errText); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
	}
	return nil
}

// FindAttempts returns a job's attempts, oldest first.
func (db *DB) FindAttempts(ctx context.Context, jobID int64) ([]*hooks.Attempt, error) {
	rows, err := db.rdb.QueryContext(ctx, `SELECT attempt, started_at, duration_us, outcome, error FROM job_attempts
		WHERE job_id = ? ORDER BY id`, jobID)
	if err != nil {
		return nil, fmt.Errorf("find attempts: %w", err)
	}
	defer rows.Close()
	var out []*hooks.Attempt
	for rows.Next() {
		a := &hooks.Attempt{JobID: jobID}
		var started, dur int64
		if err := rows.Scan(&a.Attempt, &started, &dur, &a.Outcome, &a.Error); err != nil {
			return nil, fmt.Errorf("find attempts: %w", err)
		}
		a.StartedAt, a.Duration = time.UnixMicro(started), time.Duration(dur)*time.Microsecond
		out = append(out, a)
	}
	return out, rows.Err()
}
