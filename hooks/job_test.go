package hooks_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// jobT0 is the start of the job tests' clock.
var jobT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestRetryPolicy_NextRetryAt(t *testing.T) {
	const samples = 2000
	// jitterBounds checks samples of the delay after attempt failures
	// against base ±10%, and that the jitter goes both ways.
	jitterBounds := func(t *testing.T, p hooks.RetryPolicy, attempt int, base time.Duration) {
		t.Helper()
		lo, hi := base-base/10, base+base/10
		var below, above bool
		for i := 0; i < samples; i++ {
			d := p.NextRetryAt(jobT0, attempt).Sub(jobT0)
			if d < lo || d > hi {
				t.Fatalf("attempt %d: got delay %v, want %v ±10%% [%v, %v]", attempt, d, base, lo, hi)
			}
			below = below || d < base
			above = above || d > base
		}
		if !below || !above {
			t.Fatalf("attempt %d: over %d samples got jitter below %v, above %v; want both", attempt, samples, below, above)
		}
	}

	t.Run("Exponential", func(t *testing.T) {
		p := hooks.RetryPolicy{MaxAttempts: 20, Initial: time.Second, Max: time.Hour}
		want := time.Second
		for attempt := 1; attempt <= 12; attempt++ {
			jitterBounds(t, p, attempt, want)
			want *= 2
		}
	})

	t.Run("AttemptZero", func(t *testing.T) {
		p := hooks.RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Minute}
		jitterBounds(t, p, 0, 100*time.Millisecond)
	})

	t.Run("Capped", func(t *testing.T) {
		p := hooks.RetryPolicy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
		for attempt, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 40 * time.Millisecond, 10: 40 * time.Millisecond} {
			jitterBounds(t, p, attempt, want)
		}
	})

	t.Run("CapNotPowerOfTwo", func(t *testing.T) {
		// The doubling overshoots Max; the delay is Max, not the overshoot.
		p := hooks.RetryPolicy{Initial: time.Second, Max: 5 * time.Second}
		jitterBounds(t, p, 4, 5*time.Second)
	})

	t.Run("ManyAttempts", func(t *testing.T) {
		// No overflow however many attempts were made.
		for _, attempt := range []int{64, 1000, 1 << 30} {
			jitterBounds(t, hooks.DefaultRetryPolicy, attempt, hooks.DefaultRetryPolicy.Max)
		}
	})

	t.Run("DefaultWithinContract", func(t *testing.T) {
		// Bubblehouse Hooks API, "Time Limits & Retry": regular hooks
		// are retried from 1 second to 4 hours within 48 hours.
		p := hooks.DefaultRetryPolicy
		if p.Initial < time.Second || p.Max > 4*time.Hour || p.MaxAge != 48*time.Hour || p.MaxAttempts <= 0 {
			t.Fatalf("got %+v, want Initial >= 1s, Max <= 4h, MaxAge 48h, MaxAttempts > 0", p)
		}
	})

	t.Run("RelativeToNow", func(t *testing.T) {
		p := hooks.RetryPolicy{Initial: time.Minute, Max: time.Hour}
		now := jobT0.Add(17 * time.Hour)
		if got := p.NextRetryAt(now, 1); got.Before(now.Add(54*time.Second)) || got.After(now.Add(66*time.Second)) {
			t.Fatalf("got %v, want %v + 1m ±10%%", got, now)
		}
	})
}

func TestRetryPolicy_Dead(t *testing.T) {
	p := hooks.RetryPolicy{MaxAttempts: 3, MaxAge: time.Hour, Initial: time.Second, Max: time.Minute}
	job := func(attempts int, created time.Time) *hooks.Job {
		return &hooks.Job{Attempts: attempts, CreatedAt: created, State: hooks.JobRunning}
	}
	tests := []struct {
		name   string
		policy hooks.RetryPolicy
		job    *hooks.Job
		now    time.Time
		want   bool
	}{
		{"FirstAttempt", p, job(1, jobT0), jobT0.Add(time.Second), false},
		{"BelowMaxAttempts", p, job(2, jobT0), jobT0.Add(time.Second), false},
		{"AtMaxAttempts", p, job(3, jobT0), jobT0.Add(time.Second), true},
		{"BeyondMaxAttempts", p, job(7, jobT0), jobT0.Add(time.Second), true},
		{"YoungerThanMaxAge", p, job(1, jobT0), jobT0.Add(time.Hour - time.Microsecond), false},
		{"AtMaxAge", p, job(1, jobT0), jobT0.Add(time.Hour), true},
		{"OlderThanMaxAge", p, job(1, jobT0), jobT0.Add(48 * time.Hour), true},
		{"NoAttemptLimit", hooks.RetryPolicy{MaxAge: time.Hour}, job(1000, jobT0), jobT0.Add(time.Minute), false},
		{"NoAgeLimit", hooks.RetryPolicy{MaxAttempts: 3}, job(1, jobT0), jobT0.Add(10000 * time.Hour), false},
		{"NoLimits", hooks.RetryPolicy{}, job(1000, jobT0), jobT0.Add(10000 * time.Hour), false},
		// Bubblehouse Hooks API, "Time Limits & Retry": 48 h for regular.
		{"DefaultBefore48h", hooks.DefaultRetryPolicy, job(1, jobT0), jobT0.Add(47 * time.Hour), false},
		{"DefaultAfter48h", hooks.DefaultRetryPolicy, job(1, jobT0), jobT0.Add(48 * time.Hour), true},
		{"DefaultMaxAttempts", hooks.DefaultRetryPolicy, job(hooks.DefaultRetryPolicy.MaxAttempts, jobT0), jobT0.Add(time.Minute), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Dead(tt.job, tt.now); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewJob(t *testing.T) {
	for _, u := range []hooks.Urgency{hooks.UrgencyRealtime, hooks.UrgencyUrgent, hooks.UrgencyRegular} {
		t.Run(string(u), func(t *testing.T) {
			req := &hooks.Request{Sender: hooks.SenderBubblehouse, Name: "SendEvent1", Urgency: u, Method: http.MethodPost}
			j := hooks.NewJob(req, jobT0)
			if j.Sender != req.Sender || j.Name != req.Name || j.Urgency != u {
				t.Errorf("got %+v, want the request's sender, name and urgency", j)
			}
			if got, want := j.Priority, u.Priority(); got != want {
				t.Errorf("priority: got %d, want %d", got, want)
			}
			if got, want := j.State, hooks.JobAvailable; got != want {
				t.Errorf("state: got %s, want %s", got, want)
			}
			if !j.ScheduledAt.Equal(jobT0) || !j.CreatedAt.Equal(jobT0) || !j.FinishedAt.IsZero() || j.Attempts != 0 {
				t.Errorf("got %+v, want scheduled and created at %v, not finished, no attempts", j, jobT0)
			}
		})
	}
}

func TestJob_Stored(t *testing.T) {
	req := &hooks.Request{Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", Urgency: hooks.UrgencyUrgent}
	j := hooks.NewJob(req, jobT0)
	finished := jobT0.Add(time.Millisecond)
	j.Stored(finished)
	if got, want := j.State, hooks.JobDone; got != want {
		t.Errorf("state: got %s, want %s", got, want)
	}
	if got, want := j.FinishedAt, finished; !got.Equal(want) {
		t.Errorf("finished at: got %v, want %v", got, want)
	}
	if got, want := j.Attempts, 0; got != want {
		t.Errorf("attempts: got %d, want %d", got, want)
	}
	if !j.ScheduledAt.Equal(jobT0) || !j.CreatedAt.Equal(jobT0) {
		t.Errorf("got %+v, want scheduled and created times unchanged", j)
	}
}

func TestPlanReplay(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	base := hooks.ReplayedRequest{Ref: 7, Status: 200,
		Job: hooks.Job{Sender: hooks.SenderBloomreach, Source: "sms_batch", Urgency: hooks.UrgencyRegular, Body: []byte(`[1,2]`)}}
	t.Run("EachUnit", func(t *testing.T) {
		r := base
		r.Units = []hooks.ReplayUnit{{Name: "sms_batch", Payload: []byte(`1`)}, {Name: "sms_batch", Payload: []byte(`2`)}}
		jobs, err := hooks.PlanReplay(r, now, time.Minute, false)
		if err != nil || len(jobs) != 2 {
			t.Fatalf("got %d jobs, %v; want 2", len(jobs), err)
		}
		for i, j := range jobs {
			if string(j.Body) != string(r.Units[i].Payload) || j.RequestRef != 7 || j.State != hooks.JobRunning || j.Attempts != 1 ||
				!j.LockedUntil.Equal(now.Add(time.Minute)) || j.Priority != hooks.UrgencyRegular.Priority() {
				t.Errorf("job %d: got %+v", i, j)
			}
		}
	})
	for _, tt := range []struct {
		name   string
		status int
		dup    int64
		units  bool
		errHas string
	}{
		{"Refused", 401, 0, true, "was answered 401"},
		{"Duplicate", 200, 3, true, "duplicate of request 3"},
		{"NothingDelivered", 200, 0, false, "delivered nothing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			r.Status, r.DuplicateOf = tt.status, tt.dup
			if tt.units {
				r.Units = []hooks.ReplayUnit{{Name: "sms_batch"}}
			}
			if _, err := hooks.PlanReplay(r, now, time.Minute, false); hooks.ErrorCode(err) != hooks.EINVALID || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("without force: got %v, want an error saying %q", err, tt.errHas)
			}
			// Forced, the whole body when nothing was delivered.
			jobs, err := hooks.PlanReplay(r, now, time.Minute, true)
			if err != nil || len(jobs) != 1 || jobs[0].Name != "sms_batch" {
				t.Fatalf("forced: got %v, %v", jobs, err)
			}
			if !tt.units && string(jobs[0].Body) != `[1,2]` {
				t.Fatalf("forced, nothing delivered: body %q, want the whole body", jobs[0].Body)
			}
		})
	}
}
