package storetest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

func testClaimJobs(t *testing.T, b Backend) {
	t.Run("OK", func(t *testing.T) {
		e := newEnv(t, b)
		queued := e.queue("req-1", hooks.UrgencyRegular, e.now())
		now := e.now()
		jobs := e.claim(time.Hour, 10)
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("claimed: got %d, want %d", got, want)
		}
		j := jobs[0]
		if j.ID != queued.ID || j.RequestRef != queued.RequestRef || j.Sender != hooks.SenderBubblehouse ||
			j.Name != "SendEvent1" || j.Urgency != hooks.UrgencyRegular || j.Priority != 2 ||
			!j.ScheduledAt.Equal(queued.ScheduledAt) || !j.CreatedAt.Equal(queued.CreatedAt) {
			t.Errorf("claimed job: got %+v, want %+v", j, queued)
		}
		if j.State != hooks.JobRunning || j.Attempts != 1 || !lockedWithin(j.LockedUntil, now, time.Hour) {
			t.Errorf("claimed job: got %s, attempt %d, locked until %v; want running, attempt 1, locked for an hour from %v",
				j.State, j.Attempts, j.LockedUntil, now)
		}
		if got, want := j.RequestID, "req-1"; got != want {
			t.Errorf("request ID: got %q, want %q", got, want)
		}
		if got, want := string(j.Body), `{"event":"req-1"}`; got != want {
			t.Errorf("body: got %s, want %s", got, want)
		}
		if got, want := j.Header.Get("X-Bh-Request-Id"), "req-1"; got != want {
			t.Errorf("header: got %q, want %q", got, want)
		}
		if j.Payload != nil {
			t.Errorf("payload: got %s, want nil (the whole body)", j.Payload)
		}
		stored := e.job(j.ID)
		if stored.State != hooks.JobRunning || stored.Attempts != 1 || !stored.LockedUntil.Equal(j.LockedUntil) {
			t.Errorf("stored job: got %+v, want running, attempt 1, locked until %v", stored, j.LockedUntil)
		}
		// A running job is not claimed again while its lease is live.
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Errorf("claim during the lease: got %v, want none", jobIDs(got))
		}
	})

	t.Run("BatchPayloads", func(t *testing.T) {
		// Each customer's job delivers its own bytes, whether its payload
		// is a part of the request's body (as the batch handler makes it;
		// a store may keep its bounds in the body) or not, and even when
		// the item gives a wrong place for it.
		e := newEnv(t, b)
		r := e.batch("batch-1", "a", "b", "c", "d")
		r.Items[2].Job.Payload, r.Items[2].InBody = []byte(`{"customer":"c","copied":true}`), false
		r.Items[3].At++ // a wrong place is not trusted
		e.save(r)
		got := map[string]bool{}
		for _, b := range customerBodies(t, e.claim(time.Hour, 10)) {
			got[b] = true
		}
		for _, want := range []string{`{"customer":"a"}`, `{"customer":"b"}`, `{"customer":"c","copied":true}`, `{"customer":"d"}`} {
			if !got[want] {
				t.Errorf("claimed bodies %v: %s missing", got, want)
			}
		}
		if len(got) != 4 {
			t.Errorf("claimed %d distinct bodies, want 4: %v", len(got), got)
		}
	})

	t.Run("ExpiredNotRescued", func(t *testing.T) {
		// Past its lease a running job is still not claimed: only
		// RescueJobs makes it available, recording the lost attempt.
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		e.claim(shortLease, 10)
		e.wait(expire)
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Errorf("claim after the lease, not rescued: got %v, want none", jobIDs(got))
		}
	})

	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, b)
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Fatalf("got %v, want none", jobIDs(got))
		}
	})

	t.Run("Priority", func(t *testing.T) {
		// Urgent before regular whatever the order they came in; within a
		// priority, by scheduled time then ID.
		e := newEnv(t, b)
		base := e.now().Add(-time.Hour)
		r1 := e.queue("regular-1", hooks.UrgencyRegular, base)
		r2 := e.queue("regular-2", hooks.UrgencyRegular, base.Add(-time.Minute))
		u1 := e.queue("urgent-1", hooks.UrgencyUrgent, base.Add(time.Second))
		r3 := e.queue("regular-3", hooks.UrgencyRegular, base)
		u2 := e.queue("urgent-2", hooks.UrgencyUrgent, base)

		first := e.claim(time.Hour, 1)
		if got, want := fmt.Sprint(jobIDs(first)), fmt.Sprint([]int64{u2.ID}); got != want {
			t.Fatalf("first claim: got %s, want %s", got, want)
		}
		if got, want := first[0].Priority, 1; got != want {
			t.Fatalf("priority: got %d, want %d", got, want)
		}
		rest := e.claim(time.Hour, 10)
		if got, want := fmt.Sprint(jobIDs(rest)), fmt.Sprint([]int64{u1.ID, r2.ID, r1.ID, r3.ID}); got != want {
			t.Fatalf("rest: got %s, want %s", got, want)
		}
	})

	t.Run("Pressing", func(t *testing.T) {
		// ClaimPressing takes only jobs more pressing than its bound, in
		// queue order, and leaves the others available.
		e := newEnv(t, b)
		r := e.queue("regular", hooks.UrgencyRegular, e.now())
		u1 := e.queue("urgent-1", hooks.UrgencyUrgent, e.now())
		rt := e.queue("realtime", hooks.UrgencyRealtime, e.now())
		u2 := e.queue("urgent-2", hooks.UrgencyUrgent, e.now())
		claim := func(limit, below int) string {
			got, err := e.s.ClaimPressing(t.Context(), e.now(), time.Hour, limit, below, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range got {
				if len(j.Body) == 0 || j.State != hooks.JobRunning || j.Attempts != 1 {
					t.Errorf("claimed job %d: %+v, want running, attempt 1, with its body", j.ID, j)
				}
			}
			return fmt.Sprint(jobIDs(got))
		}
		if got := claim(10, 0); got != "[]" {
			t.Fatalf("below 0: got %s, want none", got)
		}
		if got, want := claim(1, 2), fmt.Sprint([]int64{rt.ID}); got != want {
			t.Fatalf("below 2, limit 1: got %s, want %s", got, want)
		}
		if got, want := claim(10, 2), fmt.Sprint([]int64{u1.ID, u2.ID}); got != want {
			t.Fatalf("below 2: got %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(jobIDs(e.claim(time.Hour, 10))), fmt.Sprint([]int64{r.ID}); got != want {
			t.Fatalf("left available: got %s, want %s", got, want)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		e := newEnv(t, b)
		var want []int64
		for i := 0; i < 5; i++ {
			want = append(want, e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now()).ID)
		}
		a, bb, c := e.claim(time.Hour, 3), e.claim(time.Hour, 3), e.claim(time.Hour, 3)
		if got := fmt.Sprint(jobIDs(a), jobIDs(bb), jobIDs(c)); got != fmt.Sprint(want[:3], want[3:], []int64{}) {
			t.Fatalf("got %s, want %v %v []", got, want[:3], want[3:])
		}
	})

	t.Run("Scheduled", func(t *testing.T) {
		// A job scheduled in the future waits for its time.
		e := newEnv(t, b)
		later := e.queue("later", hooks.UrgencyUrgent, e.now().Add(time.Hour))
		due := e.queue("due", hooks.UrgencyRegular, e.now())
		if got := e.claim(time.Hour, 10); len(got) != 1 || got[0].ID != due.ID {
			t.Fatalf("got %v, want [%d] (the job due now only)", jobIDs(got), due.ID)
		}
		if got, want := e.job(later.ID).State, hooks.JobAvailable; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Workers claiming at once never get the same job.
		e := newEnv(t, b)
		const n = 120
		for i := 0; i < n; i++ {
			e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now())
		}
		seen := claimAll(t, e.now(), []Store{e.s}, 8)
		if got, want := len(seen), n; got != want {
			t.Fatalf("distinct jobs claimed: got %d, want %d", got, want)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("job %d: claimed %d times, want 1", id, c)
			}
		}
	})
}

// claimAll claims jobs with workers goroutines on each store until none is
// left, and returns how many times each job was handed out.
func claimAll(t *testing.T, now time.Time, stores []Store, workers int) map[int64]int {
	t.Helper()
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*len(stores))
	start := make(chan struct{})
	for _, s := range stores {
		for w := 0; w < workers; w++ {
			wg.Go(func() {
				<-start
				for {
					jobs, err := s.ClaimJobs(t.Context(), now, time.Hour, 7, 7)
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
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return seen
}

func testRescueJobs(t *testing.T, b Backend) {
	t.Run("OK", func(t *testing.T) {
		// Only running jobs whose lease ran out are made available; their
		// attempt stays counted and is recorded as interrupted.
		e := newEnv(t, b)
		for i := 0; i < 3; i++ {
			e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now())
		}
		short := e.claim(shortLease, 2)
		long := e.claim(time.Hour, 1)
		if len(short) != 2 || len(long) != 1 {
			t.Fatalf("claims: got %d and %d jobs, want 2 and 1", len(short), len(long))
		}
		e.wait(expire)
		if got, want := e.rescue(hooks.RetryPolicy{}), int64(2); got != want {
			t.Fatalf("rescued: got %d, want %d", got, want)
		}
		for _, j := range short {
			stored := e.job(j.ID)
			if stored.State != hooks.JobAvailable || stored.Attempts != 1 || !stored.LockedUntil.IsZero() ||
				!strings.Contains(stored.LastError, "lease expired") {
				t.Errorf("rescued job: got %+v, want available after 1 attempt, unlocked, with why", stored)
			}
			if got, want := e.attempts(j.ID), string(hooks.OutcomeInterrupted); got != want {
				t.Errorf("attempts of job %d: got %q, want %q", j.ID, got, want)
			}
		}
		if got, want := e.job(long[0].ID).State, hooks.JobRunning; got != want {
			t.Errorf("job under a live lease: got %s, want %s", got, want)
		}
		if got, want := e.rescue(hooks.RetryPolicy{}), int64(0); got != want {
			t.Fatalf("second rescue: got %d, want %d", got, want)
		}
		// A rescued job is claimed again, as its next attempt.
		got := e.claim(time.Hour, 10)
		if len(got) != 2 || got[0].Attempts != 2 || got[1].Attempts != 2 {
			t.Fatalf("claim after rescue: got %+v, want the two rescued jobs, attempt 2", got)
		}
	})

	t.Run("InterruptedAndDead", func(t *testing.T) {
		// A job that reached the policy's limit is dead: a job that kills
		// its process every time cannot crash-loop forever.
		e := newEnv(t, b)
		e.queue("again", hooks.UrgencyRegular, e.now())
		e.queue("poison", hooks.UrgencyRegular, e.now())
		policy := hooks.RetryPolicy{MaxAttempts: 2}
		for round := 1; round <= 2; round++ {
			claimed := e.claim(shortLease, 2)
			if round == 1 && len(claimed) != 2 || round == 2 && len(claimed) != 1 {
				t.Fatalf("round %d: claimed %d", round, len(claimed))
			}
			e.wait(expire)
			if n := e.rescue(policy); n != int64(len(claimed)) {
				t.Fatalf("round %d: rescued %d, want %d", round, n, len(claimed))
			}
			if round == 1 {
				// One job is delivered on its second claim; only the
				// other stays in play.
				j := e.claim(time.Hour, 1)[0]
				if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{j}, e.now()); err != nil {
					t.Fatal(err)
				}
			}
		}
		dead := e.jobs(hooks.JobFilter{State: hooks.JobDead})
		if len(dead) != 1 || dead[0].Attempts != 2 || !strings.Contains(dead[0].LastError, "process running this attempt stopped") {
			t.Fatalf("dead jobs: got %+v, want the crash-looping one after 2 attempts", dead)
		}
		if got, want := e.attempts(dead[0].ID), "interrupted,dead"; got != want {
			t.Fatalf("attempts of the dead job: got %s, want %s", got, want)
		}
	})

	t.Run("ClaimedAhead", func(t *testing.T) {
		// Of a claim, only the jobs for waiting workers count when their
		// process dies: the others were claimed ahead and may never have
		// started. Their attempt is given back, once: their next claim
		// counts whatever it is for, so that a job that kills its process
		// from the line dies in the end like any other.
		e := newEnv(t, b)
		for i := range 3 {
			e.queue(fmt.Sprintf("ahead-%d", i), hooks.UrgencyRegular, e.now())
		}
		policy := hooks.RetryPolicy{MaxAttempts: 1}
		claimed, err := e.s.ClaimJobs(t.Context(), e.now(), shortLease, 3, 1)
		if err != nil || len(claimed) != 3 {
			t.Fatalf("claim: %d jobs, %v", len(claimed), err)
		}
		e.wait(expire)
		if got, want := e.rescue(policy), int64(3); got != want {
			t.Fatalf("rescued: got %d, want %d", got, want)
		}
		if got := e.job(claimed[0].ID); got.State != hooks.JobDead || got.Attempts != 1 {
			t.Errorf("the job for the waiting worker: got %s after %d attempts, want dead after 1", got.State, got.Attempts)
		}
		for _, j := range claimed[1:] {
			got := e.job(j.ID)
			if got.State != hooks.JobAvailable || got.Attempts != 0 || !strings.Contains(got.LastError, "not counted") {
				t.Errorf("job %d claimed ahead: got %s after %d attempts (%q), want available after 0", j.ID, got.State, got.Attempts, got.LastError)
			}
			if got, want := e.attempts(j.ID), string(hooks.OutcomeInterrupted); got != want {
				t.Errorf("attempts of job %d: got %q, want %q", j.ID, got, want)
			}
		}
		// Claimed ahead again, and their process dies again: this time
		// the attempt counts.
		again, err := e.s.ClaimJobs(t.Context(), e.now(), shortLease, 2, 0)
		if err != nil || len(again) != 2 {
			t.Fatalf("second claim: %d jobs, %v", len(again), err)
		}
		e.wait(expire)
		if got, want := e.rescue(policy), int64(2); got != want {
			t.Fatalf("second rescue: got %d, want %d", got, want)
		}
		for _, j := range again {
			if got := e.job(j.ID); got.State != hooks.JobDead || got.Attempts != 1 {
				t.Errorf("job %d, given back once: got %s after %d attempts, want dead after 1", j.ID, got.State, got.Attempts)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, b)
		if got, want := e.rescue(hooks.RetryPolicy{}), int64(0); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	})
}

func testCompleteJobs(t *testing.T, b Backend) {
	t.Run("Batch", func(t *testing.T) {
		// Several jobs at once; unknown IDs and an empty list are harmless.
		e := newEnv(t, b)
		for i := 0; i < 5; i++ {
			e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now())
		}
		jobs := e.claim(time.Hour, 5)
		if err := e.s.CompleteJobs(t.Context(), append(jobs[:4:4], &hooks.Job{ID: 12345, Attempts: 1}), e.now()); err != nil {
			t.Fatal(err)
		}
		if err := e.s.CompleteJobs(t.Context(), nil, e.now()); err != nil {
			t.Fatal(err)
		}
		if got, want := len(e.jobs(hooks.JobFilter{State: hooks.JobDone})), 4; got != want {
			t.Fatalf("done jobs: got %d, want %d", got, want)
		}
		if got, want := e.job(jobs[4].ID).State, hooks.JobRunning; got != want {
			t.Fatalf("job not completed: got %s, want %s", got, want)
		}
	})

	t.Run("OK", func(t *testing.T) {
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		j := e.claim(time.Hour, 1)[0]
		j.AttemptStarted, j.AttemptDuration = e.now(), 3*time.Millisecond
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{j}, e.now()); err != nil {
			t.Fatal(err)
		}
		stored := e.job(j.ID)
		if stored.State != hooks.JobDone || !stored.LockedUntil.IsZero() || stored.Attempts != 1 {
			t.Fatalf("got %+v, want done after 1 attempt, unlocked", stored)
		}
		if got, want := e.attempts(j.ID), string(hooks.OutcomeOK); got != want {
			t.Fatalf("attempts: got %q, want %q", got, want)
		}
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Fatalf("claim after completion: got %v, want none", jobIDs(got))
		}
	})

	t.Run("NotRunning", func(t *testing.T) {
		// A job that is not running is left alone.
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		j := e.claim(time.Hour, 1)[0]
		if err := e.s.FailJob(t.Context(), j, e.now(), e.now(), true, "boom"); err != nil {
			t.Fatal(err)
		}
		j.AttemptStarted = e.now()
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{j}, e.now()); err != nil {
			t.Fatal(err)
		}
		if got, want := e.job(j.ID).State, hooks.JobDead; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
		if got := e.attempts(j.ID); got != "" {
			t.Fatalf("attempts: got %q, want none recorded by the late completion", got)
		}
	})

	t.Run("StaleLease", func(t *testing.T) {
		// Worker A's lease ran out and worker B took the job. A finishing
		// late must not mark B's run done.
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		a := e.claim(shortLease, 1)[0]
		e.wait(expire)
		if got, want := e.rescue(hooks.RetryPolicy{}), int64(1); got != want {
			t.Fatalf("rescued: got %d, want %d", got, want)
		}
		bb := e.claim(time.Hour, 1)[0]
		if bb.ID != a.ID || bb.Attempts != 2 {
			t.Fatalf("second claim: got %+v, want job %d, attempt 2", bb, a.ID)
		}
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{a}, e.now()); err != nil {
			t.Fatal(err)
		}
		if got, want := e.job(a.ID).State, hooks.JobRunning; got != want {
			t.Fatalf("state after the stale worker completed: got %s, want %s (still B's)", got, want)
		}
	})
}

func testFailJob(t *testing.T, b Backend) {
	t.Run("Retry", func(t *testing.T) {
		e := newEnv(t, b)
		e.queue("later", hooks.UrgencyRegular, e.now())
		e.queue("now", hooks.UrgencyRegular, e.now())
		claimed := e.claim(time.Hour, 2)
		later, now := claimed[0], claimed[1]
		retryAt := e.now().Add(time.Hour)
		later.AttemptStarted = e.now()
		if err := e.s.FailJob(t.Context(), later, e.now(), retryAt, false, "HTTP 503"); err != nil {
			t.Fatal(err)
		}
		stored := e.job(later.ID)
		if stored.State != hooks.JobAvailable || !stored.ScheduledAt.Equal(retryAt) || stored.LastError != "HTTP 503" ||
			stored.Attempts != 1 || !stored.LockedUntil.IsZero() {
			t.Fatalf("got %+v, want available at %v after 1 attempt, with its error", stored, retryAt)
		}
		if got, want := e.attempts(later.ID), string(hooks.OutcomeFailed); got != want {
			t.Errorf("attempts: got %q, want %q", got, want)
		}
		if err := e.s.FailJob(t.Context(), now, e.now(), e.now(), false, "HTTP 502"); err != nil {
			t.Fatal(err)
		}
		// Only the job whose retry is due is claimed, as its next attempt.
		got := e.claim(time.Hour, 10)
		if len(got) != 1 || got[0].ID != now.ID || got[0].Attempts != 2 || got[0].LastError != "HTTP 502" {
			t.Fatalf("claim: got %+v, want job %d, attempt 2, with its last error", got, now.ID)
		}
	})

	t.Run("Dead", func(t *testing.T) {
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		j := e.claim(time.Hour, 1)[0]
		j.AttemptStarted = e.now()
		if err := e.s.FailJob(t.Context(), j, e.now(), e.now(), true, "gave up"); err != nil {
			t.Fatal(err)
		}
		stored := e.job(j.ID)
		if stored.State != hooks.JobDead || stored.LastError != "gave up" || !stored.LockedUntil.IsZero() {
			t.Fatalf("got %+v, want dead with its error", stored)
		}
		if got, want := e.attempts(j.ID), string(hooks.OutcomeDead); got != want {
			t.Errorf("attempts: got %q, want %q", got, want)
		}
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Fatalf("claim a dead job: got %v, want none", jobIDs(got))
		}
	})

	t.Run("StaleLease", func(t *testing.T) {
		// A failing late after B took the job over must not reschedule it
		// under B, which would let a third worker run it at the same time.
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		a := e.claim(shortLease, 1)[0]
		e.wait(expire)
		e.rescue(hooks.RetryPolicy{})
		bb := e.claim(time.Hour, 1)[0]
		a.AttemptStarted = e.now()
		if err := e.s.FailJob(t.Context(), a, e.now(), e.now(), false, "late failure"); err != nil {
			t.Fatal(err)
		}
		if got := e.claim(time.Hour, 1); len(got) != 0 {
			t.Fatalf("claim while B runs job %d: got %v, want none", bb.ID, jobIDs(got))
		}
		if got, want := e.attempts(a.ID), string(hooks.OutcomeInterrupted); got != want {
			t.Fatalf("attempts: got %q, want %q (the late failure is not B's attempt)", got, want)
		}
	})
}

func testReleaseJobs(t *testing.T, b Backend) {
	t.Run("OK", func(t *testing.T) {
		// Released jobs are available again and the claim is not counted.
		e := newEnv(t, b)
		for i := 0; i < 3; i++ {
			e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now())
		}
		jobs := e.claim(time.Hour, 3)
		if err := e.s.ReleaseJobs(t.Context(), jobs[1:]); err != nil {
			t.Fatal(err)
		}
		if got, want := e.job(jobs[0].ID).State, hooks.JobRunning; got != want {
			t.Errorf("job not released: got %s, want %s", got, want)
		}
		for _, j := range jobs[1:] {
			stored := e.job(j.ID)
			if stored.State != hooks.JobAvailable || stored.Attempts != 0 || !stored.LockedUntil.IsZero() {
				t.Errorf("released job: got %+v, want available, 0 attempts", stored)
			}
			if got := e.attempts(j.ID); got != "" {
				t.Errorf("attempts of a job never started: got %q, want none", got)
			}
		}
		again := e.claim(time.Hour, 10)
		if got, want := fmt.Sprint(jobIDs(again)), fmt.Sprint(jobIDs(jobs[1:])); got != want {
			t.Fatalf("claim again: got %s, want %s", got, want)
		}
		for _, j := range again {
			if j.Attempts != 1 {
				t.Errorf("job %d: attempts got %d, want 1", j.ID, j.Attempts)
			}
		}
	})

	t.Run("Started", func(t *testing.T) {
		// A job released after its action started (a shutdown cut it
		// short) has that attempt on record as interrupted.
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		j := e.claim(time.Hour, 1)[0]
		j.AttemptStarted = e.now()
		if err := e.s.ReleaseJobs(t.Context(), []*hooks.Job{j}); err != nil {
			t.Fatal(err)
		}
		if got, want := e.job(j.ID).State, hooks.JobAvailable; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
		if got, want := e.attempts(j.ID), string(hooks.OutcomeInterrupted); got != want {
			t.Fatalf("attempts: got %q, want %q", got, want)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, b)
		if err := e.s.ReleaseJobs(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NotRunning", func(t *testing.T) {
		// Only running jobs are released: a finished one stays finished.
		e := newEnv(t, b)
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		j := e.claim(time.Hour, 1)[0]
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{j}, e.now()); err != nil {
			t.Fatal(err)
		}
		if err := e.s.ReleaseJobs(t.Context(), []*hooks.Job{j, {ID: 12345, Attempts: 1}}); err != nil {
			t.Fatal(err)
		}
		if stored := e.job(j.ID); stored.State != hooks.JobDone || stored.Attempts != 1 {
			t.Fatalf("got %+v, want done after 1 attempt", stored)
		}
	})
}

// claimed claims the jobs due now and returns the one of request ID rid,
// leased for an hour; the others go back to the queue.
func (e *env) claimed(rid string) *hooks.Job {
	e.t.Helper()
	var found *hooks.Job
	for _, j := range e.claim(time.Hour, 100) {
		if j.RequestID == rid && found == nil {
			found = j
		} else if err := e.s.ReleaseJobs(e.t.Context(), []*hooks.Job{j}); err != nil {
			e.t.Fatal(err)
		}
	}
	if found == nil {
		e.t.Fatalf("job of %s not claimed", rid)
	}
	return found
}

// deadJob queues a job and fails it for good, and returns it as stored.
func (e *env) deadJob(rid string) *hooks.Job {
	e.t.Helper()
	e.queue(rid, hooks.UrgencyRegular, e.now())
	j := e.claimed(rid)
	if err := e.s.FailJob(e.t.Context(), j, e.now(), e.now(), true, "gave up"); err != nil {
		e.t.Fatal(err)
	}
	return e.job(j.ID)
}

func testRetryJobs(t *testing.T, b Backend) {
	e := newEnv(t, b)
	dead := e.deadJob("dead")
	// waiting failed once and waits an hour for its next attempt.
	waiting := e.queue("waiting", hooks.UrgencyRegular, e.now())
	if err := e.s.FailJob(t.Context(), e.claimed("waiting"), e.now(), e.now().Add(time.Hour), false, "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	done := e.queue("done", hooks.UrgencyRegular, e.now())
	if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{e.claimed("done")}, e.now()); err != nil {
		t.Fatal(err)
	}
	running := e.queue("running", hooks.UrgencyRegular, e.now())
	e.claimed("running")

	n, err := e.s.RetryJobs(t.Context(), []int64{dead.ID, waiting.ID, done.ID, running.ID, 12345}, e.now())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(2); got != want {
		t.Fatalf("retried: got %d, want %d (the dead and the waiting job)", got, want)
	}
	if n, err := e.s.RetryJobs(t.Context(), nil, e.now()); err != nil || n != 0 {
		t.Fatalf("retry none: got %d, %v; want 0, nil", n, err)
	}
	// A dead job starts over; a waiting one keeps its attempts. Done and
	// running jobs are left alone.
	if got := e.job(done.ID).State; got != hooks.JobDone {
		t.Errorf("done job: got %s, want done", got)
	}
	if got := e.job(running.ID).State; got != hooks.JobRunning {
		t.Errorf("running job: got %s, want running", got)
	}
	claimed := e.claim(time.Hour, 10)
	if got, want := fmt.Sprint(jobIDs(claimed)), fmt.Sprint([]int64{dead.ID, waiting.ID}); got != want {
		t.Fatalf("claim after retry: got %s, want %s", got, want)
	}
	if claimed[0].Attempts != 1 || !e.nowish(claimed[0].CreatedAt) {
		t.Errorf("retried dead job: got attempt %d, created %v; want attempt 1, its age counted from now",
			claimed[0].Attempts, claimed[0].CreatedAt)
	}
	if claimed[1].Attempts != 2 {
		t.Errorf("retried waiting job: got attempt %d, want 2", claimed[1].Attempts)
	}
}

func testRetryDead(t *testing.T, b Backend) {
	e := newEnv(t, b)
	before := e.deadJob("before")
	since := e.mark()
	after := e.deadJob("after")
	e.queue("alive", hooks.UrgencyRegular, e.now().Add(time.Hour))

	n, err := e.s.RetryDead(t.Context(), since, e.now())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(1); got != want {
		t.Fatalf("retried: got %d, want %d", got, want)
	}
	if got := e.job(before.ID).State; got != hooks.JobDead {
		t.Errorf("job dead before since: got %s, want dead", got)
	}
	claimed := e.claim(time.Hour, 10)
	if len(claimed) != 1 || claimed[0].ID != after.ID || claimed[0].Attempts != 1 {
		t.Fatalf("claim after retry: got %+v, want job %d, attempt 1", claimed, after.ID)
	}
	if n, err := e.s.RetryDead(t.Context(), since.Add(-time.Hour), e.now()); err != nil || n != 1 {
		t.Fatalf("retry all dead: got %d, %v; want 1, nil", n, err)
	}
}

func testReplayJobs(t *testing.T, b Backend) {
	t.Run("OK", func(t *testing.T) {
		// A delivered request runs again now, as a new job leased to the
		// caller, which the workers leave alone.
		e := newEnv(t, b)
		r := e.receipt("req-1", `{}`)
		e.save(r)
		first := e.claim(time.Hour, 1)[0]
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{first}, e.now()); err != nil {
			t.Fatal(err)
		}
		now := e.now()
		jobs, err := e.s.ReplayJobs(t.Context(), r.Request.ID, now, time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 {
			t.Fatalf("got %d jobs, want 1", len(jobs))
		}
		j := jobs[0]
		if j.ID == 0 || j.ID == first.ID || j.RequestRef != r.Request.ID || j.State != hooks.JobRunning || j.Attempts != 1 ||
			j.Name != "SendEvent1" || j.RequestID != "req-1" || string(j.Body) != string(r.Request.Body) || j.Payload != nil ||
			!lockedWithin(j.LockedUntil, now, time.Hour) {
			t.Fatalf("replayed job: got %+v, want a new running job for request %d, leased for an hour", j, r.Request.ID)
		}
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Fatalf("claim: got %v, want none (the replay holds its job)", jobIDs(got))
		}
		if err := e.s.CompleteJobs(t.Context(), jobs, e.now()); err != nil {
			t.Fatal(err)
		}
		if got, want := e.job(j.ID).State, hooks.JobDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})

	t.Run("Items", func(t *testing.T) {
		// A batch replays as its customers, each with its own bytes.
		e := newEnv(t, b)
		r := e.batch("batch-1", "a", "b")
		for _, it := range r.Items {
			it.Job.Stored(e.now())
		}
		e.save(r)
		jobs, err := e.s.ReplayJobs(t.Context(), r.Request.ID, e.now(), time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(customerBodies(t, jobs), " "), `{"customer":"a"} {"customer":"b"}`; got != want {
			t.Fatalf("replayed: got %s, want %s", got, want)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		// What the sender never had accepted is not replayed unless forced.
		e := newEnv(t, b)
		refused := e.receipt("refused", `{"error":"bad"}`).Request
		refused.Status = http.StatusBadRequest
		if err := e.s.Record(t.Context(), refused); err != nil {
			t.Fatal(err)
		}
		first := e.receipt("req-1", `{}`)
		e.save(first)
		dup := e.receipt("req-1", `{}`)
		e.save(dup)
		none := e.receipt("none", `{}`)
		none.Job = nil
		e.save(none)
		for _, id := range []int64{refused.ID, dup.Request.ID, none.Request.ID} {
			if _, err := e.s.ReplayJobs(t.Context(), id, e.now(), time.Hour, false); hooks.ErrorCode(err) != hooks.EINVALID {
				t.Errorf("replay request %d: got %v, want EINVALID", id, err)
			}
		}
		jobs, err := e.s.ReplayJobs(t.Context(), refused.ID, e.now(), time.Hour, true)
		if err != nil || len(jobs) != 1 || string(jobs[0].Body) != string(refused.Body) {
			t.Fatalf("forced replay: got %+v, %v; want one job with the whole body", jobs, err)
		}
		if _, err := e.s.ReplayJobs(t.Context(), 12345, e.now(), time.Hour, true); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("replay an unknown request: got %v, want ENOTFOUND", err)
		}
	})
}

func testExtendLease(t *testing.T, b Backend) {
	e := newEnv(t, b)
	e.queue("req-1", hooks.UrgencyRegular, e.now())
	a := e.claim(shortLease, 1)[0]
	until := e.now().Add(time.Hour)
	if ok, err := e.s.ExtendLease(t.Context(), a, until); err != nil || !ok {
		t.Fatalf("extend: got %v, %v; want true, nil", ok, err)
	}
	if !a.LockedUntil.Equal(until) {
		t.Errorf("job's lease: got %v, want %v", a.LockedUntil, until)
	}
	e.wait(expire)
	if got := e.rescue(hooks.RetryPolicy{}); got != 0 {
		t.Fatalf("rescued under the extended lease: got %d, want 0", got)
	}
	if got := e.job(a.ID).LockedUntil; !got.Equal(until) {
		t.Errorf("stored lease: got %v, want %v", got, until)
	}

	// Once the job is another worker's, the first can extend nothing.
	if ok, err := e.s.ExtendLease(t.Context(), a, e.now()); err != nil || !ok {
		t.Fatalf("shorten: got %v, %v; want true, nil", ok, err)
	}
	e.wait(expire)
	if got := e.rescue(hooks.RetryPolicy{}); got != 1 {
		t.Fatalf("rescued: got %d, want 1", got)
	}
	bb := e.claim(time.Hour, 1)[0]
	if ok, err := e.s.ExtendLease(t.Context(), a, e.now().Add(2*time.Hour)); err != nil || ok {
		t.Fatalf("extend a lost lease: got %v, %v; want false, nil", ok, err)
	}
	if got := e.job(bb.ID).LockedUntil; !got.Equal(bb.LockedUntil) {
		t.Errorf("B's lease: got %v, want %v", got, bb.LockedUntil)
	}
}

func testFindJobs(t *testing.T, b Backend) {
	e := newEnv(t, b)
	a := e.queue("req-1", hooks.UrgencyRegular, e.now())
	bb := e.queue("req-2", hooks.UrgencyUrgent, e.now())
	r := e.receipt("req-3", `{}`)
	r.Request.Name, r.Job.Name = "ProcessOrder", "ProcessOrder"
	e.save(r)
	c := r.Job
	claimed := e.claim(time.Hour, 1)[0] // bb, urgent
	if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{claimed}, e.now()); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		f    hooks.JobFilter
		want []int64
	}{
		{"All", hooks.JobFilter{}, []int64{a.ID, bb.ID, c.ID}},
		{"State", hooks.JobFilter{State: hooks.JobAvailable}, []int64{a.ID, c.ID}},
		{"StateDone", hooks.JobFilter{State: hooks.JobDone}, []int64{bb.ID}},
		{"Name", hooks.JobFilter{Name: "ProcessOrder"}, []int64{c.ID}},
		{"RequestRef", hooks.JobFilter{RequestRef: r.Request.ID}, []int64{c.ID}},
		{"Limit", hooks.JobFilter{Limit: 2}, []int64{a.ID, bb.ID}},
		{"None", hooks.JobFilter{State: hooks.JobDead}, []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := fmt.Sprint(jobIDs(e.jobs(tt.f))), fmt.Sprint(tt.want); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

func testFindAttempts(t *testing.T, b Backend) {
	e := newEnv(t, b)
	e.queue("req-1", hooks.UrgencyRegular, e.now())
	j := e.claim(time.Hour, 1)[0]
	started := e.now()
	j.AttemptStarted, j.AttemptDuration = started, 1500*time.Microsecond
	if err := e.s.FailJob(t.Context(), j, e.now(), e.now(), false, "HTTP 500"); err != nil {
		t.Fatal(err)
	}
	j = e.claim(time.Hour, 1)[0]
	j.AttemptStarted, j.AttemptDuration = e.now(), time.Millisecond
	if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{j}, e.now()); err != nil {
		t.Fatal(err)
	}
	atts, err := e.s.FindAttempts(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 {
		t.Fatalf("got %d attempts, want 2", len(atts))
	}
	a := atts[0]
	if a.JobID != j.ID || a.Attempt != 1 || !a.StartedAt.Equal(started) || a.Duration != 1500*time.Microsecond ||
		a.Outcome != hooks.OutcomeFailed || a.Error != "HTTP 500" {
		t.Errorf("first attempt: got %+v, want attempt 1, failed with HTTP 500, 1.5ms from %v", a, started)
	}
	if a := atts[1]; a.Attempt != 2 || a.Outcome != hooks.OutcomeOK || a.Error != "" {
		t.Errorf("second attempt: got %+v, want attempt 2, ok", a)
	}
	if atts, err := e.s.FindAttempts(t.Context(), 12345); err != nil || len(atts) != 0 {
		t.Errorf("attempts of an unknown job: got %+v, %v; want none", atts, err)
	}
}

// testSaveLeased: a receipt's job written already leased to a waiting
// worker (hooks.Queue.Offer) is running under that lease, is not claimed
// again, completes like a claimed job, and is rescued when its lease runs
// out like one.
func testSaveLeased(t *testing.T, b Backend) {
	leased := func(e *env, rid string, lease time.Duration) *hooks.Job {
		r := e.receipt(rid, `{}`)
		r.Job.State, r.Job.Attempts, r.Job.LockedUntil = hooks.JobRunning, 1, e.now().Add(lease)
		if found := e.save(r); found != nil {
			t.Fatalf("save %s: got entry %+v, want nil", rid, found)
		}
		return r.Job
	}
	t.Run("Complete", func(t *testing.T) {
		e := newEnv(t, b)
		j := leased(e, "req-1", time.Hour)
		stored := e.job(j.ID)
		if stored.State != hooks.JobRunning || stored.Attempts != 1 || !lockedWithin(stored.LockedUntil, e.now(), time.Hour) {
			t.Fatalf("saved leased: got %+v, want running, attempt 1, locked for an hour", stored)
		}
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Fatalf("claim: got %v, want none: the job is leased", jobIDs(got))
		}
		j.AttemptStarted = e.now()
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{j}, e.now()); err != nil {
			t.Fatal(err)
		}
		if stored := e.job(j.ID); stored.State != hooks.JobDone || stored.Attempts != 1 {
			t.Fatalf("completed: got %+v, want done after 1 attempt", stored)
		}
		if got, want := e.attempts(j.ID), string(hooks.OutcomeOK); got != want {
			t.Fatalf("attempts: got %q, want %q", got, want)
		}
	})
	t.Run("Rescued", func(t *testing.T) {
		e := newEnv(t, b)
		j := leased(e, "req-1", shortLease)
		e.wait(expire)
		if got, want := e.rescue(hooks.RetryPolicy{}), int64(1); got != want {
			t.Fatalf("rescued: got %d, want %d", got, want)
		}
		got := e.claim(time.Hour, 10)
		if len(got) != 1 || got[0].ID != j.ID || got[0].Attempts != 2 {
			t.Fatalf("claim after rescue: got %+v, want job %d, attempt 2", got, j.ID)
		}
	})
}
