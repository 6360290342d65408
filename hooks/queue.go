package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// JobStore is what the worker pool needs from the store.
type JobStore interface {
	// ClaimJobs leases up to limit runnable jobs until now+lease, most
	// pressing first: available jobs whose time has come and running jobs
	// whose lease has expired.
	ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*Job, error)
	// CompleteJob marks a running job done.
	CompleteJob(ctx context.Context, j *Job, now time.Time) error
	// FailJob records a failed attempt: the job runs again at retryAt, or is
	// dead when dead is true.
	FailJob(ctx context.Context, j *Job, now, retryAt time.Time, dead bool, errText string) error
	// ReleaseJobs returns leased jobs that were never started to the queue.
	ReleaseJobs(ctx context.Context, ids []int64) error
}

// Action hands a job to the integrator's code. A nil error is success; any
// error is a failed attempt, retried under the queue's RetryPolicy.
type Action interface {
	Run(ctx context.Context, j *Job) error
}

// ActionFunc adapts a function to the Action interface.
type ActionFunc func(ctx context.Context, j *Job) error

// Run calls f.
func (f ActionFunc) Run(ctx context.Context, j *Job) error { return f(ctx, j) }

// StoreAction keeps a job in the store only: the request record is the
// delivery, read back by the integrator. It always succeeds.
var StoreAction Action = ActionFunc(func(context.Context, *Job) error { return nil })

// Queue is the worker pool that drains jobs, urgent before regular.
type Queue struct {
	Store JobStore
	// ActionFor picks the action for a job; nil means StoreAction for all.
	ActionFor func(*Job) Action
	Workers   int
	// Lease is how long a claimed job is held before another process may
	// take it; it must exceed the longest action timeout.
	Lease time.Duration
	// PollInterval bounds how long a scheduled retry or an expired lease
	// waits to be noticed; new jobs wake the pool through Notify.
	PollInterval time.Duration
	Policy       RetryPolicy
	Now          func() time.Time
	Logger       *slog.Logger

	wake   chan struct{}
	jobs   chan *Job
	cancel context.CancelFunc // cancels running actions
	stop   chan struct{}
	wg     sync.WaitGroup
	feeder sync.WaitGroup
}

// Notify tells the pool that a job was queued. It never blocks.
func (q *Queue) Notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Start launches the workers. Call Stop to drain them.
func (q *Queue) Start() {
	if q.Workers <= 0 {
		q.Workers = 8
	}
	if q.Lease <= 0 {
		q.Lease = 5 * time.Minute
	}
	if q.PollInterval <= 0 {
		q.PollInterval = time.Second
	}
	if q.Now == nil {
		q.Now = time.Now
	}
	if q.Logger == nil {
		q.Logger = slog.Default()
	}
	if q.Policy == (RetryPolicy{}) {
		q.Policy = DefaultRetryPolicy
	}
	q.wake = make(chan struct{}, 1)
	q.jobs = make(chan *Job)
	q.stop = make(chan struct{})
	var ctx context.Context
	ctx, q.cancel = context.WithCancel(context.Background())
	for i := 0; i < q.Workers; i++ {
		q.wg.Add(1)
		go q.work(ctx)
	}
	q.feeder.Add(1)
	go q.feed()
}

// Stop stops claiming jobs, lets running actions finish until ctx is done,
// then cancels them; jobs left unfinished return to the queue.
func (q *Queue) Stop(ctx context.Context) error {
	if q.stop == nil {
		return nil
	}
	close(q.stop)
	q.feeder.Wait()
	close(q.jobs)
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.cancel() // actions see a cancelled context; their jobs are released
		<-done
	}
	q.cancel()
	return nil
}

// feed claims jobs in batches and hands them to idle workers. Claiming a
// batch in one statement keeps the queue's write cost per job low.
func (q *Queue) feed() {
	defer q.feeder.Done()
	ticker := time.NewTicker(q.PollInterval)
	defer ticker.Stop()
	for {
		batch, err := q.Store.ClaimJobs(context.Background(), q.Now(), q.Lease, q.Workers)
		if err != nil {
			q.Logger.Error("claim jobs", "err", err)
		}
		for i, j := range batch {
			select {
			case q.jobs <- j:
			case <-q.stop:
				q.release(batch[i:])
				return
			}
		}
		if len(batch) == q.Workers {
			continue // more may be waiting
		}
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-ticker.C:
		}
	}
}

func (q *Queue) release(jobs []*Job) {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	if err := q.Store.ReleaseJobs(context.Background(), ids); err != nil {
		q.Logger.Error("release jobs", "err", err)
	}
}

func (q *Queue) work(ctx context.Context) {
	defer q.wg.Done()
	for j := range q.jobs {
		q.run(ctx, j)
	}
}

func (q *Queue) run(ctx context.Context, j *Job) {
	action := StoreAction
	if q.ActionFor != nil {
		if a := q.ActionFor(j); a != nil {
			action = a
		}
	}
	err := runSafely(ctx, action, j)
	now := q.Now()
	// Book-keeping must happen even when the pool is being cancelled.
	bg := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		if err := q.Store.CompleteJob(bg, j, now); err != nil {
			q.Logger.Error("complete job", "job", j.ID, "err", err)
		}
	case ctx.Err() != nil:
		// Shutdown interrupted the action: not the action's failure.
		q.release([]*Job{j})
	default:
		dead := q.Policy.Dead(j, now)
		retryAt := q.Policy.NextRetryAt(now, j.Attempts)
		q.Logger.Warn("job failed", "job", j.ID, "name", j.Name, "attempt", j.Attempts, "dead", dead, "err", err)
		if err := q.Store.FailJob(bg, j, now, retryAt, dead, truncate(err.Error(), 2000)); err != nil {
			q.Logger.Error("fail job", "job", j.ID, "err", err)
		}
	}
}

// runSafely runs an action, turning a panic into an error so that one bad
// job cannot take the pool down.
func runSafely(ctx context.Context, a Action, j *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("action panicked: %v", r)
		}
	}()
	if err := a.Run(ctx, j); err != nil {
		return fmt.Errorf("run %s job %d: %w", j.Name, j.ID, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ErrStopped is returned by operations attempted after shutdown began.
var ErrStopped = errors.New("stopped")
