package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// The store is the pool's JobStore.
var _ hooks.JobStore = (*sqlite.DB)(nil)

// mustOpenStore opens a real SQLite store under tb.TempDir(), quiet,
// closed when the test ends.
func mustOpenStore(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db := sqlitetest.Open(tb)
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return db
}

// mustEnqueue accepts a request the way a handler does, through
// sqlite.Commit with a receipt, and returns its job, available at now.
func mustEnqueue(tb testing.TB, db *sqlite.DB, name string, u hooks.Urgency, now time.Time) *hooks.Job {
	tb.Helper()
	req := &hooks.Request{
		Sender:     hooks.SenderBubblehouse,
		Name:       name,
		Urgency:    u,
		Method:     http.MethodPost,
		Path:       "/bubblehouse/" + name,
		RemoteAddr: "192.0.2.1:4242",
		Header:     http.Header{"Content-Type": {"application/json"}, "X-Bh-Urgency": {string(u)}},
		Body:       []byte(fmt.Sprintf(`{"name":%q}`, name)),
		Status:     http.StatusOK,
		Response:   []byte(`{"ok":true}`),
		ReceivedAt: now,
	}
	r := &hooks.Receipt{Request: req, Job: hooks.NewJob(req, now)}
	if e, err := db.SaveReceipt(context.Background(), r); err != nil {
		tb.Fatalf("commit %s: %v", name, err)
	} else if e != nil {
		tb.Fatalf("commit %s: got entry %+v, want nil", name, e)
	}
	if r.Job.ID == 0 || r.Job.State != hooks.JobAvailable {
		tb.Fatalf("queued job: got %+v, want an available job with an ID", r.Job)
	}
	return r.Job
}

// mustFindJob returns the stored state of job id.
func mustFindJob(tb testing.TB, db *sqlite.DB, id int64) *hooks.Job {
	tb.Helper()
	jobs, err := db.FindJobs(context.Background(), hooks.JobFilter{Limit: 10000})
	if err != nil {
		tb.Fatalf("find jobs: %v", err)
	}
	for _, j := range jobs {
		if j.ID == id {
			return j
		}
	}
	tb.Fatalf("job %d not found", id)
	return nil
}

// mustFindJobsIn returns the jobs in state s.
func mustFindJobsIn(tb testing.TB, db *sqlite.DB, s hooks.JobState) []*hooks.Job {
	tb.Helper()
	jobs, err := db.FindJobs(context.Background(), hooks.JobFilter{State: s, Limit: 10000})
	if err != nil {
		tb.Fatalf("find %s jobs: %v", s, err)
	}
	return jobs
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not reached within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitRecv waits for a value on ch, failing the test after 5 s.
func waitRecv[T any](tb testing.TB, ch <-chan T, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		tb.Fatalf("%s: not seen within 5s", what)
	}
}

// waitJobState polls until job id is in state s and returns it.
func waitJobState(tb testing.TB, db *sqlite.DB, id int64, s hooks.JobState) *hooks.Job {
	tb.Helper()
	var j *hooks.Job
	waitFor(tb, 5*time.Second, fmt.Sprintf("job %d %s", id, s), func() bool {
		j = mustFindJob(tb, db, id)
		return j.State == s
	})
	return j
}

// newQueue returns a fast, quiet queue over db; the caller sets ActionFor.
func newQueue(db *sqlite.DB, workers int) *hooks.Queue {
	return &hooks.Queue{
		Store:        db,
		Workers:      workers,
		Lease:        time.Minute,
		PollInterval: 20 * time.Millisecond,
		Policy:       hooks.RetryPolicy{MaxAttempts: 3, Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond},
		Now:          time.Now,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// startQueue starts q and returns a function that stops it, at most once;
// it is also called when the test ends, before the store closes.
func startQueue(tb testing.TB, q *hooks.Queue) (stop func(ctx context.Context) error) {
	tb.Helper()
	q.Start()
	var once sync.Once
	stop = func(ctx context.Context) error {
		var err error
		once.Do(func() { err = q.Stop(ctx) })
		return err
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil {
			tb.Errorf("stop queue: %v", err)
		}
	})
	return stop
}

// mustStop stops the queue, failing the test if Stop hangs.
func mustStop(tb testing.TB, stop func(ctx context.Context) error, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stop(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("stop: %v", err)
		}
	case <-time.After(timeout + 5*time.Second):
		tb.Fatalf("stop did not return within %v", timeout+5*time.Second)
	}
}

// runLog records the jobs an action saw, in order.
type runLog struct {
	mu   sync.Mutex
	jobs []*hooks.Job
	runs map[int64]int
}

func (l *runLog) add(j *hooks.Job) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs == nil {
		l.runs = map[int64]int{}
	}
	cp := *j
	l.jobs = append(l.jobs, &cp)
	l.runs[j.ID]++
	return l.runs[j.ID]
}

func (l *runLog) count(id int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs[id]
}

func (l *runLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

func (l *runLog) all() []*hooks.Job {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*hooks.Job(nil), l.jobs...)
}

// actionFor makes every job run f.
func actionFor(f func(ctx context.Context, j *hooks.Job) error) func(*hooks.Job) hooks.Action {
	return func(*hooks.Job) hooks.Action {
		return hooks.ActionFunc(func(ctx context.Context, j *hooks.Job) ([]byte, error) { return nil, f(ctx, j) })
	}
}

func TestQueue_Start(t *testing.T) {
	t.Run("UrgentFirst", func(t *testing.T) {
		// Bubblehouse Hooks API, "Real-time, urgent and regular calls":
		// "arrange for urgent hooks to take priority". With a backlog of
		// regular jobs queued first, every urgent job still runs first.
		db := mustOpenStore(t)
		now := time.Now()
		var regular, urgent []*hooks.Job
		for i := 0; i < 30; i++ {
			regular = append(regular, mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, now))
		}
		for i := 0; i < 10; i++ {
			urgent = append(urgent, mustEnqueue(t, db, "CreateDiscount4", hooks.UrgencyUrgent, now))
		}
		var log runLog
		q := newQueue(db, 1)
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error { log.add(j); return nil })
		startQueue(t, q)

		waitFor(t, 5*time.Second, "all 40 jobs run", func() bool { return log.distinct() == 40 })
		seen := log.all()
		var order []string
		for _, j := range seen {
			order = append(order, string(j.Urgency))
		}
		for i, j := range seen[:len(urgent)] {
			if j.Urgency != hooks.UrgencyUrgent {
				t.Fatalf("run %d: got a %s job, want urgent first; order %v", i, j.Urgency, order)
			}
		}
		for i, j := range seen[len(urgent):] {
			if got, want := j.ID, regular[i].ID; got != want {
				t.Fatalf("regular run %d: got job %d, want %d (arrival order)", i, got, want)
			}
		}
		waitFor(t, 5*time.Second, "all 40 jobs done", func() bool { return len(mustFindJobsIn(t, db, hooks.JobDone)) == 40 })
	})

	t.Run("AtLeastOnce", func(t *testing.T) {
		// Every accepted job runs, once when nothing fails, and ends done.
		db := mustOpenStore(t)
		now := time.Now()
		const n = 100
		ids := map[int64]bool{}
		for i := 0; i < n; i++ {
			u := hooks.UrgencyRegular
			if i%3 == 0 {
				u = hooks.UrgencyUrgent
			}
			ids[mustEnqueue(t, db, "SendEvent1", u, now).ID] = true
		}
		var log runLog
		q := newQueue(db, 8)
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			if !ids[j.ID] {
				return fmt.Errorf("unexpected job %d", j.ID)
			}
			if got, want := string(j.Body), `{"name":"SendEvent1"}`; got != want {
				return fmt.Errorf("job %d body: got %s, want %s", j.ID, got, want)
			}
			log.add(j)
			return nil
		})
		stop := startQueue(t, q)
		waitFor(t, 5*time.Second, "all jobs run", func() bool { return log.distinct() == n })
		// Stop flushes the completions still batched in memory.
		mustStop(t, stop, 5*time.Second)

		for id := range ids {
			if got, want := log.count(id), 1; got != want {
				t.Errorf("job %d: got %d runs, want %d", id, got, want)
			}
		}
		if got, want := len(mustFindJobsIn(t, db, hooks.JobDone)), n; got != want {
			t.Fatalf("done jobs: got %d, want %d", got, want)
		}
		for _, j := range mustFindJobsIn(t, db, hooks.JobDone) {
			if j.Attempts != 1 || !j.LockedUntil.IsZero() {
				t.Errorf("job %d: got %d attempts, locked until %v; want 1 attempt, no lock", j.ID, j.Attempts, j.LockedUntil)
			}
		}
	})

	t.Run("NotifyWakesPool", func(t *testing.T) {
		// A job queued after Start runs without waiting for a long poll.
		db := mustOpenStore(t)
		var log runLog
		q := newQueue(db, 2)
		q.PollInterval = time.Hour
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error { log.add(j); return nil })
		startQueue(t, q)
		j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		q.Notify()
		waitFor(t, 5*time.Second, "notified job run", func() bool { return log.count(j.ID) == 1 })
		waitJobState(t, db, j.ID, hooks.JobDone)
	})

	t.Run("DefaultStoreAction", func(t *testing.T) {
		// Without ActionFor every job gets StoreAction, which succeeds.
		db := mustOpenStore(t)
		j := mustEnqueue(t, db, "CreateDiscount4", hooks.UrgencyUrgent, time.Now())
		q := newQueue(db, 1)
		startQueue(t, q)
		waitJobState(t, db, j.ID, hooks.JobDone)
	})
}

func TestQueue_Retry(t *testing.T) {
	t.Run("FailingEndsDead", func(t *testing.T) {
		// A job that always fails is tried MaxAttempts times, then dead,
		// never deleted, with its last error kept.
		db := mustOpenStore(t)
		j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		var log runLog
		q := newQueue(db, 2)
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			n := log.add(j)
			return fmt.Errorf("integrator down (attempt %d)", n)
		})
		stop := startQueue(t, q)
		got := waitJobState(t, db, j.ID, hooks.JobDead)
		mustStop(t, stop, 5*time.Second)

		if got.Attempts != 3 {
			t.Errorf("attempts: got %d, want 3", got.Attempts)
		}
		if want := "integrator down (attempt 3)"; !strings.Contains(got.LastError, want) {
			t.Errorf("last error: got %q, want it to contain %q", got.LastError, want)
		}
		if got, want := log.count(j.ID), 3; got != want {
			t.Errorf("runs: got %d, want %d", got, want)
		}
		if !got.LockedUntil.IsZero() {
			t.Errorf("locked until: got %v, want none", got.LockedUntil)
		}
	})

	t.Run("FailTwiceThenSucceed", func(t *testing.T) {
		db := mustOpenStore(t)
		j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		var log runLog
		q := newQueue(db, 2)
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			if n := log.add(j); n <= 2 {
				return fmt.Errorf("temporary failure %d", n)
			}
			return nil
		})
		stop := startQueue(t, q)
		got := waitJobState(t, db, j.ID, hooks.JobDone)
		mustStop(t, stop, 5*time.Second)

		if got.Attempts != 3 {
			t.Errorf("attempts: got %d, want 3", got.Attempts)
		}
		if got, want := log.count(j.ID), 3; got != want {
			t.Errorf("runs: got %d, want %d", got, want)
		}
		// Attempts as the action saw them: one per run, in order.
		for i, seen := range log.all() {
			if seen.Attempts != i+1 {
				t.Errorf("run %d: got attempt %d, want %d", i, seen.Attempts, i+1)
			}
		}
	})

	t.Run("RetryWaitsForDelay", func(t *testing.T) {
		// A failed job is not run again before NextRetryAt.
		db := mustOpenStore(t)
		j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		var mu sync.Mutex
		var times []time.Time
		q := newQueue(db, 1)
		q.Policy = hooks.RetryPolicy{MaxAttempts: 2, Initial: 100 * time.Millisecond, Max: time.Second}
		q.ActionFor = actionFor(func(context.Context, *hooks.Job) error {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			return errors.New("boom")
		})
		startQueue(t, q)
		waitJobState(t, db, j.ID, hooks.JobDead)
		mu.Lock()
		defer mu.Unlock()
		if len(times) != 2 {
			t.Fatalf("runs: got %d, want 2", len(times))
		}
		if gap := times[1].Sub(times[0]); gap < 90*time.Millisecond {
			t.Fatalf("gap between attempts: got %v, want at least 100ms -10%%", gap)
		}
	})
}

func TestQueue_Panic(t *testing.T) {
	// One bad job cannot take the pool down: a panic is a failed attempt,
	// the job is retried then dead, never lost, and other jobs still run.
	db := mustOpenStore(t)
	now := time.Now()
	bad := mustEnqueue(t, db, "CreateDiscount4", hooks.UrgencyUrgent, now)
	flaky := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyUrgent, now)
	good := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, now)
	var log runLog
	q := newQueue(db, 1)
	q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
		n := log.add(j)
		switch {
		case j.ID == bad.ID:
			panic("integrator bug")
		case j.ID == flaky.ID && n == 1:
			var m map[string]int
			m["boom"]++ // a runtime panic, not just panic(string)
		}
		return nil
	})
	startQueue(t, q)

	deadJob := waitJobState(t, db, bad.ID, hooks.JobDead)
	if got, want := deadJob.Attempts, 3; got != want {
		t.Errorf("panicking job attempts: got %d, want %d", got, want)
	}
	if !strings.Contains(deadJob.LastError, "panic") || !strings.Contains(deadJob.LastError, "integrator bug") {
		t.Errorf("panicking job last error: got %q, want the panic", deadJob.LastError)
	}
	if got := waitJobState(t, db, flaky.ID, hooks.JobDone); got.Attempts != 2 {
		t.Errorf("job that panicked once: got %d attempts, want 2", got.Attempts)
	}
	waitJobState(t, db, good.ID, hooks.JobDone)

	// The single worker is still alive.
	later := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
	q.Notify()
	waitJobState(t, db, later.ID, hooks.JobDone)
}

func TestQueue_Stop(t *testing.T) {
	t.Run("CancelsSlowAction", func(t *testing.T) {
		// Stop waits for running actions until its ctx is done, then
		// cancels them; an interrupted job goes back to the queue with its
		// attempt undone.
		db := mustOpenStore(t)
		j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		started := make(chan struct{})
		q := newQueue(db, 1)
		q.ActionFor = actionFor(func(ctx context.Context, _ *hooks.Job) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		stop := startQueue(t, q)
		waitRecv(t, started, "action start")
		if got := mustFindJob(t, db, j.ID); got.State != hooks.JobRunning || got.Attempts != 1 {
			t.Fatalf("while running: got state %s, %d attempts; want running, 1", got.State, got.Attempts)
		}

		begin := time.Now()
		mustStop(t, stop, 100*time.Millisecond)
		if took := time.Since(begin); took < 90*time.Millisecond || took > 2*time.Second {
			t.Errorf("stop took %v, want about 100ms", took)
		}
		got := mustFindJob(t, db, j.ID)
		if got.State != hooks.JobAvailable || got.Attempts != 0 || !got.LockedUntil.IsZero() {
			t.Fatalf("after stop: got state %s, %d attempts, locked until %v; want available, 0, none",
				got.State, got.Attempts, got.LockedUntil)
		}
		if got.LastError != "" {
			t.Errorf("last error: got %q, want none: an interrupted run is not a failure", got.LastError)
		}
	})

	t.Run("WaitsForRunningAction", func(t *testing.T) {
		// An action that finishes before Stop's ctx is done completes.
		db := mustOpenStore(t)
		j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		started, release := make(chan struct{}), make(chan struct{})
		q := newQueue(db, 1)
		q.ActionFor = actionFor(func(ctx context.Context, _ *hooks.Job) error {
			close(started)
			<-release
			return ctx.Err()
		})
		stop := startQueue(t, q)
		waitRecv(t, started, "action start")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped := make(chan error, 1)
		go func() { stopped <- stop(ctx) }()
		close(release)
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("stop: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stop did not return")
		}
		if ctx.Err() != nil {
			t.Fatalf("stop returned after its ctx ended, want as soon as the action finished")
		}
		if got := mustFindJob(t, db, j.ID); got.State != hooks.JobDone || got.Attempts != 1 {
			t.Fatalf("after stop: got state %s, %d attempts; want done, 1", got.State, got.Attempts)
		}
	})

	t.Run("ReleasesUnstartedJobs", func(t *testing.T) {
		// Jobs claimed but not handed to a worker go back to the queue.
		db := mustOpenStore(t)
		now := time.Now()
		var ids []int64
		for i := 0; i < 5; i++ {
			ids = append(ids, mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, now).ID)
		}
		started := make(chan struct{}, 5)
		q := newQueue(db, 1)
		q.ActionFor = actionFor(func(ctx context.Context, _ *hooks.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		stop := startQueue(t, q)
		waitRecv(t, started, "action start")
		mustStop(t, stop, 50*time.Millisecond)
		for _, id := range ids {
			if got := mustFindJob(t, db, id); got.State != hooks.JobAvailable || got.Attempts != 0 {
				t.Errorf("job %d after stop: got state %s, %d attempts; want available, 0", id, got.State, got.Attempts)
			}
		}
	})

	t.Run("NotStarted", func(t *testing.T) {
		q := newQueue(mustOpenStore(t), 1)
		if err := q.Stop(context.Background()); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})

	t.Run("Twice", func(t *testing.T) {
		q := newQueue(mustOpenStore(t), 1)
		q.Start()
		for i := range 2 {
			if err := q.Stop(context.Background()); err != nil {
				t.Fatalf("stop %d: got %v, want nil", i+1, err)
			}
		}
	})
}

func TestQueue_PartialPolicy(t *testing.T) {
	// A policy with only MaxAttempts set still backs off: the unset fields
	// come from DefaultRetryPolicy, not zero delays.
	db := mustOpenStore(t)
	j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
	q := newQueue(db, 1)
	q.Policy = hooks.RetryPolicy{MaxAttempts: 2}
	q.ActionFor = actionFor(func(context.Context, *hooks.Job) error { return errors.New("down") })
	startQueue(t, q)
	waitFor(t, 2*time.Second, "first failure", func() bool { return mustFindJob(t, db, j.ID).LastError != "" })
	got := mustFindJob(t, db, j.ID)
	if got.State != hooks.JobAvailable || time.Until(got.ScheduledAt) < 500*time.Millisecond {
		t.Fatalf("after one failure: state %s, next run in %s; want available about 1s later", got.State, time.Until(got.ScheduledAt))
	}
}

func TestQueue_Rescue(t *testing.T) {
	// A job leased by a process that died is run once its lease expired.
	db := mustOpenStore(t)
	now := time.Now()
	j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, now)
	claimed, err := db.ClaimJobs(context.Background(), now, 50*time.Millisecond, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 || claimed[0].ID != j.ID {
		t.Fatalf("claim: got %d jobs, want job %d", len(claimed), j.ID)
	}

	var log runLog
	q := newQueue(db, 1)
	q.PollInterval = 20 * time.Millisecond
	q.Lease = time.Minute
	// The pool's clock is past the dead process's lease.
	q.Now = func() time.Time { return time.Now().Add(time.Hour) }
	q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error { log.add(j); return nil })
	startQueue(t, q)

	got := waitJobState(t, db, j.ID, hooks.JobDone)
	if got, want := log.count(j.ID), 1; got != want {
		t.Errorf("runs: got %d, want %d", got, want)
	}
	// The dead process's attempt counts.
	if got.Attempts != 2 {
		t.Errorf("attempts: got %d, want 2", got.Attempts)
	}
}

// An attempt that never started (no process slot came free) returns the
// job without counting an attempt; an answer over the output cap after
// the work was done is a success, not a reason to do the work again.
func TestQueue_NotStartedAndOversizedOutput(t *testing.T) {
	db := mustOpenStore(t)
	now := time.Now()
	waiting := mustEnqueue(t, db, "CreateDiscount4", hooks.UrgencyUrgent, now)
	chatty := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyUrgent, now)
	var log runLog
	q := newQueue(db, 1)
	q.ActionFor = func(*hooks.Job) hooks.Action {
		return hooks.ActionFunc(func(ctx context.Context, j *hooks.Job) ([]byte, error) {
			n := log.add(j)
			switch {
			case j.ID == waiting.ID && n <= 2:
				return nil, fmt.Errorf("exec x: no process slot came free: %w", hooks.ErrNotStarted)
			case j.ID == chatty.ID:
				return nil, fmt.Errorf("exec x: %w", &hooks.OutputTooLargeError{Max: 10})
			}
			return nil, nil
		})
	}
	startQueue(t, q)
	if got := waitJobState(t, db, waiting.ID, hooks.JobDone); got.Attempts != 1 {
		t.Errorf("job that waited twice for a slot: %d attempts, want 1 (the one that ran)", got.Attempts)
	}
	if got := waitJobState(t, db, chatty.ID, hooks.JobDone); got.Attempts != 1 {
		t.Errorf("job with an oversized answer: %d attempts, want 1", got.Attempts)
	}
	atts, err := db.FindAttempts(context.Background(), waiting.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || atts[0].Outcome != hooks.OutcomeOK {
		t.Fatalf("attempts of the job that waited: %+v, want one, ok", atts)
	}
}

// Observe hears of every attempt the workers record, with its outcome:
// the seam for metrics and live views.
func TestQueue_Observe(t *testing.T) {
	db := mustOpenStore(t)
	j := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyUrgent, time.Now())
	var log runLog
	var mu sync.Mutex
	var outcomes []string
	q := newQueue(db, 1)
	q.Observe = func(oj *hooks.Job, r hooks.AttemptResult) {
		mu.Lock()
		defer mu.Unlock()
		outcomes = append(outcomes, fmt.Sprintf("%d:%s", oj.ID, r.Outcome))
	}
	q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
		if log.add(j) == 1 {
			return errors.New("first try fails")
		}
		return nil
	})
	startQueue(t, q)
	waitJobState(t, db, j.ID, hooks.JobDone)
	// The worker tells Observe once it has handed the job to be completed,
	// which may be after the store says done.
	waitFor(t, 5*time.Second, "two attempts observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(outcomes) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(outcomes, ","), fmt.Sprintf("%d:failed,%d:ok", j.ID, j.ID); got != want {
		t.Fatalf("observed %s, want %s", got, want)
	}
}

// countingStore is the real store, counting the claims and releases the
// pool makes.
type countingStore struct {
	*sqlite.DB
	claims, releases atomic.Int32
}

func (s *countingStore) ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit, start int) ([]*hooks.Job, error) {
	s.claims.Add(1)
	return s.DB.ClaimJobs(ctx, now, lease, limit, start)
}

func (s *countingStore) ReleaseJobs(ctx context.Context, jobs []*hooks.Job) error {
	s.releases.Add(1)
	return s.DB.ReleaseJobs(ctx, jobs)
}

// pausingStore holds the first ordinary claim that returns job pauseFor
// until proceed is closed, once it has told claimed.
type pausingStore struct {
	*sqlite.DB
	pauseFor atomic.Int64
	once     sync.Once
	claimed  chan struct{}
	proceed  chan struct{}
}

func (s *pausingStore) ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit, start int) ([]*hooks.Job, error) {
	jobs, err := s.DB.ClaimJobs(ctx, now, lease, limit, start)
	if id := s.pauseFor.Load(); id != 0 && slices.ContainsFunc(jobs, func(j *hooks.Job) bool { return j.ID == id }) {
		s.once.Do(func() {
			close(s.claimed)
			<-s.proceed
		})
	}
	return jobs, err
}

func TestQueue_Prefetch(t *testing.T) {
	t.Run("UrgentOvertakesLine", func(t *testing.T) {
		// Regular jobs already claimed into the line do not delay an
		// urgent job queued after them: told of it (Queued), the pool
		// claims it ahead of them and gives back the least pressing.
		db := mustOpenStore(t)
		const workers = 2
		for range 30 {
			mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
		}
		var log runLog
		q := newQueue(db, workers)
		q.Prefetch = 8
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			log.add(j)
			time.Sleep(20 * time.Millisecond)
			return nil
		})
		startQueue(t, q)
		waitFor(t, 5*time.Second, "the line to fill", func() bool { return log.distinct() >= 4 })
		urgent := mustEnqueue(t, db, "CreateDiscount4", hooks.UrgencyUrgent, time.Now())
		q.Queued(urgent.Priority)
		before := log.distinct()
		waitFor(t, 10*time.Second, "all 31 jobs run", func() bool { return log.distinct() == 31 })
		at := slices.IndexFunc(log.all(), func(j *hooks.Job) bool { return j.ID == urgent.ID })
		// Only the jobs running when it arrived (workers) may start
		// before it.
		if limit := before + workers; at > limit {
			t.Fatalf("the urgent job ran %dth, %d runs after it was queued; want at most %d (the line holds %d)",
				at+1, at-before, workers, q.Prefetch)
		}
	})

	t.Run("PressingClaimWaitsForLine", func(t *testing.T) {
		// The feeder's ordinary claim takes an urgent job the pool was
		// just told of, and is slow to put it in the line. A worker that
		// finishes meanwhile looks for that urgent job with a claim of
		// its own, finds it taken, and must wait for it rather than
		// start a regular job from the line.
		db := &pausingStore{DB: mustOpenStore(t), claimed: make(chan struct{}), proceed: make(chan struct{})}
		var regular []*hooks.Job
		for range 3 {
			regular = append(regular, mustEnqueue(t, db.DB, "SendEvent1", hooks.UrgencyRegular, time.Now()))
		}
		gate := make(chan struct{})
		var log runLog
		q := newQueue(db.DB, 1)
		q.Store = db
		q.Prefetch = 4
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			log.add(j)
			if j.ID == regular[0].ID {
				<-gate
			}
			return nil
		})
		startQueue(t, q)
		waitFor(t, 5*time.Second, "the first job to start", func() bool { return log.distinct() == 1 })
		urgent := mustEnqueue(t, db.DB, "CreateDiscount4", hooks.UrgencyUrgent, time.Now())
		db.pauseFor.Store(urgent.ID)
		waitRecv(t, db.claimed, "the feeder's claim of the urgent job") // at the next poll
		q.Queued(urgent.Priority)
		close(gate)
		// Without the wait the worker starts the next regular job at once.
		time.Sleep(100 * time.Millisecond)
		close(db.proceed)
		waitFor(t, 5*time.Second, "all 4 jobs run", func() bool { return log.distinct() == 4 })
		if got := log.all()[1].ID; got != urgent.ID {
			t.Fatalf("second job run: %d, want the urgent job %d", got, urgent.ID)
		}
	})

	t.Run("StaleInLineReleased", func(t *testing.T) {
		// A job that waited in the line for half its lease goes back to
		// the queue and runs later under a whole lease, its attempt
		// counted once.
		db := &countingStore{DB: mustOpenStore(t)}
		first := mustEnqueue(t, db.DB, "SendEvent1", hooks.UrgencyUrgent, time.Now())
		second := mustEnqueue(t, db.DB, "SendEvent1", hooks.UrgencyRegular, time.Now())
		var log runLog
		q := newQueue(db.DB, 1)
		q.Store = db
		q.Prefetch, q.Lease = 2, 2*time.Second
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			log.add(j)
			if j.ID == first.ID {
				time.Sleep(1200 * time.Millisecond) // the second waits more than Lease/2
			}
			return nil
		})
		startQueue(t, q)
		got := waitJobState(t, db.DB, second.ID, hooks.JobDone)
		if got.Attempts != 1 || log.count(second.ID) != 1 {
			t.Fatalf("second job: %d attempts, %d runs; want 1 and 1", got.Attempts, log.count(second.ID))
		}
		if db.releases.Load() == 0 {
			t.Fatal("the stale job was run, not released")
		}
	})
}

func TestQueue_Offer(t *testing.T) {
	// A worker waiting with nothing in the line takes the job of a request
	// being accepted: the job is written leased to it and handed over
	// after the commit, without a claim.
	db := &countingStore{DB: mustOpenStore(t)}
	var log runLog
	q := newQueue(db.DB, 1)
	q.Store = db
	q.PollInterval = time.Hour
	q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error { log.add(j); return nil })
	startQueue(t, q)
	// The claim at start finds nothing; none is made after it.
	waitFor(t, 5*time.Second, "the first claim", func() bool { return db.claims.Load() == 1 })

	receipt := func() *hooks.Receipt {
		now := time.Now()
		req := &hooks.Request{Sender: hooks.SenderBubblehouse, Name: "SendEvent1", RequestID: "req-1", Urgency: hooks.UrgencyRegular,
			Header: http.Header{"X-Bh-Urgency": {"regular"}}, Body: []byte(`{"n":1}`), Status: 200, ReceivedAt: now}
		return &hooks.Receipt{Request: req, Job: hooks.NewJob(req, now)}
	}
	var hand func(bool)
	r := receipt()
	waitFor(t, 5*time.Second, "a waiting worker", func() bool { hand = q.Offer(r.Job); return hand != nil })
	if r.Job.State != hooks.JobRunning || r.Job.Attempts != 1 {
		t.Fatalf("offered job: %s after %d attempts, want running, 1", r.Job.State, r.Job.Attempts)
	}
	if again := q.Offer(receipt().Job); again != nil {
		t.Fatal("a second offer to the one waiting worker was taken")
	}
	// An offer whose job was not written gives the worker back.
	hand(false)
	if r.Job.State != hooks.JobAvailable || r.Job.Attempts != 0 || !r.Job.LockedUntil.IsZero() {
		t.Fatalf("job not written: %+v, want available as it was", r.Job)
	}
	r = receipt()
	if hand = q.Offer(r.Job); hand == nil {
		t.Fatal("the worker given back was not offered again")
	}
	if e, err := db.SaveReceipt(t.Context(), r); err != nil || e != nil {
		t.Fatalf("save: %+v, %v", e, err)
	}
	r.Job.RequestID, r.Job.Body = r.Request.RequestID, r.Request.Body
	hand(true)
	got := waitJobState(t, db.DB, r.Job.ID, hooks.JobDone)
	if got.Attempts != 1 || log.count(r.Job.ID) != 1 {
		t.Fatalf("handed job: %d attempts, %d runs; want 1 and 1", got.Attempts, log.count(r.Job.ID))
	}
	if n := db.claims.Load() - 1; n != 0 {
		t.Fatalf("%d claims for a handed-over job, want none", n)
	}
}

// An urgent job whose attempt failed comes due for its retry while the line
// holds regular jobs: it overtakes them, as a newly queued urgent job does,
// instead of waiting until half the line has drained.
func TestQueue_UrgentRetryOvertakesLine(t *testing.T) {
	db := mustOpenStore(t)
	urgent := mustEnqueue(t, db, "CreateDiscount4", hooks.UrgencyUrgent, time.Now())
	for range 30 {
		mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
	}
	var mu sync.Mutex
	var order []int64
	failed := false
	q := newQueue(db, 1)
	q.Prefetch = 16
	q.PollInterval = time.Hour // only a wake-up brings the retry in
	q.Policy = hooks.RetryPolicy{MaxAttempts: 3, Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond}
	q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
		mu.Lock()
		order = append(order, j.ID)
		first := j.ID == urgent.ID && !failed
		failed = failed || first
		mu.Unlock()
		if first {
			return errors.New("downstream down")
		}
		time.Sleep(50 * time.Millisecond)
		return nil
	})
	startQueue(t, q)
	waitJobState(t, db, urgent.ID, hooks.JobDone)
	mu.Lock()
	defer mu.Unlock()
	between := slices.Index(order[1:], urgent.ID)
	// The retry is due 20 ms after the failure, while the first regular
	// delivery (50 ms) runs: it goes next. One more is allowed for a slow
	// machine; waiting behind the line takes seven or more.
	if between < 0 || between > 2 {
		t.Fatalf("the urgent job's retry ran after %d regular deliveries: %v", between, order)
	}
}

// A job that waited half its lease in the line goes back to the queue; the
// feeder, whose last claim came back short, is told, and the job runs again
// at once rather than at the next poll.
func TestQueue_StaleReleaseWakesFeeder(t *testing.T) {
	db := &countingStore{DB: mustOpenStore(t)}
	first := mustEnqueue(t, db.DB, "SendEvent1", hooks.UrgencyUrgent, time.Now())
	second := mustEnqueue(t, db.DB, "SendEvent1", hooks.UrgencyRegular, time.Now())
	var log runLog
	var released atomic.Int64
	q := newQueue(db.DB, 1)
	q.Store = db
	q.Prefetch, q.Lease = 2, 2*time.Second
	q.PollInterval = 5 * time.Second
	q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
		log.add(j)
		if j.ID == first.ID {
			time.Sleep(1200 * time.Millisecond) // the second waits more than Lease/2 in the line
			released.Store(time.Now().UnixNano())
		}
		return nil
	})
	startQueue(t, q)
	waitFor(t, 10*time.Second, "the second job's run", func() bool { return log.count(second.ID) == 1 })
	if db.releases.Load() == 0 {
		t.Fatal("the second job was not released from the line")
	}
	if d := time.Since(time.Unix(0, released.Load())); d > time.Second {
		t.Fatalf("the released job ran %v after its release, with the worker idle", d)
	}
}

// crashableStore stands for a process's store handle: once crashed, the
// process is gone, and nothing it does reaches the store.
type crashableStore struct {
	*sqlite.DB
	crashed atomic.Bool
}

var errCrashed = errors.New("process crashed")

func (s *crashableStore) ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit, start int) ([]*hooks.Job, error) {
	if s.crashed.Load() {
		return nil, errCrashed
	}
	return s.DB.ClaimJobs(ctx, now, lease, limit, start)
}

func (s *crashableStore) ClaimPressing(ctx context.Context, now time.Time, lease time.Duration, limit, below, start int) ([]*hooks.Job, error) {
	if s.crashed.Load() {
		return nil, errCrashed
	}
	return s.DB.ClaimPressing(ctx, now, lease, limit, below, start)
}

func (s *crashableStore) RescueJobs(ctx context.Context, now time.Time, p hooks.RetryPolicy) (int64, error) {
	if s.crashed.Load() {
		return 0, errCrashed
	}
	return s.DB.RescueJobs(ctx, now, p)
}

func (s *crashableStore) CompleteJobs(ctx context.Context, jobs []*hooks.Job, now time.Time) error {
	if s.crashed.Load() {
		return errCrashed
	}
	return s.DB.CompleteJobs(ctx, jobs, now)
}

func (s *crashableStore) FailJob(ctx context.Context, j *hooks.Job, now, retryAt time.Time, dead bool, e string) error {
	if s.crashed.Load() {
		return errCrashed
	}
	return s.DB.FailJob(ctx, j, now, retryAt, dead, e)
}

func (s *crashableStore) ReleaseJobs(ctx context.Context, jobs []*hooks.Job) error {
	if s.crashed.Load() {
		return errCrashed
	}
	return s.DB.ReleaseJobs(ctx, jobs)
}

// A job that takes its process down dies after MaxAttempts crashes; the
// jobs claimed ahead into the line beside it, which never started, are not
// charged each crash, and outlive it.
func TestQueue_CrashLoopSparesJobsClaimedAhead(t *testing.T) {
	db := mustOpenStore(t)
	poison := mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now())
	var waiting []*hooks.Job
	for range 7 {
		waiting = append(waiting, mustEnqueue(t, db, "SendEvent1", hooks.UrgencyRegular, time.Now()))
	}
	policy := hooks.RetryPolicy{MaxAttempts: 3}
	hang := make(chan struct{}) // never closed: a crashed process never comes back
	for range 3 {
		s := &crashableStore{DB: db}
		q := newQueue(db, 1)
		q.Store = s
		q.Prefetch, q.Lease, q.PollInterval, q.Policy = 8, time.Second, 50*time.Millisecond, policy
		started := make(chan struct{})
		q.ActionFor = actionFor(func(_ context.Context, j *hooks.Job) error {
			if j.ID == poison.ID {
				s.crashed.Store(true) // the process dies running it
				close(started)
				<-hang
			}
			t.Errorf("job %d ran: the poison job goes first", j.ID)
			return nil
		})
		q.Start() // never stopped: the process died
		waitRecv(t, started, "the poison job to start")
		time.Sleep(1200 * time.Millisecond) // its lease, and the line's, expire
	}
	// The next process rescues what the last one held.
	if _, err := db.RescueJobs(t.Context(), time.Now(), policy); err != nil {
		t.Fatal(err)
	}
	if got := mustFindJob(t, db, poison.ID); got.State != hooks.JobDead || got.Attempts != 3 {
		t.Fatalf("poison job: %s after %d attempts, want dead after 3", got.State, got.Attempts)
	}
	for _, j := range waiting {
		if got := mustFindJob(t, db, j.ID); got.State != hooks.JobAvailable || got.Attempts >= policy.MaxAttempts-1 {
			t.Errorf("job %d, claimed ahead through 3 crashes: %s after %d attempts, want available", j.ID, got.State, got.Attempts)
		}
	}
}

// completeCounter records the size of every CompleteJobs call.
type completeCounter struct {
	*sqlite.DB
	mu    sync.Mutex
	sizes []int
}

func (s *completeCounter) CompleteJobs(ctx context.Context, jobs []*hooks.Job, now time.Time) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(jobs))
	s.mu.Unlock()
	return s.DB.CompleteJobs(ctx, jobs, now)
}

// Succeeded jobs are marked done together, a bounded number per write, and
// none is left undone by Stop.
func TestQueue_CompletionsShareWrites(t *testing.T) {
	for _, n := range []int{40, 600} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			db := mustOpenStore(t)
			cs := &completeCounter{DB: db}
			q := newQueue(db, 4)
			q.Store = cs
			var ran atomic.Int32
			q.ActionFor = actionFor(func(context.Context, *hooks.Job) error { ran.Add(1); return nil })
			now := time.Now()
			for i := range n {
				mustEnqueue(t, db, fmt.Sprintf("Hook%d", i), hooks.UrgencyRegular, now)
			}
			stop := startQueue(t, q)
			waitFor(t, 20*time.Second, "every job run", func() bool { return ran.Load() >= int32(n) })
			mustStop(t, stop, 10*time.Second)

			done := mustFindJobsIn(t, db, hooks.JobDone)
			if len(done) != n {
				t.Fatalf("done jobs: got %d, want %d (ran %d)", len(done), n, ran.Load())
			}
			cs.mu.Lock()
			defer cs.mu.Unlock()
			total := 0
			for _, k := range cs.sizes {
				if k == 0 || k > 256 {
					t.Errorf("a write marked %d jobs done, want 1 to 256", k)
				}
				total += k
			}
			// The completer lingers for the jobs that follow the first:
			// without the linger, 40 jobs took 3-4 writes and 600 took 184.
			if most := 2 + n/100; total != n || len(cs.sizes) > most {
				t.Fatalf("%d writes marked %d jobs done (%v); want %d jobs in at most %d writes", len(cs.sizes), total, cs.sizes, n, most)
			}
		})
	}
}
