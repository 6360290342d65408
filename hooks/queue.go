package hooks

import (
	"container/heap"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// JobStore is what the worker pool needs from the store.
type JobStore interface {
	// ClaimJobs leases up to limit available jobs whose time has come until
	// now+lease, most pressing first. The first start of them go to
	// workers waiting for them: their attempts count. The others are
	// claimed ahead, into the line, where they may still wait when the
	// process dies: their rescue gives the attempt back, once.
	ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit, start int) ([]*Job, error)
	// ClaimPressing is ClaimJobs for jobs more pressing than priority
	// below only.
	ClaimPressing(ctx context.Context, now time.Time, lease time.Duration, limit, below, start int) ([]*Job, error)
	// RescueJobs takes back running jobs whose lease expired: available
	// again, or dead under the policy, the interrupted attempt recorded.
	// A job claimed ahead is given back with its attempt uncounted, and
	// its next claim counts whatever it is for, so that a job that kills
	// its process from the line cannot crash-loop forever.
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
//
// A feeder claims jobs in batches ahead of the workers, into a line in
// memory kept in queue order, so that a worker that finishes a delivery
// takes the next one at once instead of waiting for a claim, and claims
// and completions each cost one transaction for many jobs. The line holds
// at most Prefetch jobs and is topped up once half of it is free. An urgent
// job queued while the line holds regular ones (Queued, or a replica's
// announcement) is claimed ahead of them at once, and the least pressing
// beyond Prefetch go back: urgent stays first. Jobs in the line are leased
// ("running" in the store) but not started; a job that waited there for
// half its lease goes back to the queue instead of running on what is left
// of it, and the line is shortened (to Workers at the least) so that slow
// deliveries do not keep leases idle; it grows back, Workers at a time,
// when workers find it empty.
//
// When a worker is idle and the line is empty, Offer lets the request
// being accepted lease its job in its own transaction and hand it over in
// memory once committed: at a low rate a delivery then costs no claim.
type Queue struct {
	Store JobStore
	// ActionFor picks the action for a job; nil means StoreAction for all.
	ActionFor func(*Job) Action
	Workers   int
	// Prefetch bounds how many claimed jobs wait in memory for a worker;
	// 0 means DefaultPrefetch per worker.
	Prefetch int
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
	wake      chan struct{}      // a job was queued
	freed     chan struct{}      // a worker took a job from the line
	completed chan *Job          // jobs whose action succeeded
	cancel    context.CancelFunc // cancels running actions
	stop      chan struct{}
	wg        sync.WaitGroup
	feeder    sync.WaitGroup
	completer sync.WaitGroup
	stopOnce  sync.Once
	busy      atomic.Int64 // workers running an attempt
	pressing  atomic.Int64 // the most pressing priority queued since the feeder last looked

	mu       sync.Mutex
	ready    jobLine    // claimed, not started, most pressing first
	waiting  int        // workers waiting for a job
	offered  int        // jobs offered to waiting workers, not yet handed over
	stopping bool       // Stop was called: no job is started any more
	hasJob   *sync.Cond // signalled when ready grows or stopping is set
	lineMax  int        // the line's length now: Prefetch, less after stale jobs
	claiming int        // the priority a pressing claim is fetching; NoPriority
	pressMu  sync.Mutex // held by each claim into the line: a pressing claim waits for one in flight
}

// DefaultPrefetch is how many claimed jobs per worker the line holds by
// default: claims and their transactions of 4 jobs per worker or more.
const DefaultPrefetch = 8

// Busy is how many workers are running an attempt now, for metrics.
func (q *Queue) Busy() int { return int(q.busy.Load()) }

// leaseMargin is how long before its lease expires an attempt is cut off.
const leaseMargin = 5 * time.Second

// completeBatch bounds how many succeeded jobs one statement marks done,
// and completeLinger how long the first of them waits for others: at a low
// rate completions share a transaction instead of each paying for its own
// commit. A crash in that time costs a second delivery, never a lost one.
const (
	completeBatch  = 256
	completeLinger = 50 * time.Millisecond
)

// Notify tells the pool that a job was queued. It never blocks.
func (q *Queue) Notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Queued tells the pool that a job of the given priority was queued: it
// wakes the pool like Notify, and when the line holds jobs less pressing
// than it, the pool claims it ahead of them and gives back the least
// pressing of those beyond Prefetch, so that a regular job in the line
// never delays an urgent one queued after it.
func (q *Queue) Queued(priority int) {
	for {
		p := q.pressing.Load()
		if int64(priority) >= p || q.pressing.CompareAndSwap(p, int64(priority)) {
			break
		}
	}
	q.Notify()
}

// Start launches the workers. Call Stop to drain them.
func (q *Queue) Start() {
	if q.Workers <= 0 {
		q.Workers = 8
	}
	if q.Prefetch <= 0 {
		q.Prefetch = DefaultPrefetch * q.Workers
	}
	q.lineMax = q.Prefetch
	q.claiming = NoPriority
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
	q.pressing.Store(NoPriority)
	q.wake = make(chan struct{}, 1)
	q.freed = make(chan struct{}, 1)
	q.hasJob = sync.NewCond(&q.mu)
	q.completed = make(chan *Job, completeBatch)
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
// then cancels them; jobs left unfinished, and those claimed but not
// started, return to the queue.
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
	q.mu.Lock()
	q.stopping = true
	left := q.ready.take()
	q.hasJob.Broadcast()
	q.mu.Unlock()
	q.release(left)
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

// Offer reserves a waiting worker for j, a job about to be written with
// the request that queues it, when a worker is waiting and no claimed job
// is: j is then marked leased to this pool (running, its attempt counted,
// locked until now+Lease), so that the store writes it claimed, and Offer
// returns the function to call once the write's outcome is known. With
// true the job goes to the worker at once, without a claim; with false
// (nothing was written, or j was not: a duplicate) j is made available
// again, as it was. Offer returns nil, and leaves j alone, when no worker
// is free or j is not available now.
func (q *Queue) Offer(j *Job) (hand func(written bool)) {
	if j == nil || j.State != JobAvailable || q.hasJob == nil {
		return nil
	}
	now := q.Now()
	if j.ScheduledAt.After(now) {
		return nil
	}
	q.mu.Lock()
	free := !q.stopping && q.ready.Len() == 0 && q.waiting > q.offered
	if free {
		q.offered++
	}
	q.mu.Unlock()
	if !free {
		return nil
	}
	j.State, j.Attempts, j.LockedUntil = JobRunning, j.Attempts+1, now.Add(q.Lease)
	var once sync.Once
	return func(written bool) {
		once.Do(func() { q.hand(j, written) })
	}
}

// hand ends an offer: a written job joins the line; one not written is
// made available again.
func (q *Queue) hand(j *Job, written bool) {
	q.mu.Lock()
	q.offered--
	stopping := q.stopping
	if written && !stopping {
		q.ready.push(j)
		q.hasJob.Signal()
	}
	q.mu.Unlock()
	switch {
	case !written:
		j.State, j.Attempts, j.LockedUntil = JobAvailable, j.Attempts-1, time.Time{}
	case stopping:
		q.release([]*Job{j})
	}
}

// complete marks succeeded jobs done, many per statement. A crash before
// that costs a second delivery of those jobs, never a lost one.
func (q *Queue) complete() {
	defer q.completer.Done()
	batch := make([]*Job, 0, completeBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for j := range q.completed {
		batch = append(batch[:0], j)
		linger.Reset(completeLinger)
	fill:
		for len(batch) < completeBatch {
			select {
			case j, ok := <-q.completed:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			case <-linger.C:
				break fill
			case <-q.stop:
				// Stopping: take what is there now, do not linger.
				for len(batch) < completeBatch {
					select {
					case j, ok := <-q.completed:
						if !ok {
							break fill
						}
						batch = append(batch, j)
					default:
						break fill
					}
				}
				break fill
			}
		}
		linger.Stop()
		if err := q.Store.CompleteJobs(context.Background(), batch, q.Now()); err != nil {
			// Delivered, but not marked done: they are delivered again once
			// their lease ends.
			q.Logger.Error("delivered jobs could not be marked done; they will be delivered again", "count", len(batch),
				"jobs", jobIDs(batch), "err", err)
		}
	}
}

// room is how many more jobs the line can take now.
func (q *Queue) room() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lineMax - q.ready.Len() - q.offered
}

// threshold is how many places must be free in the line for a claim.
func (q *Queue) threshold() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(1, (q.lineMax+1)/2)
}

// feed claims jobs in batches into the line, once half of it is free, and
// rescues jobs whose lease expired.
func (q *Queue) feed() {
	defer q.feeder.Done()
	ticker := time.NewTicker(q.PollInterval)
	defer ticker.Stop()
	q.rescue()
	lastRescue := time.Now()
	// more is whether the last claim filled the room it had: more jobs
	// may be waiting, so a place freed in the line is worth a claim. Once
	// a claim came back short, only a newly queued job (or the poll) is.
	more := true
	for {
		threshold := q.threshold()
		if q.pressing.Load() < NoPriority {
			q.claimPressing()
		}
		if room := q.room(); room >= threshold {
			batch, stopping, err := q.claimLine(room)
			if stopping {
				q.release(batch)
				return
			}
			if time.Since(lastRescue) > q.PollInterval {
				q.rescue()
				lastRescue = time.Now()
			}
			if more = len(batch) == room; more && err == nil {
				continue
			}
		}
		freed := q.freed
		if !more {
			freed = nil
		}
		select {
		case <-q.stop:
			return
		case <-q.wake:
			more = true
		case <-freed:
		case <-ticker.C:
			more = true // scheduled retries come due, leases expire
			q.rescue()
			lastRescue = time.Now()
		}
	}
}

// idle is how many workers have nothing to run, neither a job nor one in
// the line or offered to them: the jobs a claim hands them start at once.
func (q *Queue) idle() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(0, q.Workers-int(q.busy.Load())-q.ready.Len()-q.offered)
}

// claimLine claims up to room jobs into the line, and reports whether the
// pool is stopping, in which case the claimed jobs are not in the line and
// must go back. A worker's pressing claim waits until they are in the
// line: this claim may have taken the pressing job that worker wants, and
// the worker must not start a less pressing one meanwhile.
func (q *Queue) claimLine(room int) (batch []*Job, stopping bool, err error) {
	q.pressMu.Lock()
	defer q.pressMu.Unlock()
	batch, err = q.Store.ClaimJobs(context.Background(), q.Now(), q.Lease, room, q.idle())
	if err != nil {
		q.Logger.Error("claim jobs", "err", err)
	}
	if len(batch) == 0 {
		return batch, false, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopping {
		return batch, true, err
	}
	if q.ready.Len() == 0 && q.waiting > 0 {
		// Workers waited for this claim: a longer line.
		q.lineMax = min(q.Prefetch, q.lineMax+q.Workers)
	}
	for _, j := range batch {
		q.ready.push(j)
	}
	q.hasJob.Broadcast()
	return batch, false, err
}

// claimPressing claims, ahead of the line, up to a line's length of jobs
// more pressing than its least pressing one, when the job announced by
// Queued since the last look may be such a job; the line's least pressing
// jobs beyond its length go back to the queue.
func (q *Queue) claimPressing() {
	q.pressMu.Lock()
	defer q.pressMu.Unlock()
	q.mu.Lock()
	// Taken under mu, as claiming is set: a worker sees the pressing job
	// either still announced or being claimed, never neither.
	p := int(q.pressing.Swap(NoPriority))
	worst, limit := q.ready.worst(), q.lineMax
	if p >= NoPriority || worst <= p {
		q.mu.Unlock()
		return // nothing announced, or the line is empty or holds nothing less pressing
	}
	// Workers take nothing less pressing than p until the claim is in.
	q.claiming = p
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.claiming = NoPriority
		q.hasJob.Broadcast()
		q.mu.Unlock()
	}()
	batch, err := q.Store.ClaimPressing(context.Background(), q.Now(), q.Lease, limit, worst, q.idle())
	if err != nil {
		q.Logger.Error("claim jobs", "err", err)
	}
	if len(batch) == 0 {
		return
	}
	if len(batch) == limit {
		q.Queued(p) // there may be more
	}
	var back []*Job
	q.mu.Lock()
	if q.stopping {
		back = batch
	} else {
		for _, j := range batch {
			q.ready.push(j)
		}
		for q.ready.Len() > 0 && q.ready.Len()+q.offered > q.lineMax {
			back = append(back, q.ready.removeWorst())
		}
		q.hasJob.Broadcast()
	}
	q.mu.Unlock()
	q.release(back)
}

func (q *Queue) rescue() {
	if n, err := q.Store.RescueJobs(context.Background(), q.Now(), q.Policy); err != nil {
		q.Logger.Error("rescue jobs", "err", err)
	} else if n > 0 {
		q.Logger.Warn("rescued jobs whose lease expired", "count", n)
		// Any of them may be more pressing than the line: claim past it.
		q.Queued(0)
	}
}

func (q *Queue) release(jobs []*Job) {
	if len(jobs) == 0 {
		return
	}
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

// next waits for the most pressing job in the line; nil once stopping.
func (q *Queue) next() *Job {
	q.mu.Lock()
	for {
		q.waiting++
		for !q.stopping && (q.ready.Len() == 0 || q.ready[0].Priority > q.claiming) {
			q.hasJob.Wait()
		}
		q.waiting--
		if q.stopping {
			q.mu.Unlock()
			return nil
		}
		// A more pressing job was queued and the feeder has not claimed
		// it yet: claim it now, before taking a less pressing one.
		if p := int(q.pressing.Load()); p < q.ready[0].Priority {
			q.mu.Unlock()
			q.claimPressing()
			q.mu.Lock()
			continue
		}
		break
	}
	j := q.ready.pop()
	q.mu.Unlock()
	select { // a place is free in the line
	case q.freed <- struct{}{}:
	default:
	}
	return j
}

func (q *Queue) work(ctx context.Context) {
	defer q.wg.Done()
	for {
		j := q.next()
		if j == nil {
			return
		}
		if j.LockedUntil.Sub(q.Now()) < q.Lease/2 {
			// It waited in the line for half its lease (the workers were
			// held up by slow actions): back to the queue, to be claimed
			// again with a whole lease, and a shorter line.
			q.mu.Lock()
			q.lineMax = max(min(q.Workers, q.Prefetch), q.lineMax/2)
			q.mu.Unlock()
			q.release([]*Job{j})
			// The feeder may have stopped claiming (its last claim came
			// back short): tell it the job is there again, as pressing
			// as it was, so that it does not wait for the next poll.
			q.Queued(j.Priority)
			continue
		}
		q.run(ctx, j)
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
		// Wake the pool when the retry is due rather than at the next
		// poll, and with its priority, so that an urgent retry is claimed
		// past a line of regular jobs instead of waiting behind it.
		p := j.Priority
		time.AfterFunc(res.RetryAt.Sub(q.Now()), func() { q.Queued(p) })
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

// jobLine is the line of claimed jobs, a heap in queue order: priority,
// then scheduled time, then ID.
type jobLine []*Job

func (l jobLine) Len() int           { return len(l) }
func (l jobLine) Less(a, b int) bool { return l[a].Before(l[b]) }
func (l jobLine) Swap(a, b int)      { l[a], l[b] = l[b], l[a] }
func (l *jobLine) Push(x any)        { *l = append(*l, x.(*Job)) }
func (l *jobLine) Pop() any {
	old := *l
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*l = old[:len(old)-1]
	return j
}

func (l *jobLine) push(j *Job) { heap.Push(l, j) }
func (l *jobLine) pop() *Job   { return heap.Pop(l).(*Job) }

// worst is the least pressing job's priority; -1 for an empty line, which
// holds nothing less pressing than any job.
func (l jobLine) worst() int {
	w := -1
	for _, j := range l {
		w = max(w, j.Priority)
	}
	return w
}

// removeWorst takes the least pressing job (the last in queue order) out
// of the line, which must not be empty.
func (l *jobLine) removeWorst() *Job {
	w := 0
	for i := range *l {
		if l.Less(w, i) {
			w = i
		}
	}
	return heap.Remove(l, w).(*Job)
}

// take empties the line and returns what was in it.
func (l *jobLine) take() []*Job {
	jobs := []*Job(*l)
	*l = nil
	return jobs
}
