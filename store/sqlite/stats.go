package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// ObserveCommits sets the function told of every group commit once each
// of its writes has its outcome, for metrics: how many writes the batch
// held, how long committing them took (retries of a failed write
// included), and how many failed for a reason of the store's own (not an
// application error such as a replay of a request that does not exist).
// nil stops telling. It may be called while the store is in use.
func (db *DB) ObserveCommits(f func(writes int, took time.Duration, failed int)) {
	if f == nil {
		db.commits.Store(nil)
		return
	}
	db.commits.Store(&f)
}

// JobStats counts the jobs that are available, running or dead by
// urgency, and finds, by urgency, when the oldest available job whose time
// has come was due. Each state is read through its own partial index; done
// jobs are not counted (hooks.JobStats). Meant to be sampled every few
// seconds, not run per request.
func (db *DB) JobStats(ctx context.Context, now time.Time) (hooks.JobStats, error) {
	st := hooks.JobStats{Counts: map[hooks.JobState]map[hooks.Urgency]int64{}, OldestDue: map[hooks.Urgency]time.Time{}}
	for _, state := range []hooks.JobState{hooks.JobAvailable, hooks.JobRunning, hooks.JobDead} {
		st.Counts[state] = map[hooks.Urgency]int64{}
		// The literal state matches the partial index's WHERE clause, so
		// that SQLite uses it (a bound parameter would not).
		rows, err := db.rdb.QueryContext(ctx, `SELECT priority, COUNT(*), MIN(scheduled_at) FROM jobs
			WHERE state = '`+string(state)+`' GROUP BY priority`)
		if err != nil {
			return st, fmt.Errorf("count %s jobs: %w", state, err)
		}
		for rows.Next() {
			var prio int
			var n int64
			var oldest sql.NullInt64
			if err := rows.Scan(&prio, &n, &oldest); err != nil {
				rows.Close()
				return st, fmt.Errorf("count %s jobs: %w", state, err)
			}
			u := hooks.UrgencyOfPriority(prio)
			st.Counts[state][u] += n
			// The oldest available job is due when its time has come; one
			// scheduled for later (a retry's backoff) is not waiting yet.
			if state == hooks.JobAvailable && oldest.Valid && oldest.Int64 <= now.UnixMicro() {
				if t, ok := st.OldestDue[u]; !ok || time.UnixMicro(oldest.Int64).Before(t) {
					st.OldestDue[u] = time.UnixMicro(oldest.Int64)
				}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return st, fmt.Errorf("count %s jobs: %w", state, err)
		}
	}
	return st, nil
}
