package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// ObserveCommits sets the function told of every group commit once each of
// its writes has its outcome, for metrics: how many writes the batch held,
// how long committing them took (the writes run again after a failure or a
// lost deadlock included), and how many failed for a reason of the store's
// own (the database refused or could not be reached), not an application
// error such as a replay of a request that does not exist. nil stops
// telling. It may be called while the store is in use.
func (db *DB) ObserveCommits(f func(writes int, took time.Duration, failed int)) {
	if f == nil {
		db.commits.Store(nil)
		return
	}
	db.commits.Store(&f)
}

// observeCommit tells the commit observer, if there is one, of a group
// commit (commitAll).
func (db *DB) observeCommit(writes int, took time.Duration, failed int) {
	if f := db.commits.Load(); f != nil {
		(*f)(writes, took, failed)
	}
}

// storeFailure reports whether a write's error is the store's own, for the
// commit observer: the database refused the write or could not be
// reached. An application error a write returns on purpose (a replay of a
// request that does not exist, a key already taken) is not one.
func storeFailure(err error) bool {
	switch hooks.ErrorCode(err) {
	case hooks.EINTERNAL, hooks.EUNAVAILABLE:
		return true
	}
	return false
}

// jobStatsSQL counts the available, running and dead jobs by priority and
// finds the oldest available one's due time. Each state is its own branch,
// whose literal state matches the WHERE clause of that state's partial
// index (jobs_available, jobs_running, jobs_dead), so that PostgreSQL reads
// the index, never the table with every done job (a bound parameter would
// not match it in a generic plan). The leading comment names the statement
// in pg_stat_activity and the server's logs.
const jobStatsSQL = `/* hookbay JobStats */ ` +
	`SELECT 'available', priority, count(*), min(scheduled_at) FROM jobs WHERE state = 'available' GROUP BY priority ` +
	`UNION ALL SELECT 'running', priority, count(*), NULL FROM jobs WHERE state = 'running' GROUP BY priority ` +
	`UNION ALL SELECT 'dead', priority, count(*), NULL FROM jobs WHERE state = 'dead' GROUP BY priority`

// JobStats counts the jobs that are available, running or dead by
// urgency, and finds, by urgency, when the oldest available job whose time
// has come was due, as the SQLite store does: one statement, each state
// read through its partial index; done jobs are not counted
// (hooks.JobStats). Meant to be sampled every few seconds, not run per
// request.
func (db *DB) JobStats(ctx context.Context, now time.Time) (hooks.JobStats, error) {
	st := hooks.JobStats{Counts: map[hooks.JobState]map[hooks.Urgency]int64{}, OldestDue: map[hooks.Urgency]time.Time{}}
	for _, state := range []hooks.JobState{hooks.JobAvailable, hooks.JobRunning, hooks.JobDead} {
		st.Counts[state] = map[hooks.Urgency]int64{}
	}
	rows, err := db.pool.Query(ctx, jobStatsSQL)
	if err != nil {
		return st, fmt.Errorf("count jobs: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var prio int
		var n int64
		var oldest *time.Time
		if err := rows.Scan(&state, &prio, &n, &oldest); err != nil {
			return st, fmt.Errorf("count jobs: %w", translate(err))
		}
		u := hooks.UrgencyOfPriority(prio)
		st.Counts[hooks.JobState(state)][u] += n
		// The oldest available job is due when its time has come; one
		// scheduled for later (a retry's backoff) is not waiting yet.
		if oldest != nil && !oldest.After(now) {
			if t, ok := st.OldestDue[u]; !ok || oldest.Before(t) {
				st.OldestDue[u] = *oldest
			}
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("count jobs: %w", translate(err))
	}
	return st, nil
}

// PoolStats is a snapshot of the connection pool, for metrics: the
// connections it holds now, and how often and how long callers waited
// for one. The listeners' connections are their own, outside the pool.
func (db *DB) PoolStats() hooks.PoolStats {
	s := db.pool.Stat()
	return hooks.PoolStats{
		Acquired:         int(s.AcquiredConns()),
		Idle:             int(s.IdleConns()),
		Total:            int(s.TotalConns()),
		Max:              int(s.MaxConns()),
		Acquires:         s.AcquireCount(),
		EmptyAcquires:    s.EmptyAcquireCount(),
		CanceledAcquires: s.CanceledAcquireCount(),
		AcquireWait:      s.EmptyAcquireWaitTime(),
		Conflicts:        db.Conflicts(),
	}
}
