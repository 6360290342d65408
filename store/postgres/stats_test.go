package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
)

// JobStats counts jobs by state and urgency and finds the oldest job that
// is due, as on SQLite, each state through its partial index, never by
// reading the done jobs.
func TestDB_JobStats(t *testing.T) {
	t.Parallel()
	s := newSchema(t)
	db := s.open(t)
	useClock(db)
	ctx := context.Background()
	save := func(id string, u hooks.Urgency, at time.Time) {
		t.Helper()
		r := newReceipt(at, id, `{}`)
		r.Request.Urgency, r.Job.Urgency, r.Job.Priority = u, u, u.Priority()
		mustCommit(t, db, r)
	}
	claim := func(at time.Time) *hooks.Job {
		t.Helper()
		jobs := mustClaim(t, db, at, time.Minute, 1)
		if len(jobs) != 1 {
			t.Fatalf("claim at %v: %d jobs, want 1", at, len(jobs))
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
	save("f", hooks.UrgencyRealtime, t0.Add(7*time.Second))
	f := claim(t0.Add(8 * time.Second))
	if f.Urgency != hooks.UrgencyRealtime {
		t.Fatalf("claimed %+v, want the realtime job f", f)
	}
	if err := db.CompleteJobs(ctx, []*hooks.Job{f}, t0.Add(9*time.Second)); err != nil {
		t.Fatal(err)
	}

	want := map[hooks.JobState]map[hooks.Urgency]int64{
		hooks.JobAvailable: {hooks.UrgencyUrgent: 1, hooks.UrgencyRegular: 1},
		hooks.JobRunning:   {hooks.UrgencyUrgent: 1},
		hooks.JobDead:      {hooks.UrgencyRegular: 1},
	}
	check := func(st hooks.JobStats) {
		t.Helper()
		for _, state := range []hooks.JobState{hooks.JobAvailable, hooks.JobRunning, hooks.JobDead} {
			for _, u := range []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular} {
				if got := st.Counts[state][u]; got != want[state][u] {
					t.Errorf("%s %s: %d, want %d", state, u, got, want[state][u])
				}
			}
		}
		if got, ok := st.OldestDue[hooks.UrgencyRegular]; !ok || !got.Equal(t0.Add(2*time.Second)) {
			t.Errorf("oldest due regular job: %v (%v), want d's %v", got, ok, t0.Add(2*time.Second))
		}
		if got, ok := st.OldestDue[hooks.UrgencyUrgent]; ok {
			t.Errorf("oldest due urgent job: %v, want none (the only one waits for its retry)", got)
		}
		if got, ok := st.OldestDue[hooks.UrgencyRealtime]; ok {
			t.Errorf("oldest due realtime job: %v, want none (it is done)", got)
		}
	}
	st, err := db.JobStats(ctx, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	check(st)
	// Once its time has come, the retried urgent job waits too.
	st, err = db.JobStats(ctx, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := st.OldestDue[hooks.UrgencyUrgent]; !ok || !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("an hour later, oldest due urgent job: %v (%v), want c's retry at %v", got, ok, t0.Add(time.Hour))
	}

	// Many done jobs, as a store that has delivered for a while keeps:
	// they are not counted, and the statement the store runs reads each
	// state's partial index, not the table.
	s.exec(t, `INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at, finished_at)
		SELECT (SELECT min(id) FROM requests), 'bubblehouse', 'SendEvent1', 'regular', 2, 'done', now(), now(), now()
		FROM generate_series(1, 20000)`)
	s.exec(t, `ANALYZE jobs`)
	if st, err = db.JobStats(ctx, t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	check(st)
	conn := s.conn(t)
	defer conn.Close(ctx)
	// The store's own statement, as the server last saw it from the
	// store's connection.
	var stmt string
	if err := conn.QueryRow(ctx, `SELECT query FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE '/* hookbay JobStats */%' LIMIT 1`).Scan(&stmt); err != nil {
		t.Fatalf("find the JobStats statement in pg_stat_activity: %v", err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN `+stmt)
	if err != nil {
		t.Fatalf("explain %s: %v", stmt, err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	text := strings.Join(plan, "\n")
	for _, index := range []string{"jobs_available", "jobs_running", "jobs_dead"} {
		if !strings.Contains(text, index) {
			t.Errorf("the plan does not read %s:\n%s", index, text)
		}
	}
	if strings.Contains(text, "Seq Scan on jobs") {
		t.Errorf("the plan reads the whole jobs table:\n%s", text)
	}
}

// commitCounts gathers what a commit observer is told.
type commitCounts struct {
	mu                      sync.Mutex
	commits, writes, failed int
	most                    int // the most writes one commit held
	nonPositive             int // commits that took no time
}

func (c *commitCounts) observe(w int, took time.Duration, f int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits, c.writes, c.failed, c.most = c.commits+1, c.writes+w, c.failed+f, max(c.most, w)
	if took <= 0 {
		c.nonPositive++
	}
}

func (c *commitCounts) read() (commits, writes, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commits, c.writes, c.failed
}

// The commit observer hears of every group commit once its writes have
// their outcome, before they return: its writes, its time, and the writes
// that failed for a reason of the store's own (the database refused them
// or did not answer in time), never an application error.
func TestDB_ObserveCommits(t *testing.T) {
	t.Parallel()
	s := newSchema(t)
	// One writer that gathers what is queued within 200 ms, so that
	// concurrent writes share a commit; a batch that waits on a lock
	// gives up after 500 ms.
	db := s.open(t, postgres.WithWriters(1), postgres.WithGroupCommit(200*time.Millisecond, 64),
		postgres.WithBatchTimeout(500*time.Millisecond))
	useClock(db)
	var c commitCounts
	db.ObserveCommits(c.observe)
	ctx := context.Background()

	mustCommit(t, db, newReceipt(t0, "one", `{}`))
	if n, w, f := c.read(); n != 1 || w != 1 || f != 0 {
		t.Fatalf("after one receipt: %d commits, %d writes, %d failed; want 1, 1, 0", n, w, f)
	}
	if _, err := db.ReplayJobs(ctx, 999999, t0, time.Minute, false); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		t.Fatalf("replay of no request: %v", err)
	}
	if n, _, f := c.read(); n != 2 || f != 0 {
		t.Fatalf("after a replay of no request: %d commits, %d failed; want 2 commits and the application error not counted", n, f)
	}

	// A trigger makes the database refuse one write of a batch: that
	// write fails alone, the others are committed.
	s.exec(t, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$`)
	s.exec(t, `CREATE TRIGGER refuse BEFORE INSERT ON faults FOR EACH ROW EXECUTE FUNCTION refuse()`)
	_, w0, _ := c.read()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.SaveReceipt(ctx, newReceipt(t0, fmt.Sprintf("batch-%d", i), `{}`))
			errs <- err
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- db.AddFault(ctx, &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultStatus, Status: 503, Remaining: -1, Percent: 100, CreatedAt: t0})
	}()
	wg.Wait()
	close(errs)
	refused := 0
	for err := range errs {
		if err != nil {
			refused++
			if !strings.Contains(err.Error(), "refused by the test") {
				t.Errorf("a write failed with %v, want only the fault refused by the trigger", err)
			}
		}
	}
	if refused != 1 {
		t.Fatalf("%d writes refused, want the fault's alone", refused)
	}
	_, w, f := c.read()
	if w-w0 != 6 || f != 1 {
		t.Fatalf("after a batch with a refused write: %d writes, %d failed; want 6, 1", w-w0, f)
	}
	c.mu.Lock()
	most, nonPositive := c.most, c.nonPositive
	c.mu.Unlock()
	if most < 2 {
		t.Errorf("no commit held more than one write (the most: %d): the concurrent writes were not grouped", most)
	}
	if nonPositive > 0 {
		t.Errorf("%d commits took no time", nonPositive)
	}

	// A write the database does not answer in time is the store's
	// failure too (the store is unavailable).
	lock := s.conn(t)
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE requests IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	_, err = db.SaveReceipt(ctx, newReceipt(t0, "locked-out", `{}`))
	tx.Rollback(ctx)
	if hooks.ErrorCode(err) != hooks.EUNAVAILABLE {
		t.Fatalf("a write behind a lock past the batch timeout: %v, want %s", err, hooks.EUNAVAILABLE)
	}
	if _, _, f := c.read(); f != 2 {
		t.Fatalf("after a write that timed out: %d failed, want 2", f)
	}

	db.ObserveCommits(nil)
	n, _, _ := c.read()
	mustCommit(t, db, newReceipt(t0, "two", `{}`))
	if after, _, _ := c.read(); after != n {
		t.Fatalf("told of %d commits after ObserveCommits(nil)", after-n)
	}
}

// PoolStats reports the pool's connections, in use and idle, and the
// acquires that waited for one.
func TestDB_PoolStats(t *testing.T) {
	t.Parallel()
	s := newSchema(t)
	db := s.open(t, postgres.WithMaxConns(9))
	ctx := context.Background()
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	st := db.PoolStats()
	if st.Max != 9 {
		t.Errorf("max connections: %d, want 9", st.Max)
	}
	if st.Acquired != 0 || st.Idle < 1 || st.Total != st.Idle {
		t.Errorf("at rest: %+v, want none acquired, the pool's connections idle", st)
	}
	// The pool opens its connections on demand: the first acquire waited
	// for one.
	if st.Acquires < 1 || st.EmptyAcquires < 1 || st.AcquireWait <= 0 {
		t.Errorf("after the first query: %+v, want an acquire that waited", st)
	}

	// A write blocked by another client's lock holds its connection.
	lock := s.conn(t)
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE faults IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- db.AddFault(ctx, &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultStatus, Status: 503, Remaining: -1, Percent: 100, CreatedAt: t0})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for db.PoolStats().Acquired < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a blocked write: %+v, want a connection acquired", db.PoolStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	held := db.PoolStats()
	if held.Total < held.Acquired+held.Idle {
		t.Errorf("while a write waits: %+v, want total to count the acquired and idle connections", held)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := db.PoolStats(); after.Acquires <= st.Acquires {
		t.Errorf("acquires: %d after a write, %d before; want more", after.Acquires, st.Acquires)
	}
}
