package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

// mustClaim queues one job and leases it for lease, as a worker would
// before an attempt.
func mustClaim(tb testing.TB, db *sqlite.DB, lease time.Duration) *hooks.Job {
	tb.Helper()
	now := time.Now()
	j := mustEnqueue(tb, db, "CreateDiscount4", hooks.UrgencyUrgent, now)
	claimed, err := db.ClaimJobs(context.Background(), now, lease, 1, 1)
	if err != nil {
		tb.Fatalf("claim: %v", err)
	}
	if len(claimed) != 1 || claimed[0].ID != j.ID {
		tb.Fatalf("claim: got %d jobs, want job %d", len(claimed), j.ID)
	}
	return claimed[0]
}

// mustAttempts returns the recorded outcomes of a job's attempts.
func mustAttempts(tb testing.TB, db *sqlite.DB, id int64) []hooks.Outcome {
	tb.Helper()
	atts, err := db.FindAttempts(context.Background(), id)
	if err != nil {
		tb.Fatalf("find attempts: %v", err)
	}
	var out []hooks.Outcome
	for _, a := range atts {
		out = append(out, a.Outcome)
	}
	return out
}

func TestExecutor_Run(t *testing.T) {
	policy := hooks.RetryPolicy{MaxAttempts: 3, Initial: time.Minute, Max: time.Hour}
	for _, tt := range []struct {
		name      string
		policy    hooks.RetryPolicy
		run       func(ctx context.Context, j *hooks.Job) ([]byte, error)
		outcome   hooks.Outcome
		state     hooks.JobState
		attempts  int             // as stored afterwards
		recorded  []hooks.Outcome // outcomes of the recorded attempts
		errHas    string          // in AttemptResult.Err and the stored last error
		output    string
		maxOutput int64
	}{{
		name:     "OK",
		run:      func(context.Context, *hooks.Job) ([]byte, error) { return []byte(`{"ok":true}`), nil },
		outcome:  hooks.OutcomeOK,
		state:    hooks.JobDone,
		attempts: 1, recorded: []hooks.Outcome{hooks.OutcomeOK}, output: `{"ok":true}`,
	}, {
		name:     "Failed",
		run:      func(context.Context, *hooks.Job) ([]byte, error) { return nil, errors.New("downstream said no") },
		outcome:  hooks.OutcomeFailed,
		state:    hooks.JobAvailable,
		attempts: 1, recorded: []hooks.Outcome{hooks.OutcomeFailed}, errHas: "downstream said no",
	}, {
		name:     "Dead",
		policy:   hooks.RetryPolicy{MaxAttempts: 1},
		run:      func(context.Context, *hooks.Job) ([]byte, error) { return nil, errors.New("still no") },
		outcome:  hooks.OutcomeDead,
		state:    hooks.JobDead,
		attempts: 1, recorded: []hooks.Outcome{hooks.OutcomeDead}, errHas: "still no",
	}, {
		// A panicking Go action is a failed attempt, never a job left
		// running with its worker gone.
		name:     "Panic",
		run:      func(context.Context, *hooks.Job) ([]byte, error) { panic("integrator bug") },
		outcome:  hooks.OutcomeFailed,
		state:    hooks.JobAvailable,
		attempts: 1, recorded: []hooks.Outcome{hooks.OutcomeFailed}, errHas: "action panicked: integrator bug",
	}, {
		name: "RuntimePanic",
		run: func(context.Context, *hooks.Job) ([]byte, error) {
			var m map[string]int
			m["boom"]++
			return nil, nil
		},
		outcome:  hooks.OutcomeFailed,
		state:    hooks.JobAvailable,
		attempts: 1, recorded: []hooks.Outcome{hooks.OutcomeFailed}, errHas: "assignment to entry in nil map",
	}, {
		// A Go action's answer over the cap is dropped; the work was done.
		name:      "OutputOverCap",
		maxOutput: 8,
		run:       func(context.Context, *hooks.Job) ([]byte, error) { return []byte(`{"much":"more than eight"}`), nil },
		outcome:   hooks.OutcomeOK,
		state:     hooks.JobDone,
		attempts:  1, recorded: []hooks.Outcome{hooks.OutcomeOK}, errHas: "8-byte output limit",
	}, {
		name: "NotStarted",
		run: func(context.Context, *hooks.Job) ([]byte, error) {
			return nil, fmt.Errorf("exec x: no slot: %w", hooks.ErrNotStarted)
		},
		outcome:  hooks.AttemptNotStarted,
		state:    hooks.JobAvailable,
		attempts: 0, recorded: nil, errHas: "no slot",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpenStore(t)
			j := mustClaim(t, db, time.Minute)
			p := policy
			if tt.policy.MaxAttempts != 0 {
				p = tt.policy
			}
			var observed []hooks.Outcome
			x := &hooks.Executor{Store: db, Policy: p, Lease: time.Minute, MaxOutput: tt.maxOutput,
				Observe: func(oj *hooks.Job, r hooks.AttemptResult) { observed = append(observed, r.Outcome) }}
			res, err := x.Run(context.Background(), hooks.ActionFunc(tt.run), j)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if res.Outcome != tt.outcome {
				t.Fatalf("outcome: got %q, want %q (err %v)", res.Outcome, tt.outcome, res.Err)
			}
			if got := string(res.Output); got != tt.output {
				t.Errorf("output: got %q, want %q", got, tt.output)
			}
			if tt.errHas == "" && res.Err != nil || tt.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errHas)) {
				t.Errorf("err: got %v, want one saying %q", res.Err, tt.errHas)
			}
			got := mustFindJob(t, db, j.ID)
			if got.State != tt.state || got.Attempts != tt.attempts {
				t.Errorf("stored job: got %s after %d attempts, want %s after %d", got.State, got.Attempts, tt.state, tt.attempts)
			}
			if rec := mustAttempts(t, db, j.ID); !slices.Equal(rec, tt.recorded) {
				t.Errorf("recorded attempts: got %q, want %q", rec, tt.recorded)
			}
			if tt.outcome == hooks.OutcomeFailed {
				if !strings.Contains(got.LastError, tt.errHas) {
					t.Errorf("last error: got %q, want it to say %q", got.LastError, tt.errHas)
				}
				if !got.ScheduledAt.Equal(res.RetryAt.Truncate(time.Microsecond)) || time.Until(res.RetryAt) < 50*time.Second {
					t.Errorf("retry: stored %v, result %v; want the same, about a minute away", got.ScheduledAt, res.RetryAt)
				}
			}
			if len(observed) != 1 || observed[0] != tt.outcome {
				t.Errorf("observed: got %q, want one %q", observed, tt.outcome)
			}
		})
	}
}

// The caller's cancellation (shutdown, Ctrl-C) is not the action's
// failure: the job goes back to the queue, its attempt recorded as
// interrupted and not counted.
func TestExecutor_Interrupted(t *testing.T) {
	db := mustOpenStore(t)
	j := mustClaim(t, db, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	x := &hooks.Executor{Store: db, Lease: time.Minute}
	res, err := x.Run(ctx, hooks.ActionFunc(func(ctx context.Context, _ *hooks.Job) ([]byte, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}), j)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Outcome != hooks.OutcomeInterrupted {
		t.Fatalf("outcome: got %q, want %q", res.Outcome, hooks.OutcomeInterrupted)
	}
	if got := mustFindJob(t, db, j.ID); got.State != hooks.JobAvailable || got.Attempts != 0 {
		t.Fatalf("stored job: got %s after %d attempts, want available after 0", got.State, got.Attempts)
	}
	if rec := mustAttempts(t, db, j.ID); len(rec) != 1 || rec[0] != hooks.OutcomeInterrupted {
		t.Fatalf("recorded attempts: got %q, want one interrupted", rec)
	}
}

// An attempt ends before the job's lease does, a margin early, whatever
// the action does with its context.
func TestExecutor_Deadline(t *testing.T) {
	db := mustOpenStore(t)
	j := mustClaim(t, db, 400*time.Millisecond)
	x := &hooks.Executor{Store: db, Lease: 400 * time.Millisecond, Policy: hooks.RetryPolicy{MaxAttempts: 5}}
	var deadline time.Time
	res, err := x.Run(context.Background(), hooks.ActionFunc(func(ctx context.Context, _ *hooks.Job) ([]byte, error) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return nil, ctx.Err()
	}), j)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := j.LockedUntil.Add(-100 * time.Millisecond); !deadline.Equal(want) {
		t.Errorf("deadline: got %v, want %v (a quarter of the lease before it ends)", deadline, want)
	}
	if res.Outcome != hooks.OutcomeFailed || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("result: got %q %v, want a failed attempt past its deadline", res.Outcome, res.Err)
	}
	if got := mustFindJob(t, db, j.ID); got.State != hooks.JobAvailable {
		t.Fatalf("stored job: got %s, want available for a retry", got.State)
	}
}

// Complete takes over marking succeeded jobs done (the queue batches
// them); the store is not written by the executor then.
func TestExecutor_Complete(t *testing.T) {
	db := mustOpenStore(t)
	j := mustClaim(t, db, time.Minute)
	var handed []*hooks.Job
	x := &hooks.Executor{Store: db, Lease: time.Minute, Complete: func(j *hooks.Job) { handed = append(handed, j) }}
	if res, err := x.Run(context.Background(), nil, j); err != nil || res.Outcome != hooks.OutcomeOK {
		t.Fatalf("run of the store action: %+v %v, want ok", res, err)
	}
	if len(handed) != 1 || handed[0] != j {
		t.Fatalf("handed to Complete: %v, want the job", handed)
	}
	if got := mustFindJob(t, db, j.ID); got.State != hooks.JobRunning {
		t.Fatalf("stored job: got %s, want still running until Complete's owner records it", got.State)
	}
}

// A job another process took since (its lease expired and a rescue ran) is
// not recorded by a stale attempt.
func TestExecutor_StaleLease(t *testing.T) {
	db := mustOpenStore(t)
	j := mustClaim(t, db, time.Minute)
	if _, err := db.RescueJobs(context.Background(), time.Now().Add(time.Hour), hooks.DefaultRetryPolicy); err != nil {
		t.Fatal(err)
	}
	x := &hooks.Executor{Store: db, Lease: time.Minute}
	if _, err := x.Run(context.Background(), hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		return nil, errors.New("late failure")
	}), j); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := mustFindJob(t, db, j.ID); got.State != hooks.JobAvailable || strings.Contains(got.LastError, "late failure") {
		t.Fatalf("stored job: %+v, want it as the rescue left it", got)
	}
}
