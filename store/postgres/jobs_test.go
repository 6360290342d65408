package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

func TestDB_ClaimJobs(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		queued := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		now := t0.Add(time.Second)
		start := time.Now()
		jobs := mustClaim(t, db, now, time.Minute, 10)
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("claimed: got %d, want %d", got, want)
		}
		j := jobs[0]
		if j.ID != queued.ID || j.RequestRef != queued.RequestRef || j.Sender != hooks.SenderBubblehouse ||
			j.Name != "SendEvent1" || j.Source != "SendEvent1" || j.Urgency != hooks.UrgencyRegular || j.Priority != 2 ||
			!j.ScheduledAt.Equal(t0) || !j.CreatedAt.Equal(t0) || j.State != hooks.JobRunning || j.Attempts != 1 {
			t.Errorf("claimed job: got %+v, want %+v, running, attempt 1", j, queued)
		}
		// The caller is told when to be done by its own clock.
		if got, want := j.LockedUntil, now.Add(time.Minute); !got.Equal(want) {
			t.Errorf("locked until: got %v, want %v", got, want)
		}
		if j.RequestID != "req-1" || string(j.Body) != `{"event":"req-1"}` || j.Payload != nil ||
			j.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request fields: got %q, %s, %s, %v", j.RequestID, j.Body, j.Payload, j.Header)
		}
		// The row shows the same end; the database judges the lease by
		// its own now().
		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobRunning || stored.Attempts != 1 || !stored.LockedUntil.Equal(j.LockedUntil) {
			t.Errorf("stored job: got %+v, want running, attempt 1, until %v", stored, j.LockedUntil)
		}
		leasedFor(t, s.leaseExpires(t, "jobs", "id = $1", j.ID), start, time.Minute)
		// A running job is not claimed again, whatever the time passed.
		if got := mustClaim(t, db, now.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Errorf("claim after the lease, not rescued: got %v, want none", jobIDs(got))
		}
	})

	t.Run("Priority", func(t *testing.T) {
		t.Parallel()
		// Urgent before regular whatever the order they came in; within a
		// priority, by scheduled time then ID.
		db := openDB(t)
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
		rest := mustClaim(t, db, now, time.Minute, 10)
		if got, want := fmt.Sprint(jobIDs(rest)), fmt.Sprint([]int64{u1.ID, r2.ID, r1.ID, r3.ID}); got != want {
			t.Fatalf("rest: got %s, want %s", got, want)
		}
	})

	t.Run("Scheduled", func(t *testing.T) {
		t.Parallel()
		// A job scheduled later waits until the time passed reaches it.
		db := openDB(t)
		useClock(db)
		at := t0.Add(time.Hour)
		j := mustQueue(t, db, "req-1", hooks.UrgencyUrgent, at)
		if got := mustClaim(t, db, at.Add(-time.Microsecond), time.Minute, 10); len(got) != 0 {
			t.Fatalf("before its time: got %v, want none", jobIDs(got))
		}
		if got := mustClaim(t, db, at, time.Minute, 10); len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("at its time: got %v, want [%d]", jobIDs(got), j.ID)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		// Workers claiming at once never get the same job.
		db := openDB(t)
		useClock(db)
		const n = 120
		for i := 0; i < n; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		seen := claimAll(t, t0, db, db, db, db)
		if got, want := len(seen), n; got != want {
			t.Fatalf("distinct jobs claimed: got %d, want %d", got, want)
		}
	})

	t.Run("CrashRecovery", func(t *testing.T) {
		t.Parallel()
		// A worker claims a job and its process dies. The next process may
		// not finish that claim; it takes the job back once the lease has
		// expired by the database's clock, and not before, whatever its own
		// clock says.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		j := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		old := mustClaim(t, db, t0, time.Minute, 10)
		if len(old) != 1 {
			t.Fatalf("first claim: got %v, want [%d]", jobIDs(old), j.ID)
		}
		if err := db.Close(); err != nil { // the crash: never completed
			t.Fatal(err)
		}
		db = s.open(t)
		useClock(db)
		if err := db.CompleteJobs(context.Background(), old, t0); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobRunning; got != want {
			t.Fatalf("state after another handle completed the claim: got %s, want %s", got, want)
		}
		if got, want := mustRescue(t, db, t0.Add(24*time.Hour)), int64(0); got != want {
			t.Fatalf("rescued under a live lease: got %d, want %d", got, want)
		}
		s.expireJobs(t)
		if got, want := mustRescue(t, db, t0), int64(1); got != want {
			t.Fatalf("rescued after the lease expired: got %d, want %d", got, want)
		}
		got := mustClaim(t, db, t0, time.Minute, 10)
		if len(got) != 1 || got[0].ID != j.ID || got[0].Attempts != 2 || string(got[0].Body) != `{"event":"req-1"}` {
			t.Fatalf("claim after rescue: got %+v, want job %d, attempt 2", got, j.ID)
		}
		if err := db.CompleteJobs(context.Background(), got, t0); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})
}

// claimAll drains the queue with one worker per handle, claiming 7 at a
// time, and returns how often each job was handed out; it fails the test
// if any was handed out twice.
func claimAll(t *testing.T, now time.Time, handles ...interface {
	ClaimJobs(context.Context, time.Time, time.Duration, int, int) ([]*hooks.Job, error)
}) map[int64]int {
	t.Helper()
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, len(handles))
	for _, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jobs, err := h.ClaimJobs(context.Background(), now, time.Minute, 7, 7)
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
	for id, c := range seen {
		if c != 1 {
			t.Errorf("job %d: claimed %d times, want 1", id, c)
		}
	}
	return seen
}

func TestDB_RescueJobs(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		// Only running jobs whose lease expired are made available; their
		// attempt stays counted and is recorded as interrupted.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		for i := 0; i < 3; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		short := mustClaim(t, db, t0, time.Minute, 2)
		s.expireJobs(t)
		long := mustClaim(t, db, t0, time.Hour, 1)
		if got, want := mustRescue(t, db, t0.Add(time.Second)), int64(2); got != want {
			t.Fatalf("rescued: got %d, want %d", got, want)
		}
		for _, j := range short {
			stored := mustJob(t, db, j.ID)
			if stored.State != hooks.JobAvailable || stored.Attempts != 1 || !stored.LockedUntil.IsZero() ||
				!strings.Contains(stored.LastError, "lease expired") {
				t.Errorf("rescued job: got %+v, want available after 1 attempt, unlocked", stored)
			}
			atts, err := db.FindAttempts(context.Background(), j.ID)
			if err != nil || len(atts) != 1 || atts[0].Outcome != hooks.OutcomeInterrupted || atts[0].Attempt != 1 ||
				!atts[0].StartedAt.Equal(t0.Add(time.Second)) {
				t.Errorf("attempts of job %d: got %+v, %v; want one interrupted, found at the time passed", j.ID, atts, err)
			}
		}
		if got, want := mustJob(t, db, long[0].ID).State, hooks.JobRunning; got != want {
			t.Errorf("job under a live lease: got %s, want %s", got, want)
		}
		if got, want := mustRescue(t, db, t0.Add(time.Second)), int64(0); got != want {
			t.Fatalf("second rescue: got %d, want %d", got, want)
		}
	})

	t.Run("Dead", func(t *testing.T) {
		t.Parallel()
		// A job that kills its process every time dies by the policy.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		j := mustQueue(t, db, "poison", hooks.UrgencyRegular, t0)
		policy := hooks.RetryPolicy{MaxAttempts: 2}
		for round := 1; round <= 2; round++ {
			if got := mustClaim(t, db, t0, time.Minute, 1); len(got) != 1 {
				t.Fatalf("round %d: claimed %d", round, len(got))
			}
			s.expireJobs(t)
			if n, err := db.RescueJobs(context.Background(), t0, policy); err != nil || n != 1 {
				t.Fatalf("round %d: rescued %d, %v", round, n, err)
			}
		}
		dead := mustJob(t, db, j.ID)
		if dead.State != hooks.JobDead || dead.Attempts != 2 || !dead.FinishedAt.Equal(t0) {
			t.Fatalf("job: got %+v, want dead after 2 attempts", dead)
		}
		atts, err := db.FindAttempts(context.Background(), j.ID)
		if err != nil || len(atts) != 2 || atts[0].Outcome != hooks.OutcomeInterrupted || atts[1].Outcome != hooks.OutcomeDead {
			t.Fatalf("attempts: got %+v, %v; want interrupted, dead", atts, err)
		}
	})
}

func TestDB_CompleteJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		// Several jobs at once, attempts recorded; unknown IDs and an empty
		// list are harmless.
		db := openDB(t)
		useClock(db)
		for i := 0; i < 5; i++ {
			mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		jobs := mustClaim(t, db, t0, time.Minute, 5)
		for _, j := range jobs {
			j.AttemptStarted, j.AttemptDuration = t0, 1500*time.Microsecond
		}
		if err := db.CompleteJobs(ctx, append(jobs[:4:4], &hooks.Job{ID: 12345, Attempts: 1}), t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := db.CompleteJobs(ctx, nil, t0); err != nil {
			t.Fatal(err)
		}
		done := mustFindJobs(t, db, hooks.JobFilter{State: hooks.JobDone})
		if got, want := len(done), 4; got != want {
			t.Fatalf("done jobs: got %d, want %d", got, want)
		}
		for _, j := range done {
			if !j.FinishedAt.Equal(t0.Add(time.Second)) || !j.LockedUntil.IsZero() {
				t.Errorf("job %d: got %+v, want finished at %v, unlocked", j.ID, j, t0.Add(time.Second))
			}
		}
		atts, err := db.FindAttempts(ctx, jobs[0].ID)
		if err != nil || len(atts) != 1 || atts[0].Outcome != hooks.OutcomeOK || atts[0].Duration != 1500*time.Microsecond {
			t.Errorf("attempts: got %+v, %v; want one ok of 1.5ms", atts, err)
		}
		if got, want := mustJob(t, db, jobs[4].ID).State, hooks.JobRunning; got != want {
			t.Fatalf("job not completed: got %s, want %s", got, want)
		}
	})

	t.Run("StaleLease", func(t *testing.T) {
		t.Parallel()
		// Worker A's lease expired and worker B took the job. A finishing
		// late must not mark B's run done, nor record an attempt.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		a := mustClaim(t, db, t0, time.Minute, 1)[0]
		s.expireJobs(t)
		mustRescue(t, db, t0)
		b := mustClaim(t, db, t0, time.Minute, 1)[0]
		if b.ID != a.ID || b.Attempts != 2 {
			t.Fatalf("second claim: got %+v, want job %d, attempt 2", b, a.ID)
		}
		a.AttemptStarted = t0
		if err := db.CompleteJobs(ctx, []*hooks.Job{a}, t0); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, a.ID).State, hooks.JobRunning; got != want {
			t.Fatalf("state after the stale worker completed: got %s, want %s (still B's)", got, want)
		}
		if atts, _ := db.FindAttempts(ctx, a.ID); len(atts) != 1 {
			t.Fatalf("attempts: got %+v, want only the rescue's", atts)
		}
	})
}

func TestDB_FailJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Retry", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		j.AttemptStarted = t0
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
		if atts, _ := db.FindAttempts(ctx, j.ID); len(atts) != 1 || atts[0].Outcome != hooks.OutcomeFailed || atts[0].Error != "HTTP 503" {
			t.Fatalf("attempts: got %+v, want one failed", atts)
		}
	})

	t.Run("Dead", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		if err := db.FailJob(ctx, j, t0, t0, true, "gave up"); err != nil {
			t.Fatal(err)
		}
		stored := mustJob(t, db, j.ID)
		if stored.State != hooks.JobDead || stored.LastError != "gave up" || !stored.LockedUntil.IsZero() || !stored.FinishedAt.Equal(t0) {
			t.Fatalf("got %+v, want dead with its error", stored)
		}
		// A job that is not running is left alone.
		if err := db.CompleteJobs(ctx, []*hooks.Job{j}, t0); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobDead; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})

	t.Run("ErrorNotUTF8", func(t *testing.T) {
		t.Parallel()
		// An action's error can carry any bytes (a downstream's answer, an
		// exec's stderr, a cut in the middle of a character), which text
		// refuses: the failure is still recorded, the bytes replaced.
		db := openDB(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		j.AttemptStarted = t0
		if err := db.FailJob(ctx, j, t0, t0.Add(time.Second), false, "HTTP 502: \xe2\x82 cut\x00off"); err != nil {
			t.Fatalf("fail job with an error that is not UTF-8: %v", err)
		}
		want := "HTTP 502: \uFFFD cut\uFFFDoff"
		if got := mustJob(t, db, j.ID); got.State != hooks.JobAvailable || got.LastError != want {
			t.Fatalf("got %s %q, want available with %q", got.State, got.LastError, want)
		}
		if atts, _ := db.FindAttempts(ctx, j.ID); len(atts) != 1 || atts[0].Error != want {
			t.Fatalf("attempts: got %+v, want one with %q", atts, want)
		}
	})

	t.Run("StaleLease", func(t *testing.T) {
		t.Parallel()
		// A failing late after B took the job over must not reschedule it
		// under B, which would let a third worker run it at the same time.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		a := mustClaim(t, db, t0, time.Minute, 1)[0]
		s.expireJobs(t)
		mustRescue(t, db, t0)
		b := mustClaim(t, db, t0, time.Minute, 1)[0]
		if err := db.FailJob(ctx, a, t0, t0, false, "late failure"); err != nil {
			t.Fatal(err)
		}
		if got := mustClaim(t, db, t0, time.Minute, 1); len(got) != 0 {
			t.Fatalf("claim while B runs job %d: got %v, want none", b.ID, jobIDs(got))
		}
	})
}

func TestDB_ReleaseJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	useClock(db)
	for i := 0; i < 3; i++ {
		mustQueue(t, db, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
	}
	jobs := mustClaim(t, db, t0, time.Minute, 3)
	jobs[2].AttemptStarted = t0 // started, then interrupted by shutdown
	if err := db.ReleaseJobs(ctx, jobs[1:]); err != nil {
		t.Fatal(err)
	}
	if got, want := mustJob(t, db, jobs[0].ID).State, hooks.JobRunning; got != want {
		t.Errorf("job not released: got %s, want %s", got, want)
	}
	for _, j := range jobs[1:] {
		if stored := mustJob(t, db, j.ID); stored.State != hooks.JobAvailable || stored.Attempts != 0 || !stored.LockedUntil.IsZero() {
			t.Errorf("released job: got %+v, want available, 0 attempts", stored)
		}
	}
	if atts, _ := db.FindAttempts(ctx, jobs[2].ID); len(atts) != 1 || atts[0].Outcome != hooks.OutcomeInterrupted {
		t.Errorf("attempts of the started job: got %+v, want one interrupted", atts)
	}
	again := mustClaim(t, db, t0, time.Minute, 10)
	if got, want := fmt.Sprint(jobIDs(again)), fmt.Sprint(jobIDs(jobs[1:])); got != want {
		t.Fatalf("claim again: got %s, want %s", got, want)
	}
	// Only running jobs are released: a finished one stays finished.
	if err := db.CompleteJobs(ctx, jobs[:1], t0); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseJobs(ctx, []*hooks.Job{jobs[0], {ID: 12345, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	if stored := mustJob(t, db, jobs[0].ID); stored.State != hooks.JobDone || stored.Attempts != 1 {
		t.Fatalf("got %+v, want done after 1 attempt", stored)
	}
}

func TestDB_RetryJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	useClock(db)
	dead := mustQueue(t, db, "dead", hooks.UrgencyRegular, t0)
	waiting := mustQueue(t, db, "waiting", hooks.UrgencyRegular, t0)
	done := mustQueue(t, db, "done", hooks.UrgencyRegular, t0)
	claimed := mustClaim(t, db, t0, time.Minute, 3)
	byID := map[int64]*hooks.Job{}
	for _, j := range claimed {
		byID[j.ID] = j
	}
	if err := db.FailJob(ctx, byID[dead.ID], t0, t0, true, "gave up"); err != nil {
		t.Fatal(err)
	}
	if err := db.FailJob(ctx, byID[waiting.ID], t0, t0.Add(time.Hour), false, "later"); err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteJobs(ctx, []*hooks.Job{byID[done.ID]}, t0); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	n, err := db.RetryJobs(ctx, []int64{dead.ID, waiting.ID, done.ID}, now)
	if err != nil || n != 2 {
		t.Fatalf("retried: got %d, %v; want 2, nil", n, err)
	}
	if j := mustJob(t, db, dead.ID); j.State != hooks.JobAvailable || j.Attempts != 0 || !j.CreatedAt.Equal(now) || !j.ScheduledAt.Equal(now) {
		t.Errorf("dead job: got %+v, want available from scratch at %v", j, now)
	}
	if j := mustJob(t, db, waiting.ID); j.State != hooks.JobAvailable || j.Attempts != 1 || !j.CreatedAt.Equal(t0) || !j.ScheduledAt.Equal(now) {
		t.Errorf("waiting job: got %+v, want available now, its attempt kept", j)
	}
	if got, want := mustJob(t, db, done.ID).State, hooks.JobDone; got != want {
		t.Errorf("done job: got %s, want %s", got, want)
	}
	if n, err := db.RetryJobs(ctx, nil, now); err != nil || n != 0 {
		t.Errorf("retry none: got %d, %v", n, err)
	}

	// RetryDead takes the jobs that died since a time.
	j := mustClaim(t, db, now, time.Minute, 1)[0]
	if err := db.FailJob(ctx, j, now, now, true, "again"); err != nil {
		t.Fatal(err)
	}
	if n, err := db.RetryDead(ctx, now.Add(time.Second), now); err != nil || n != 0 {
		t.Fatalf("retry dead since later: got %d, %v; want 0", n, err)
	}
	if n, err := db.RetryDead(ctx, now, now.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("retry dead: got %d, %v; want 1", n, err)
	}
}

func TestDB_ReplayJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	useClock(db)
	r := newReceipt(t0, "req-1", `{}`)
	mustCommit(t, db, r)
	jobs, err := db.ReplayJobs(ctx, r.Request.ID, t0, time.Minute, false)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("replay: got %+v, %v; want one job", jobs, err)
	}
	j := jobs[0]
	if j.ID == r.Job.ID || j.RequestRef != r.Request.ID || j.State != hooks.JobRunning || j.Attempts != 1 ||
		!j.LockedUntil.Equal(t0.Add(time.Minute)) || j.RequestID != "req-1" || string(j.Body) != string(r.Request.Body) {
		t.Fatalf("replayed job: got %+v", j)
	}
	// Leased to the caller: no one else claims it, and the caller finishes it.
	if got := mustClaim(t, db, t0, time.Minute, 10); len(got) != 1 || got[0].ID != r.Job.ID {
		t.Fatalf("claim: got %v, want only the original job %d", jobIDs(got), r.Job.ID)
	}
	if err := db.CompleteJobs(ctx, jobs, t0); err != nil {
		t.Fatal(err)
	}
	if got, want := mustJob(t, db, j.ID).State, hooks.JobDone; got != want {
		t.Fatalf("replayed job: got %s, want %s", got, want)
	}
	// A refused request is not replayed unless forced; an unknown one never.
	refused := newReceipt(t0, "", `{}`).Request
	refused.Status = 401
	if err := db.Record(ctx, refused); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ReplayJobs(ctx, refused.ID, t0, time.Minute, false); hooks.ErrorCode(err) != hooks.EINVALID {
		t.Fatalf("replay a refusal: got %v, want EINVALID", err)
	}
	if jobs, err := db.ReplayJobs(ctx, refused.ID, t0, time.Minute, true); err != nil || len(jobs) != 1 || jobs[0].Name != "SendEvent1" {
		t.Fatalf("forced replay: got %+v, %v; want one job for the whole body", jobs, err)
	}
	if _, err := db.ReplayJobs(ctx, 999999, t0, time.Minute, true); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		t.Fatalf("replay an unknown request: got %v, want ENOTFOUND", err)
	}
}

func TestDB_ExtendLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	db := s.open(t)
	clk := useClock(db)
	mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
	j := mustClaim(t, db, t0, time.Second, 1)[0]
	start := time.Now()
	ok, err := db.ExtendLease(ctx, j, clk.Now().Add(time.Hour))
	if err != nil || !ok {
		t.Fatalf("extend: got %v, %v; want true", ok, err)
	}
	if got, want := mustJob(t, db, j.ID).LockedUntil, clk.Now().Add(time.Hour); !got.Equal(want) || !j.LockedUntil.Equal(want) {
		t.Errorf("lease end: stored %v, job %v; want %v", got, j.LockedUntil, want)
	}
	leasedFor(t, s.leaseExpires(t, "jobs", "id = $1", j.ID), start, time.Hour)
	s.expireJobs(t)
	mustRescue(t, db, t0)
	mustClaim(t, db, t0, time.Minute, 1)
	if ok, err := db.ExtendLease(ctx, j, clk.Now().Add(time.Hour)); err != nil || ok {
		t.Fatalf("extend a lost lease: got %v, %v; want false", ok, err)
	}
}

func TestDB_FindJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	useClock(db)
	a := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
	b := mustQueue(t, db, "req-2", hooks.UrgencyUrgent, t0)
	r := newReceipt(t0, "req-3", `{}`)
	r.Request.Name, r.Job.Name = "ProcessOrder", "ProcessOrder"
	r.Request.Sender, r.Job.Sender = hooks.SenderSvix, hooks.SenderSvix
	mustCommit(t, db, r)
	c := r.Job
	claimed := mustClaim(t, db, t0, time.Minute, 1)[0] // b, urgent
	if err := db.CompleteJobs(ctx, []*hooks.Job{claimed}, t0); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		f    hooks.JobFilter
		want []int64
	}{
		{"All", hooks.JobFilter{}, []int64{a.ID, b.ID, c.ID}},
		{"State", hooks.JobFilter{State: hooks.JobAvailable}, []int64{a.ID, c.ID}},
		{"StateDone", hooks.JobFilter{State: hooks.JobDone}, []int64{b.ID}},
		{"Sender", hooks.JobFilter{Sender: hooks.SenderSvix}, []int64{c.ID}},
		{"Name", hooks.JobFilter{Name: "ProcessOrder"}, []int64{c.ID}},
		{"RequestRef", hooks.JobFilter{RequestRef: a.RequestRef}, []int64{a.ID}},
		{"AfterID", hooks.JobFilter{AfterID: a.ID}, []int64{b.ID, c.ID}},
		{"Limit", hooks.JobFilter{Limit: 2}, []int64{a.ID, b.ID}},
		{"None", hooks.JobFilter{State: hooks.JobDead}, []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := fmt.Sprint(jobIDs(mustFindJobs(t, db, tt.f))), fmt.Sprint(tt.want); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}
