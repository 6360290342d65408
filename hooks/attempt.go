package hooks

import (
	"context"
	"fmt"
	"time"
)

// Executor runs one attempt of a leased job and records how it ended. The
// queue's workers and a replay run every attempt through it, so that panic
// recovery, the deadline, the output cap, the reading of the action's
// error and the record cannot differ between them.
type Executor struct {
	// Store records the outcome.
	Store JobStore
	// Policy decides, after a failure, when the job runs again or that it
	// is dead; its zero fields take DefaultRetryPolicy's values.
	Policy RetryPolicy
	// Lease is the lease jobs are claimed with: an attempt is cut off
	// min(5 s, Lease/4) before the job's lease (LockedUntil) ends, so that
	// no other process takes the job while it still runs.
	Lease time.Duration
	// MaxOutput caps what is kept of an action's answer; 0 means
	// DefaultMaxOutput. A longer answer is dropped, and the attempt read
	// as an OutputTooLargeError.
	MaxOutput int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Complete, when set, marks a succeeded job done in its place (the
	// queue completes many jobs per statement); nil means
	// Store.CompleteJobs for the one job.
	Complete func(*Job)
	// Observe, when set, is told of every attempt once it is recorded
	// (and when recording failed): the place for metrics and live views.
	Observe func(*Job, AttemptResult)
}

// AttemptResult is how one attempt of a job ended.
type AttemptResult struct {
	// Outcome is OutcomeOK, OutcomeFailed, OutcomeDead, OutcomeInterrupted
	// (the caller's context ended first: the job went back to the queue)
	// or AttemptNotStarted (the job went back, no attempt counted).
	Outcome Outcome
	// Output is what the action answered; nil when it was over the cap.
	Output []byte
	// Err is the action's error. It is nil on success, and set along with
	// OutcomeOK when the work was done but the answer was over the cap.
	Err error
	// RetryAt is when a job whose attempt failed runs again.
	RetryAt time.Time
	// Duration is how long the action ran.
	Duration time.Duration
}

// Run runs action (nil means StoreAction) for j, which the caller leased
// until j.LockedUntil, and records the outcome: done, failed and due again
// under the Policy, dead, or back to the queue. The error is not the
// action's (see AttemptResult.Err): it says the outcome could not be
// recorded.
func (x *Executor) Run(ctx context.Context, action Action, j *Job) (AttemptResult, error) {
	if action == nil {
		action = StoreAction
	}
	now := time.Now
	if x.Now != nil {
		now = x.Now
	}
	maxOut := x.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	j.AttemptStarted = now()
	// Every attempt ends before its lease does, whatever the action (a
	// wait for an exec slot, a Go action without a timeout): a job is
	// never run by two workers at once.
	actx, cancel := context.WithDeadline(ctx, j.LockedUntil.Add(-min(leaseMargin, x.Lease/4)))
	out, err := runSafely(actx, action, j)
	cancel()
	if err == nil && int64(len(out)) > maxOut {
		out, err = nil, &OutputTooLargeError{Max: maxOut}
	}
	end := now()
	j.AttemptDuration = end.Sub(j.AttemptStarted)
	res := AttemptResult{Outcome: Classify(err), Output: out, Err: err, Duration: j.AttemptDuration}
	if res.Outcome == OutcomeOK && err != nil {
		res.Output = nil
	}
	// The record is kept even when the caller is being cancelled.
	bg := context.WithoutCancel(ctx)
	var rerr error
	switch {
	case res.Outcome == OutcomeOK:
		if x.Complete != nil {
			x.Complete(j)
		} else {
			rerr = x.Store.CompleteJobs(bg, []*Job{j}, end)
		}
	case ctx.Err() != nil:
		// The caller stopped the attempt (shutdown, Ctrl-C): not the
		// action's failure. The job goes back, the attempt recorded as
		// interrupted.
		res.Outcome = OutcomeInterrupted
		rerr = x.Store.ReleaseJobs(bg, []*Job{j})
	case res.Outcome == AttemptNotStarted:
		// It waited for a process slot until its deadline and never ran:
		// back to the queue, without counting an attempt.
		j.AttemptStarted = time.Time{}
		rerr = x.Store.ReleaseJobs(bg, []*Job{j})
	default:
		var dead bool
		dead, res.RetryAt, rerr = x.Policy.withDefaults().Fail(bg, x.Store, j, end, err)
		if dead {
			res.Outcome, res.RetryAt = OutcomeDead, time.Time{}
		}
	}
	if rerr != nil {
		rerr = fmt.Errorf("record attempt %d of job %d (%s): %w", j.Attempts, j.ID, res.Outcome, rerr)
	}
	if x.Observe != nil {
		x.Observe(j, res)
	}
	return res, rerr
}

// runSafely runs an action, turning a panic into an error so that one bad
// job can neither take a worker down nor leave its job running. The error
// is the action's own: the attempt it is recorded with names the job.
func runSafely(ctx context.Context, a Action, j *Job) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("action panicked: %v", r)
		}
	}()
	return a.Run(ctx, j)
}

// ReplayStore is what a replay needs of the store beyond JobStore.
type ReplayStore interface {
	JobStore
	// ReplayJobs queues new jobs for a recorded request, leased to the
	// caller until now+lease: one per customer of a batch, else one. A
	// request that was refused or was a duplicate needs force.
	ReplayJobs(ctx context.Context, requestRef int64, now time.Time, lease time.Duration, force bool) ([]*Job, error)
	// ExtendLease holds a running job until until; false means another
	// process took it.
	ExtendLease(ctx context.Context, j *Job, until time.Time) (bool, error)
}

// ReplayedJob is one job of a replay and how its attempt ended.
type ReplayedJob struct {
	Job *Job
	// StoredOnly says no action is configured for the job: the store
	// action ran, and nothing was delivered.
	StoredOnly bool
	// Taken says another process took the job before its turn came: it
	// was not run here.
	Taken bool
	AttemptResult
}

// OK reports whether the job's attempt succeeded here.
func (r ReplayedJob) OK() bool { return !r.Taken && r.Outcome == OutcomeOK }

// Replay runs a recorded request's action again now, without its sender:
// as new jobs (one per customer of a batch, else one) run one after
// another through Run, their attempts recorded like any other. actionFor
// picks each job's action (nil means StoreAction). A job whose attempt
// failed stays queued for a running hookbay to retry under the Policy; one
// not run because ctx ended goes back to the queue. With force, a request
// that was refused or was a duplicate is replayed too. The Store must be
// a ReplayStore.
func (x *Executor) Replay(ctx context.Context, requestRef int64, force bool, actionFor func(*Job) Action) ([]ReplayedJob, error) {
	s, ok := x.Store.(ReplayStore)
	if !ok {
		return nil, fmt.Errorf("replay request %d: the store cannot replay (%T)", requestRef, x.Store)
	}
	now := time.Now
	if x.Now != nil {
		now = x.Now
	}
	jobs, err := s.ReplayJobs(ctx, requestRef, now(), x.Lease, force)
	if err != nil {
		return nil, err
	}
	out := make([]ReplayedJob, 0, len(jobs))
	for i, j := range jobs {
		if ctx.Err() != nil {
			// Stopped: the jobs not run yet go back to the queue now
			// rather than when their lease ends.
			if err := s.ReleaseJobs(context.WithoutCancel(ctx), jobs[i:]); err != nil {
				return out, fmt.Errorf("replay request %d: %w", requestRef, err)
			}
			return out, fmt.Errorf("replay request %d: %w", requestRef, ctx.Err())
		}
		// Each job is held for its own run: a long batch must not let a
		// running server take the jobs still waiting here.
		held, err := s.ExtendLease(ctx, j, now().Add(x.Lease))
		if err != nil {
			return out, fmt.Errorf("replay request %d: %w", requestRef, err)
		}
		if !held {
			out = append(out, ReplayedJob{Job: j, Taken: true})
			continue
		}
		var action Action
		if actionFor != nil {
			action = actionFor(j)
		}
		r := ReplayedJob{Job: j, StoredOnly: action == nil}
		r.AttemptResult, err = x.Run(ctx, action, j)
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("replay request %d: %w", requestRef, err)
		}
	}
	return out, nil
}
