package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// mustQueue commits a receipt for request ID rid with the given urgency and
// returns its job.
func mustQueue(tb testing.TB, db *sqlite.DB, rid string, u hooks.Urgency, scheduled time.Time) *hooks.Job {
	tb.Helper()
	r := newReceipt(t0, rid, `{}`)
	r.Request.Urgency = u
	r.Request.Body = []byte(fmt.Sprintf(`{"event":%q}`, rid))
	r.Job = hooks.NewJob(r.Request, t0)
	r.Job.ScheduledAt = scheduled
	if e := mustSave(tb, db, r); e != nil {
		tb.Fatalf("queue %s: got entry %+v, want nil", rid, e)
	}
	return r.Job
}

func mustClaim(tb testing.TB, db *sqlite.DB, now time.Time, lease time.Duration, limit int) []*hooks.Job {
	tb.Helper()
	jobs, err := db.ClaimJobs(context.Background(), now, lease, limit)
	if err != nil {
		tb.Fatalf("claim jobs: %v", err)
	}
	return jobs
}

// mustJob returns the stored state of job id.
func mustJob(tb testing.TB, db *sqlite.DB, id int64) *hooks.Job {
	tb.Helper()
	for _, j := range mustFindJobs(tb, db, sqlite.JobFilter{Limit: 10000}) {
		if j.ID == id {
			return j
		}
	}
	tb.Fatalf("job %d not found", id)
	return nil
}

// mustRescue makes jobs whose lease expired before now available again.
func mustRescue(tb testing.TB, db *sqlite.DB, now time.Time) int64 {
	tb.Helper()
	n, err := db.RescueJobs(context.Background(), now, hooks.RetryPolicy{})
	if err != nil {
		tb.Fatalf("rescue jobs: %v", err)
	}
	return n
}

func jobIDs(jobs []*hooks.Job) []int64 {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

func TestDB_ClaimJobs(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		queued := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		now := t0.Add(time.Second)
		jobs := mustClaim(t, db, now, time.Minute, 10)
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("claimed: got %d, want %d", got, want)
		}
		j := jobs[0]
		if j.ID != queued.ID || j.RequestRef != queued.RequestRef || j.Sender != hooks.SenderBubblehouse ||
			j.Name != "SendEvent1" || j.Urgency != hooks.UrgencyRegular || j.Priority != 2 ||
			!j.ScheduledAt.Equal(t0) || !j.CreatedAt.Equal(t0) {
			t.Errorf("claimed job: got %+v, want %+v", j, queued)
		}
		if got, want := j.State, hooks.JobRunning; got != want {
			t.Errorf("state: got %s, want %s", got, want)
		}
		if got, want := j.Attempts, 1; got != want {
			t.Errorf("attempts: got %d, want %d", got, want)
		}
		if got, want := j.LockedUntil, now.Add(time.Minute); !got.Equal(want) {
			t.Errorf("locked until: got %v, want %v", got, want)
		}
		if got, want := j.RequestID, "req-1"; got != want {
			t.Errorf("request ID: got %q, want %q", got, want)
		}
		if got, want := string(j.Body), `{"event":"req-1"}`; got != want {
			t.Errorf("body: got %s, want %s", got, want)
		}

		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobRunning || stored.Attempts != 1 || !stored.LockedUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("stored job: got %+v, want running, attempt 1, locked until %v", stored, now.Add(time.Minute))
		}
		// A running job is not claimed again: not while its lease is live,
		// and after it expired only once RescueJobs made it available.
		if got := mustClaim(t, db, now.Add(59*time.Second), time.Minute, 10); len(got) != 0 {
			t.Errorf("claim during the lease: got %v, want none", jobIDs(got))
		}
		if got := mustClaim(t, db, now.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Errorf("claim after the lease, not rescued: got %v, want none", jobIDs(got))
		}
	})

	t.Run("Empty", func(t *testing.T) {
		db := sqlitetest.Open(t)
		if got := mustClaim(t, db, t0, time.Minute, 10); len(got) != 0 {
			t.Fatalf("got %v, want none", jobIDs(got))
		}
	})

	t.Run("Priority", func(t *testing.T) {
		// Urgent before regular whatever the order they came in; within a
		// priority, by scheduled time then ID.
		db := sqlitetest.Open(t)
		useClock(db)
		r1 := mustQueue(t, db, "regular-1", hooks.UrgencyRegular, t0)
		r2 := mustQueue(t, db, "regular-2", hooks.UrgencyRegular, t0.Add(-time.Minute))
		u1 := mustQueue(t, db, "urgent-1", hooks.UrgencyUrgent, t0.Add(time.Second))
		r3 := mustQueue(t, db, "regular-3", hooks.UrgencyRegular, t0)
		u2 := mustQueue(t, db, "urgent-2", hooks.UrgencyUrgent, t0)
		now := t0.Add(time.Minute)

		first := mustClaim(t, db, now, time.Minute, 1)
		if got, want := fmt.Sprint(jobIDs(first)), fmt.Sprint([]int64{u2.ID}); got != want {
			t.Fatalf("first claim: got %s, want %s", got, want)
		}
		if got, want := first[0].Priority, 1; got != want {
			t.Fatalf("priority: got %d, want %d", got, want)
		}
		rest := mustClaim(t, db, now, time.Minute, 10)
		if got, want := fmt.Sprint(jobIDs(rest)), fmt.Sprint([]int64{u1.ID, r2.ID, r1.ID, r3.ID}); got != want {
			t.Fatalf("rest: got %s, want %s", got, want)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		var want []int64
		for i := 0; i < 5; i++ {
			want = append(want, mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0).ID)
		}
		a := mustClaim(t, db, t0, time.Minute, 3)
		b := mustClaim(t, db, t0, time.Minute, 3)
		c := mustClaim(t, db, t0, time.Minute, 3)
		if got := fmt.Sprint(jobIDs(a), jobIDs(b), jobIDs(c)); got != fmt.Sprint(want[:3], want[3:], []int64{}) {
			t.Fatalf("got %s, want %v %v []", got, want[:3], want[3:])
		}
	})

	t.Run("Scheduled", func(t *testing.T) {
		// A job scheduled in the future waits for its time.
		db := sqlitetest.Open(t)
		useClock(db)
		at := t0.Add(time.Hour)
		j := mustQueue(t, db, "req-1", hooks.UrgencyUrgent, at)
		if got := mustClaim(t, db, at.Add(-time.Microsecond), time.Minute, 10); len(got) != 0 {
			t.Fatalf("before its time: got %v, want none", jobIDs(got))
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobAvailable; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
		got := mustClaim(t, db, at, time.Minute, 10)
		if len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("at its time: got %v, want [%d]", jobIDs(got), j.ID)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Workers claiming at once never get the same job.
		db := sqlitetest.Open(t)
		useClock(db)
		const n = 120
		for i := 0; i < n; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					jobs, err := db.ClaimJobs(context.Background(), t0, time.Minute, 7)
					if err != nil {
						errs <- err
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						seen[j.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got, want := len(seen), n; got != want {
			t.Fatalf("distinct jobs claimed: got %d, want %d", got, want)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("job %d: claimed %d times, want 1", id, c)
			}
		}
	})

	t.Run("CrashRecovery", func(t *testing.T) {
		// A worker claims a job and the process dies before finishing it.
		// After a restart the job is claimed again once its lease expires.
		path := filepath.Join(t.TempDir(), "db")
		db := sqlitetest.OpenPath(t, path)
		useClock(db)
		j := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		const lease = 30 * time.Second
		if got := mustClaim(t, db, t0, lease, 10); len(got) != 1 || got[0].Attempts != 1 {
			t.Fatalf("first claim: got %+v, want job %d, attempt 1", got, j.ID)
		}
		if err := db.Close(); err != nil { // the crash: never completed
			t.Fatal(err)
		}

		db = sqlitetest.OpenPath(t, path)
		useClock(db)
		before := t0.Add(lease - time.Microsecond)
		if got, want := mustRescue(t, db, before), int64(0); got != want {
			t.Fatalf("rescued before the lease expired: got %d, want %d", got, want)
		}
		if got := mustClaim(t, db, before, lease, 10); len(got) != 0 {
			t.Fatalf("claim before the lease expired: got %v, want none", jobIDs(got))
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobRunning; got != want {
			t.Fatalf("state before expiry: got %s, want %s", got, want)
		}
		now := t0.Add(lease + time.Second)
		if got, want := mustRescue(t, db, now), int64(1); got != want {
			t.Fatalf("rescued after the lease expired: got %d, want %d", got, want)
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobAvailable; got != want {
			t.Fatalf("state after rescue: got %s, want %s", got, want)
		}
		got := mustClaim(t, db, now, lease, 10)
		if len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("claim after the lease expired: got %v, want [%d]", jobIDs(got), j.ID)
		}
		if got, want := got[0].Attempts, 2; got != want {
			t.Errorf("attempts: got %d, want %d", got, want)
		}
		if got, want := got[0].LockedUntil, now.Add(lease); !got.Equal(want) {
			t.Errorf("locked until: got %v, want %v", got, want)
		}
		if got, want := string(got[0].Body), `{"event":"req-1"}`; got != want {
			t.Errorf("body: got %s, want %s", got, want)
		}
	})
}

func TestDB_RescueJobs(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		// Only running jobs whose lease expired by now are made available;
		// their attempt stays counted.
		db := sqlitetest.Open(t)
		useClock(db)
		for i := 0; i < 4; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		short := mustClaim(t, db, t0, time.Minute, 2)
		long := mustClaim(t, db, t0, time.Hour, 1)
		if len(short) != 2 || len(long) != 1 {
			t.Fatalf("claims: got %d and %d jobs, want 2 and 1", len(short), len(long))
		}
		if got, want := mustRescue(t, db, t0.Add(time.Minute-time.Microsecond)), int64(0); got != want {
			t.Fatalf("rescued before expiry: got %d, want %d", got, want)
		}
		if got, want := mustRescue(t, db, t0.Add(time.Minute)), int64(2); got != want {
			t.Fatalf("rescued at expiry: got %d, want %d", got, want)
		}
		for _, j := range short {
			stored := mustJob(t, db, j.ID)
			if stored.State != hooks.JobAvailable || stored.Attempts != 1 || !stored.LockedUntil.IsZero() {
				t.Errorf("rescued job: got %+v, want available after 1 attempt, unlocked", stored)
			}
		}
		if got, want := mustJob(t, db, long[0].ID).State, hooks.JobRunning; got != want {
			t.Errorf("job under a live lease: got %s, want %s", got, want)
		}
		if got, want := mustRescue(t, db, t0.Add(time.Minute)), int64(0); got != want {
			t.Fatalf("second rescue: got %d, want %d", got, want)
		}
	})

	t.Run("InterruptedAndDead", func(t *testing.T) {
		// A job whose process died has an interrupted attempt on record,
		// and one that reached the policy's limit is dead: a job that
		// kills its process every time cannot crash-loop forever.
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "again", hooks.UrgencyRegular, t0)
		mustQueue(t, db, "poison", hooks.UrgencyRegular, t0)
		policy := hooks.RetryPolicy{MaxAttempts: 2}
		now := t0
		for round := 1; round <= 2; round++ {
			claimed := mustClaim(t, db, now, time.Minute, 2)
			if round == 1 && len(claimed) != 2 || round == 2 && len(claimed) != 1 {
				t.Fatalf("round %d: claimed %d", round, len(claimed))
			}
			now = now.Add(time.Minute)
			if n, err := db.RescueJobs(context.Background(), now, policy); err != nil || n != int64(len(claimed)) {
				t.Fatalf("round %d: rescued %d, %v", round, n, err)
			}
			if round == 1 {
				// One job is delivered on its second claim; only the
				// other stays in play.
				j := mustClaim(t, db, now, time.Minute, 1)[0]
				if err := db.CompleteJobs(context.Background(), []*hooks.Job{j}, now); err != nil {
					t.Fatal(err)
				}
			}
		}
		var dead *hooks.Job
		for _, j := range mustFindJobs(t, db, sqlite.JobFilter{Limit: 10}) {
			if j.State == hooks.JobDead {
				dead = j
			}
		}
		if dead == nil || dead.Attempts != 2 || !strings.Contains(dead.LastError, "process running this attempt stopped") {
			t.Fatalf("jobs %+v, want the crash-looping one dead after 2 attempts", mustFindJobs(t, db, sqlite.JobFilter{Limit: 10}))
		}
		atts, err := db.FindAttempts(context.Background(), dead.ID)
		if err != nil {
			t.Fatal(err)
		}
		var outcomes []string
		for _, a := range atts {
			outcomes = append(outcomes, a.Outcome)
		}
		if got := strings.Join(outcomes, ","); got != "interrupted,dead" {
			t.Fatalf("attempts of the dead job: %s, want interrupted,dead", got)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		db := sqlitetest.Open(t)
		if got, want := mustRescue(t, db, t0), int64(0); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	})
}

func TestDB_CompleteJobs(t *testing.T) {
	ctx := context.Background()

	t.Run("Batch", func(t *testing.T) {
		// Several jobs at once; unknown IDs and an empty list are harmless.
		db := sqlitetest.Open(t)
		useClock(db)
		for i := 0; i < 5; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		jobs := mustClaim(t, db, t0, time.Minute, 5)
		if err := db.CompleteJobs(ctx, append(jobs[:4:4], &hooks.Job{ID: 12345, Attempts: 1}), t0); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteJobs(ctx, nil, t0); err != nil {
			t.Fatal(err)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{State: hooks.JobDone})), 4; got != want {
			t.Fatalf("done jobs: got %d, want %d", got, want)
		}
		if got, want := mustJob(t, db, jobs[4].ID).State, hooks.JobRunning; got != want {
			t.Fatalf("job not completed: got %s, want %s", got, want)
		}
	})

	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		if err := db.CompleteJobs(ctx, []*hooks.Job{j}, t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobDone || !stored.LockedUntil.IsZero() || stored.Attempts != 1 {
			t.Fatalf("got %+v, want done after 1 attempt, unlocked", stored)
		}
		if got := mustClaim(t, db, t0.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claim after completion: got %v, want none", jobIDs(got))
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{State: hooks.JobDone})), 1; got != want {
			t.Fatalf("done jobs: got %d, want %d", got, want)
		}
	})

	t.Run("NotRunning", func(t *testing.T) {
		// A job that is not running is left alone.
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		if err := db.FailJob(ctx, j, t0, t0, true, "boom"); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteJobs(ctx, []*hooks.Job{j}, t0); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobDead; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})

	t.Run("StaleLease", func(t *testing.T) {
		// Worker A's lease expired and worker B took the job. A finishing
		// late must not mark B's run done: CompleteJobs' comment promises
		// such a job "is left alone".
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		a := mustClaim(t, db, t0, time.Minute, 1)[0]
		if got, want := mustRescue(t, db, t0.Add(2*time.Minute)), int64(1); got != want {
			t.Fatalf("rescued: got %d, want %d", got, want)
		}
		b := mustClaim(t, db, t0.Add(2*time.Minute), time.Minute, 1)[0]
		if b.ID != a.ID || b.Attempts != 2 {
			t.Fatalf("second claim: got %+v, want job %d, attempt 2", b, a.ID)
		}
		if err := db.CompleteJobs(ctx, []*hooks.Job{a}, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, a.ID).State, hooks.JobRunning; got != want {
			t.Fatalf("state after the stale worker completed: got %s, want %s (still B's)", got, want)
		}
	})
}

func TestDB_FailJob(t *testing.T) {
	ctx := context.Background()

	t.Run("Retry", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		retryAt := t0.Add(10 * time.Second)
		if err := db.FailJob(ctx, j, t0.Add(time.Second), retryAt, false, "HTTP 503"); err != nil {
			t.Fatal(err)
		}
		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobAvailable || !stored.ScheduledAt.Equal(retryAt) || stored.LastError != "HTTP 503" ||
			stored.Attempts != 1 || !stored.LockedUntil.IsZero() {
			t.Fatalf("got %+v, want available at %v after 1 attempt, with its error", stored, retryAt)
		}
		if got := mustClaim(t, db, retryAt.Add(-time.Microsecond), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claim before retryAt: got %v, want none", jobIDs(got))
		}
		got := mustClaim(t, db, retryAt, time.Minute, 10)
		if len(got) != 1 || got[0].ID != j.ID || got[0].Attempts != 2 || got[0].LastError != "HTTP 503" {
			t.Fatalf("claim at retryAt: got %+v, want job %d, attempt 2", got, j.ID)
		}
	})

	t.Run("Dead", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		if err := db.FailJob(ctx, j, t0, t0, true, "gave up"); err != nil {
			t.Fatal(err)
		}
		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobDead || stored.LastError != "gave up" || !stored.LockedUntil.IsZero() {
			t.Fatalf("got %+v, want dead with its error", stored)
		}
		if got := mustClaim(t, db, t0.Add(1000*time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claim a dead job: got %v, want none", jobIDs(got))
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{State: hooks.JobDead})), 1; got != want {
			t.Fatalf("dead jobs: got %d, want %d", got, want)
		}
	})

	t.Run("StaleLease", func(t *testing.T) {
		// A failing late after B took the job over must not reschedule it
		// under B, which would let a third worker run it at the same time.
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		a := mustClaim(t, db, t0, time.Minute, 1)[0]
		now := t0.Add(2 * time.Minute)
		mustRescue(t, db, now)
		b := mustClaim(t, db, now, time.Minute, 1)[0]
		if err := db.FailJob(ctx, a, now, now, false, "late failure"); err != nil {
			t.Fatal(err)
		}
		if got := mustClaim(t, db, now, time.Minute, 1); len(got) != 0 {
			t.Fatalf("claim while B runs job %d: got %v, want none", b.ID, jobIDs(got))
		}
	})
}

func TestDB_ReleaseJobs(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		// Released jobs are available again and the claim is not counted.
		db := sqlitetest.Open(t)
		useClock(db)
		for i := 0; i < 3; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		jobs := mustClaim(t, db, t0, time.Minute, 3)
		if err := db.ReleaseJobs(ctx, jobs[1:]); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, jobs[0].ID).State, hooks.JobRunning; got != want {
			t.Errorf("job not released: got %s, want %s", got, want)
		}
		for _, j := range jobs[1:] {
			stored := mustJob(t, db, j.ID)
			if stored.State != hooks.JobAvailable || stored.Attempts != 0 || !stored.LockedUntil.IsZero() {
				t.Errorf("released job: got %+v, want available, 0 attempts", stored)
			}
		}
		again := mustClaim(t, db, t0, time.Minute, 10)
		if got, want := fmt.Sprint(jobIDs(again)), fmt.Sprint(jobIDs(jobs[1:])); got != want {
			t.Fatalf("claim again: got %s, want %s", got, want)
		}
		for _, j := range again {
			if j.Attempts != 1 {
				t.Errorf("job %d: attempts got %d, want 1", j.ID, j.Attempts)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		db := sqlitetest.Open(t)
		if err := db.ReleaseJobs(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NotRunning", func(t *testing.T) {
		// Only running jobs are released: a finished one stays finished.
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		if err := db.CompleteJobs(ctx, []*hooks.Job{j}, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseJobs(ctx, []*hooks.Job{j, {ID: 12345, Attempts: 1}}); err != nil {
			t.Fatal(err)
		}
		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobDone || stored.Attempts != 1 {
			t.Fatalf("got %+v, want done after 1 attempt", stored)
		}
	})
}

func TestDB_FindJobs(t *testing.T) {
	ctx := context.Background()
	db := sqlitetest.Open(t)
	useClock(db)
	a := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
	b := mustQueue(t, db, "req-2", hooks.UrgencyUrgent, t0)
	r := newReceipt(t0, "req-3", `{}`)
	r.Request.Name, r.Job.Name = "ProcessOrder", "ProcessOrder"
	mustSave(t, db, r)
	c := r.Job
	claimed := mustClaim(t, db, t0, time.Minute, 1)[0] // b, urgent
	if err := db.CompleteJobs(ctx, []*hooks.Job{claimed}, t0); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		f    sqlite.JobFilter
		want []int64
	}{
		{"All", sqlite.JobFilter{}, []int64{a.ID, b.ID, c.ID}},
		{"State", sqlite.JobFilter{State: hooks.JobAvailable}, []int64{a.ID, c.ID}},
		{"StateDone", sqlite.JobFilter{State: hooks.JobDone}, []int64{b.ID}},
		{"Name", sqlite.JobFilter{Name: "ProcessOrder"}, []int64{c.ID}},
		{"Limit", sqlite.JobFilter{Limit: 2}, []int64{a.ID, b.ID}},
		{"None", sqlite.JobFilter{State: hooks.JobDead}, []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := fmt.Sprint(jobIDs(mustFindJobs(t, db, tt.f))), fmt.Sprint(tt.want); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}
