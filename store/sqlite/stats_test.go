package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// JobStats counts jobs by state and urgency and finds the oldest job that
// is due, each state through its partial index.
func TestDB_JobStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	ctx := context.Background()
	save := func(id string, u hooks.Urgency, at time.Time) {
		t.Helper()
		r := newReceipt(at, id, `{}`)
		r.Request.Urgency, r.Job.Urgency, r.Job.Priority = u, u, u.Priority()
		mustSave(t, db, r)
	}
	claim := func(at time.Time) *hooks.Job {
		t.Helper()
		jobs, err := db.ClaimJobs(ctx, at, time.Minute, 1, 1)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim: %v, %d jobs", err, len(jobs))
		}
		return jobs[0]
	}
	save("c", hooks.UrgencyUrgent, t0)
	save("a", hooks.UrgencyRegular, t0.Add(time.Second))
	save("d", hooks.UrgencyRegular, t0.Add(2*time.Second))
	c := claim(t0.Add(4 * time.Second)) // urgent first
	// Back to the queue with a retry an hour away: available, not due.
	if err := db.FailJob(ctx, c, t0.Add(4*time.Second), t0.Add(time.Hour), false, "boom"); err != nil {
		t.Fatal(err)
	}
	save("e", hooks.UrgencyUrgent, t0.Add(3*time.Second))
	if e := claim(t0.Add(5 * time.Second)); e.Urgency != hooks.UrgencyUrgent {
		t.Fatalf("claimed %+v, want the urgent job e", e)
	}
	a := claim(t0.Add(6 * time.Second))
	if err := db.FailJob(ctx, a, t0.Add(6*time.Second), time.Time{}, true, "boom"); err != nil {
		t.Fatal(err)
	}

	st, err := db.JobStats(ctx, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := map[hooks.JobState]map[hooks.Urgency]int64{
		hooks.JobAvailable: {hooks.UrgencyUrgent: 1, hooks.UrgencyRegular: 1},
		hooks.JobRunning:   {hooks.UrgencyUrgent: 1},
		hooks.JobDead:      {hooks.UrgencyRegular: 1},
	}
	for state, byUrgency := range want {
		for _, u := range []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular} {
			if got := st.Counts[state][u]; got != byUrgency[u] {
				t.Errorf("%s %s: %d, want %d", state, u, got, byUrgency[u])
			}
		}
	}
	if got, ok := st.OldestDue[hooks.UrgencyRegular]; !ok || !got.Equal(t0.Add(2*time.Second)) {
		t.Errorf("oldest due regular job: %v (%v), want d's %v", got, ok, t0.Add(2*time.Second))
	}
	if got, ok := st.OldestDue[hooks.UrgencyUrgent]; ok {
		t.Errorf("oldest due urgent job: %v, want none (the only one waits for its retry)", got)
	}

	// Each state's count is read through its partial index, not by
	// scanning the table, which keeps every done job.
	rdb, err := sql.Open("sqlite3", "file:"+path+"?_query_only=true")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for state, index := range map[string]string{"available": "jobs_available", "running": "jobs_running", "dead": "jobs_dead"} {
		rows, err := rdb.Query(`EXPLAIN QUERY PLAN SELECT priority, COUNT(*), MIN(scheduled_at) FROM jobs WHERE state = '` + state + `' GROUP BY priority`)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), index) {
			t.Errorf("%s jobs are counted with the plan %q, not through %s", state, plan, index)
		}
	}
}

// The commit observer hears of every group commit: its writes, its time,
// and the writes that failed for a reason of the store's own, never an
// application error.
func TestDB_ObserveCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	var mu sync.Mutex
	var commits, writes, failed int
	db.ObserveCommits(func(w int, took time.Duration, f int) {
		mu.Lock()
		defer mu.Unlock()
		commits, writes, failed = commits+1, writes+w, failed+f
		if took <= 0 {
			t.Errorf("a commit took %v", took)
		}
	})
	read := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return commits, writes, failed
	}
	ctx := context.Background()
	mustSave(t, db, newReceipt(t0, "one", `{}`))
	if c, w, f := read(); c != 1 || w != 1 || f != 0 {
		t.Fatalf("after one receipt: %d commits, %d writes, %d failed; want 1, 1, 0", c, w, f)
	}
	if _, err := db.ReplayJobs(ctx, 999, t0, time.Minute, false); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		t.Fatalf("replay of no request: %v", err)
	}
	if _, _, f := read(); f != 0 {
		t.Fatalf("an application error counted as %d failed writes", f)
	}

	// A trigger makes the store itself refuse a write.
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON faults BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	f := &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultStatus, Status: 503, Remaining: -1, Percent: 100, CreatedAt: t0}
	if err := db.AddFault(ctx, f); err == nil {
		t.Fatal("the trigger did not refuse the write")
	}
	if c, w, f := read(); f != 1 || c < 2 || w < 2 {
		t.Fatalf("after a refused write: %d commits, %d writes, %d failed; want 1 failed", c, w, f)
	}
	db.ObserveCommits(nil)
	mustSave(t, db, newReceipt(t0, "two", `{}`))
	if c, _, _ := read(); c > 3 {
		t.Fatalf("told of %d commits after ObserveCommits(nil)", c)
	}
}

var _ interface {
	ObserveCommits(func(int, time.Duration, int))
	JobStats(context.Context, time.Time) (hooks.JobStats, error)
} = (*sqlite.DB)(nil)
