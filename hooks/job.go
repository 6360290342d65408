package hooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"time"
)

// JobState is where a job is in its life. Its values are the one name of
// each state: the store keeps them, and the CLI's --state, tables and JSON
// show them.
type JobState string

const (
	// JobAvailable jobs wait for a worker once ScheduledAt has passed: new
	// jobs, and jobs due for a retry.
	JobAvailable JobState = "available"
	// JobRunning jobs are leased by a worker until LockedUntil; after that the
	// lease is considered lost (the process died) and the job is taken again.
	JobRunning JobState = "running"
	// JobDone jobs were delivered successfully. They are kept for inspection.
	JobDone JobState = "done"
	// JobDead jobs failed MaxAttempts times or outlived the maximum age. They
	// are never deleted by failing and can be retried by hand.
	JobDead JobState = "dead"
)

// Job hands one accepted request to the integrator's code.
type Job struct {
	ID         int64
	RequestRef int64 // Request.ID
	Sender     Sender
	// Name is the hook, webhook or event type the action is chosen by.
	Name string
	// Source is the name in the request's URL (Request.Name): the Svix
	// endpoint an event came to; for other senders the same as Name.
	Source      string
	Urgency     Urgency
	Priority    int
	State       JobState
	Attempts    int
	ScheduledAt time.Time
	LockedUntil time.Time
	CreatedAt   time.Time
	FinishedAt  time.Time
	LastError   string

	// Payload is what the job delivers when it is not the request's whole
	// body: one customer of a batch. Nil means the body.
	Payload []byte

	// RequestID, Header and Body are read from the request record when the
	// job is claimed (Body is the Payload when there is one); the body is
	// not stored twice. Header is as recorded, with secrets redacted.
	RequestID string
	Header    http.Header
	Body      []byte

	// AttemptStarted and AttemptDuration describe the attempt being
	// finished, for its record.
	AttemptStarted  time.Time
	AttemptDuration time.Duration
}

// IdempotencyKey is the key a delivery carries so that the downstream can
// de-duplicate it: the request ID for a job that delivers the whole body;
// for one customer of a batch, the request ID and a digest of that
// customer's bytes, the same across retries and replays and distinct for
// every other customer. "" when the request had no ID.
func (j *Job) IdempotencyKey() string {
	if j.RequestID == "" || j.Payload == nil {
		return j.RequestID
	}
	sum := sha256.Sum256(j.Payload)
	return j.RequestID + "/" + hex.EncodeToString(sum[:8])
}

// Outcome is how an attempt ended, as recorded.
type Outcome string

// Attempt outcomes, as recorded.
const (
	OutcomeOK          Outcome = "ok"
	OutcomeFailed      Outcome = "failed"      // retried later
	OutcomeDead        Outcome = "dead"        // the last attempt
	OutcomeInterrupted Outcome = "interrupted" // shutdown; the job went back to the queue
)

// Attempt is the record of one run of a job's action.
type Attempt struct {
	JobID     int64         `json:"job"`
	Attempt   int           `json:"attempt"`
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration_ns"`
	Outcome   Outcome       `json:"outcome"`
	Error     string        `json:"error,omitempty"`
}

// HeaderTraceparent and HeaderTracestate are W3C Trace Context's headers:
// a sender's are passed on with each delivery, so that the integrator's
// traces join the sender's.
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
)

// Trace returns the W3C traceparent the request came with, when it is well
// formed (version, trace id, parent id and flags in lowercase hex), and its
// tracestate; "" and "" otherwise.
func (j *Job) Trace() (traceparent, tracestate string) {
	tp := strings.TrimSpace(j.Header.Get(HeaderTraceparent))
	if !validTraceparent(tp) {
		return "", ""
	}
	ts := strings.TrimSpace(j.Header.Get(HeaderTracestate))
	if len(ts) > 512 || strings.ContainsAny(ts, "\r\n") {
		ts = ""
	}
	return tp, ts
}

// validTraceparent checks the version-00 form 2-32-16-2 hex digits (later
// versions may append fields after a dash), and that neither id is all
// zeros, as the W3C recommendation asks of a receiver.
func validTraceparent(s string) bool {
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') || s[:2] == "ff" {
		return false
	}
	for i, c := range s[:55] {
		switch i {
		case 2, 35, 52:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return s[3:35] != strings.Repeat("0", 32) && s[36:52] != strings.Repeat("0", 16)
}

// NewJob returns an available job for a request about to be recorded.
func NewJob(req *Request, now time.Time) *Job {
	return &Job{
		Sender:      req.Sender,
		Name:        req.Name,
		Source:      req.Name,
		Urgency:     req.Urgency,
		Priority:    req.Urgency.Priority(),
		State:       JobAvailable,
		ScheduledAt: now,
		CreatedAt:   now,
	}
}

// Stored marks a job whose action is the store action as done at once:
// keeping the request is all that action does, and the transaction that
// accepts the request does it. Such a job never occupies a worker.
func (j *Job) Stored(now time.Time) {
	j.State = JobDone
	j.FinishedAt = now
}

// RetryPolicy decides when a failed job runs again and when it is dead.
type RetryPolicy struct {
	MaxAttempts int           // attempts before the job is dead
	MaxAge      time.Duration // age after which a failing job is dead
	Initial     time.Duration // delay after the first failure
	Max         time.Duration // cap on the delay
}

// DefaultRetryPolicy covers Bubblehouse's 48 h regular retry window.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 10, MaxAge: 48 * time.Hour, Initial: time.Second, Max: time.Hour}

// withDefaults fills the fields left zero from DefaultRetryPolicy. A zero
// MaxAttempts or MaxAge keeps its meaning only when set explicitly to a
// negative value: -1 means no limit.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.MaxAge == 0 {
		p.MaxAge = d.MaxAge
	}
	if p.Initial <= 0 {
		p.Initial = d.Initial
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	return p
}

// NextRetryAt returns when a job that has failed attempt times should run
// again: an exponential delay from Initial, capped at Max, with up to 10%
// jitter either way so that a burst of failures does not retry in lockstep.
func (p RetryPolicy) NextRetryAt(now time.Time, attempt int) time.Time {
	d := p.Initial
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	if d > p.Max {
		d = p.Max
	}
	jitter := time.Duration(float64(d) * 0.1 * (2*rand.Float64() - 1))
	return now.Add(d + jitter)
}

// Dead reports whether a job that has just failed should be given up.
func (p RetryPolicy) Dead(j *Job, now time.Time) bool {
	if p.MaxAttempts > 0 && j.Attempts >= p.MaxAttempts {
		return true
	}
	return p.MaxAge > 0 && now.Sub(j.CreatedAt) >= p.MaxAge
}

// Fail records j's failed attempt under the policy, with cause's text cut
// to maxErrorText: the job runs again at retryAt, or is dead. The queue
// and a replay both end a failed attempt here.
func (p RetryPolicy) Fail(ctx context.Context, s JobStore, j *Job, now time.Time, cause error) (dead bool, retryAt time.Time, err error) {
	dead, retryAt = p.Dead(j, now), p.NextRetryAt(now, j.Attempts)
	return dead, retryAt, s.FailJob(ctx, j, now, retryAt, dead, truncate(cause.Error(), maxErrorText))
}

// ReplayUnit is one thing a recorded request delivered, read from its
// jobs: a name and the payload (nil: the request's whole body).
type ReplayUnit struct {
	Name    string
	Payload []byte
}

// ReplayedRequest is what a replay reads of a recorded request: its
// sender, name (as Source), urgency, request ID, headers and body in Job,
// the status it was answered, the original it duplicated (0: none), and
// what it delivered.
type ReplayedRequest struct {
	Job         Job
	Ref         int64
	Status      int
	DuplicateOf int64
	Units       []ReplayUnit
}

// PlanReplay returns the jobs that replay r, leased until now+lease to
// the caller, who runs them at once: one for each unit r delivered (each
// customer of a batch, with its payload), or, with force, one for the
// whole body when it delivered nothing. A request that was not accepted
// (no 2xx) or was a duplicate is refused unless force is set: replaying it
// would deliver what the sender never had accepted. Every store backend
// writes the jobs it returns.
func PlanReplay(r ReplayedRequest, now time.Time, lease time.Duration, force bool) ([]*Job, error) {
	if !force && (r.Status/100 != 2 || r.DuplicateOf != 0) {
		why := fmt.Sprintf("was answered %d", r.Status)
		if r.DuplicateOf != 0 {
			why = fmt.Sprintf("is a duplicate of request %d", r.DuplicateOf)
		}
		return nil, Errorf(EINVALID, "request %d %s: replaying it would deliver what the sender never had accepted (use --force)", r.Ref, why)
	}
	units := r.Units
	if len(units) == 0 {
		if !force {
			return nil, Errorf(EINVALID, "request %d delivered nothing (no job was queued for it); use --force to deliver its whole body", r.Ref)
		}
		units = []ReplayUnit{{Name: r.Job.Source}}
	}
	out := make([]*Job, 0, len(units))
	for _, u := range units {
		j := r.Job
		j.Name, j.Payload, j.RequestRef = u.Name, u.Payload, r.Ref
		if u.Payload != nil {
			j.Body = u.Payload
		}
		j.State, j.Attempts, j.ScheduledAt, j.CreatedAt, j.LockedUntil = JobRunning, 1, now, now, now.Add(lease)
		j.Priority = j.Urgency.Priority()
		out = append(out, &j)
	}
	return out, nil
}

// RescuedError is the error of record of an attempt whose process died
// (JobStore.RescueJobs).
const RescuedError = "the process running this attempt stopped before it ended (its lease expired)"

// PayloadOutsideBodyError is the error of a job a store made dead when it
// claimed it: the job keeps its payload as bounds in its request's body
// (ReceiptItem.PayloadInBody), and the stored body does not reach them.
// hookbay never writes such a job; the database was changed outside it.
const PayloadOutsideBodyError = "its payload's bounds lie outside its request's stored body (the database was changed outside hookbay); not delivered"

// RescuedAheadError is RescuedError for a job claimed ahead, whose attempt
// is not counted.
const RescuedAheadError = "the process that claimed this job ahead stopped before it was known to start (its lease expired); the attempt is not counted, the next is"

// Before reports whether j comes before k in queue order: priority, then
// scheduled time, then ID.
func (j *Job) Before(k *Job) bool {
	if j.Priority != k.Priority {
		return j.Priority < k.Priority
	}
	if !j.ScheduledAt.Equal(k.ScheduledAt) {
		return j.ScheduledAt.Before(k.ScheduledAt)
	}
	return j.ID < k.ID
}

// SortJobs sorts jobs in queue order (Before).
func SortJobs(jobs []*Job) {
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Before(jobs[b]) })
}
