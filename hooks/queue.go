package hooks

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// JobStore is what the worker pool needs from the store.
type JobStore interface {
	// ClaimJobs leases up to limit available jobs whose time has come until
	// now+lease, most pressing first.
	ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*Job, error)
	// RescueJobs takes back running jobs whose lease expired: available
	// again, or dead under the policy, the interrupted attempt recorded.
	RescueJobs(ctx context.Context, now time.Time, policy RetryPolicy) (int64, error)
	// CompleteJobs marks running jobs done; like FailJob and ReleaseJobs it
	// leaves alone a job that another worker claimed since.
	CompleteJobs(ctx context.Context, jobs []*Job, now time.Time) error
	// FailJob records a failed attempt: the job runs again at retryAt, or is
	// dead when dead is true.
	FailJob(ctx context.Context, j *Job, now, retryAt time.Time, dead bool, errText string) error
	// ReleaseJobs returns leased jobs that were never started to the queue.
	ReleaseJobs(ctx context.Context, jobs []*Job) error
}

// Action hands a job to the integrator's code. A nil error is success, and
// output is what the integrator's code answered (a JSON object, or nil):
// inline hooks answer the sender with it. Any error is a failed attempt,
// retried under the queue's RetryPolicy.
//
// forward, exec and store implement it; a Go program can plug in its own
// with ActionFunc (see README, "Your own action").
type Action interface {
	Run(ctx context.Context, j *Job) (output []byte, err error)
}

// ActionFunc adapts a function to the Action interface.
type ActionFunc func(ctx context.Context, j *Job) ([]byte, error)

// Run calls f.
func (f ActionFunc) Run(ctx context.Context, j *Job) ([]byte, error) { return f(ctx, j) }

// StoreAction keeps a job in the store only: the request record is the
// delivery, read back by the integrator. It always succeeds.
var StoreAction Action = ActionFunc(func(context.Context, *Job) ([]byte, error) { return nil, nil })

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
	// Observe, when set, is told of every attempt once it is recorded
	// (Executor.Observe).
	Observe func(*Job, AttemptResult)

	exec      *Executor
	wake      chan struct{}
	jobs      chan *Job
	idle      chan struct{}      // one token per worker busy or about to be
	completed chan *Job          // jobs whose action succeeded
	cancel    context.CancelFunc // cancels running actions
	stop      chan struct{}
	wg        sync.WaitGroup
	feeder    sync.WaitGroup
	completer sync.WaitGroup
	stopOnce  sync.Once
	busy      atomic.Int64 // workers running an attempt
}

// Busy is how many workers are running an attempt now, for metrics.
func (q *Queue) Busy() int { return int(q.busy.Load()) }

// leaseMargin is how long before its lease expires an attempt is cut off.
const leaseMargin = 5 * time.Second

// claimBatch bounds how many jobs one claim leases: enough that claiming
// costs little per job, few enough that an urgent job arriving just after a
// claim waits behind at most this many.
const claimBatch = 32

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
	q.Policy = q.Policy.withDefaults()
	q.wake = make(chan struct{}, 1)
	q.jobs = make(chan *Job)
	q.idle = make(chan struct{}, q.Workers)
	q.completed = make(chan *Job, 4*claimBatch)
	q.stop = make(chan struct{})
	q.exec = &Executor{Store: q.Store, Policy: q.Policy, Lease: q.Lease, Now: q.Now,
		Complete: func(j *Job) { q.completed <- j }, Observe: q.Observe}
	q.completer.Add(1)
	go q.complete()
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
	q.stopOnce.Do(func() { q.stopAll(ctx) })
	return nil
}

func (q *Queue) stopAll(ctx context.Context) {
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
	close(q.completed)
	q.completer.Wait()
}

// complete marks succeeded jobs done, many per statement. A crash before
// that costs a second delivery of those jobs, never a lost one.
func (q *Queue) complete() {
	defer q.completer.Done()
	batch := make([]*Job, 0, cap(q.completed))
	for j := range q.completed {
		batch = append(batch[:0], j)
	drain:
		for len(batch) < cap(batch) {
			select {
			case j, ok := <-q.completed:
				if !ok {
					break drain
				}
				batch = append(batch, j)
			default:
				break drain
			}
		}
		if err := q.Store.CompleteJobs(context.Background(), batch, q.Now()); err != nil {
			// Delivered, but not marked done: they are delivered again once
			// their lease ends.
			q.Logger.Error("delivered jobs could not be marked done; they will be delivered again", "count", len(batch),
				"jobs", jobIDs(batch), "err", err)
		}
	}
}

// feed claims jobs in batches and hands them to idle workers. Claiming a
// batch in one statement keeps the queue's write cost per job low.
func (q *Queue) feed() {
	defer q.feeder.Done()
	ticker := time.NewTicker(q.PollInterval)
	defer ticker.Stop()
	q.rescue()
	lastRescue := time.Now()
	for {
		// Claim only as many jobs as there are idle workers, so that an
		// urgent job queued a moment later is not stuck behind regular
		// ones this pool already holds.
		select {
		case q.idle <- struct{}{}:
		case <-q.stop:
			return
		}
		free := 1
	more:
		for free < min(q.Workers, claimBatch) {
			select {
			case q.idle <- struct{}{}:
				free++
			default:
				break more
			}
		}
		batch, err := q.Store.ClaimJobs(context.Background(), q.Now(), q.Lease, free)
		if err != nil {
			q.Logger.Error("claim jobs", "err", err)
		}
		for range free - len(batch) {
			<-q.idle
		}
		for i, j := range batch {
			select {
			case q.jobs <- j:
			case <-q.stop:
				q.release(batch[i:])
				return
			}
		}
		if len(batch) > 0 {
			if time.Since(lastRescue) > q.PollInterval {
				q.rescue()
				lastRescue = time.Now()
			}
			continue // more may be waiting
		}
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-ticker.C:
			q.rescue()
			lastRescue = time.Now()
		}
	}
}

func (q *Queue) rescue() {
	if n, err := q.Store.RescueJobs(context.Background(), q.Now(), q.Policy); err != nil {
		q.Logger.Error("rescue jobs", "err", err)
	} else if n > 0 {
		q.Logger.Warn("rescued jobs whose lease expired", "count", n)
	}
}

func (q *Queue) release(jobs []*Job) {
	if err := q.Store.ReleaseJobs(context.Background(), jobs); err != nil {
		q.Logger.Error("release jobs; they run again once their lease ends", "jobs", jobIDs(jobs), "err", err)
	}
}

// jobIDs lists jobs' IDs for a log line, at most 20 of them.
func jobIDs(jobs []*Job) []int64 {
	ids := make([]int64, 0, min(len(jobs), 20))
	for _, j := range jobs[:min(len(jobs), 20)] {
		ids = append(ids, j.ID)
	}
	return ids
}

func (q *Queue) work(ctx context.Context) {
	defer q.wg.Done()
	for j := range q.jobs {
		q.run(ctx, j)
		<-q.idle
	}
}

func (q *Queue) run(ctx context.Context, j *Job) {
	var action Action
	if q.ActionFor != nil {
		action = q.ActionFor(j)
	}
	q.busy.Add(1)
	res, err := q.exec.Run(ctx, action, j)
	q.busy.Add(-1)
	// The job, event (request record) and attempt IDs are what "hookbay
	// events show EVENT" and "hookbay jobs retry JOB" take.
	if err != nil {
		q.Logger.Error("attempt could not be recorded", "job", j.ID, "event", j.RequestRef, "attempt", j.Attempts,
			"sender", j.Sender, "name", j.Name, "outcome", res.Outcome, "err", err)
	}
	switch res.Outcome {
	case OutcomeOK:
		if res.Err != nil {
			q.Logger.Warn("job output over the limit, ignored", "job", j.ID, "event", j.RequestRef, "attempt", j.Attempts,
				"sender", j.Sender, "name", j.Name, "err", res.Err)
		}
	case OutcomeFailed:
		q.Logger.Warn("delivery attempt failed; retried", "job", j.ID, "event", j.RequestRef, "attempt", j.Attempts,
			"sender", j.Sender, "name", j.Name, "retry_at", res.RetryAt, "duration", res.Duration, "err", res.Err)
	case OutcomeDead:
		q.Logger.Error("delivery attempt failed; the job is dead (hookbay jobs retry JOB queues it again)", "job", j.ID,
			"event", j.RequestRef, "attempt", j.Attempts, "sender", j.Sender, "name", j.Name, "duration", res.Duration, "err", res.Err)
	}
	if res.Outcome == OutcomeFailed && err == nil {
		// Wake the pool when the retry is due rather than at the next poll.
		time.AfterFunc(res.RetryAt.Sub(q.Now()), q.Notify)
	}
}

// maxErrorText bounds the error text recorded for an attempt.
const maxErrorText = 2000

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
