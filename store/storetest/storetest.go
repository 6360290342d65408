// Package storetest is the behaviour every store backend must show, written
// against the store's methods rather than any database: Run exercises them
// all, with cases that use two handles on one database, as two processes
// (or two replicas) would. Clock is a settable clock for a store's Now.
//
// Time. A backend may judge due times and leases by its own database clock
// rather than by the now passed to a method, so the cases keep the suite's
// clock at or behind the real time, never ahead of it: a time the clock has
// reached has passed for every backend. What must not have happened yet is
// put an hour or more ahead; a lease that must run out is short, and the
// case waits it out in real time as well (see env.wait). Exact boundaries
// (a job due to the microsecond) belong in a backend's own tests.
package storetest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// Store is the store as the suite exercises it: every method a backend
// offers to the workers (hooks.JobStore), the idempotency guard, the
// handlers and the command line.
type Store interface {
	hooks.JobStore

	// Ping checks that the database answers.
	Ping(ctx context.Context) error

	// SaveReceipt writes an accepted request, its keys and its job or
	// items in one transaction; a taken key returns its entry instead.
	SaveReceipt(ctx context.Context, r *hooks.Receipt) (*hooks.Entry, error)
	// Record writes the record of a request that was refused or replayed.
	Record(ctx context.Context, req *hooks.Request) error
	// FindRequests returns request records, newest first.
	FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error)
	// PurgeRecords deletes old records with their jobs and attempts, never
	// one whose job is still to be delivered.
	PurgeRecords(ctx context.Context, before time.Time) (int64, error)

	// ReserveKeys, FinishReserved, ReleaseKeys and LookupKey run a request
	// that executes inline under its idempotency keys.
	ReserveKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error)
	FinishReserved(ctx context.Context, r *hooks.Receipt, owner int64) (*hooks.Entry, error)
	ReleaseKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64) error
	LookupKey(ctx context.Context, sender hooks.Sender, key string) (*hooks.Entry, error)
	// PurgeIdempotency forgets answers created before a time.
	PurgeIdempotency(ctx context.Context, before time.Time) (int64, error)

	// RetryJobs, RetryDead and ReplayJobs run jobs again by hand.
	RetryJobs(ctx context.Context, ids []int64, now time.Time) (int64, error)
	RetryDead(ctx context.Context, since, now time.Time) (int64, error)
	ReplayJobs(ctx context.Context, requestRef int64, now time.Time, lease time.Duration, force bool) ([]*hooks.Job, error)
	// ExtendLease holds a running job longer, if the caller still holds it.
	ExtendLease(ctx context.Context, j *hooks.Job, until time.Time) (bool, error)
	// FindJobs returns jobs, oldest first; FindAttempts a job's attempts.
	FindJobs(ctx context.Context, f hooks.JobFilter) ([]*hooks.Job, error)
	FindAttempts(ctx context.Context, jobID int64) ([]*hooks.Attempt, error)

	// AddFault, Faults, UseFault, ClearFaults and DeleteFault keep the
	// answers injected on purpose.
	AddFault(ctx context.Context, f *hooks.Fault) error
	Faults(ctx context.Context, now time.Time) ([]*hooks.Fault, error)
	UseFault(ctx context.Context, id int64) (bool, error)
	ClearFaults(ctx context.Context, sender hooks.Sender) (int64, error)
	DeleteFault(ctx context.Context, id int64) (bool, error)

	// SaveToken and TokenClient keep issued OAuth 2.0 access tokens.
	SaveToken(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error
	TokenClient(ctx context.Context, hash []byte, now time.Time) (string, []string, error)
}

// Backend creates a fresh, empty database for one case and returns open,
// which opens a handle on that database each time it is called, as one more
// process would. Every handle reads the time from now (its Now), and is
// closed when t ends; a backend that cannot open fails t.
type Backend func(t *testing.T, now func() time.Time) (open func() Store)

// Run runs every case of the suite against b, each on a database of its
// own.
func Run(t *testing.T, b Backend) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"Ping", testPing},
		{"SaveReceipt", testSaveReceipt},
		{"SaveReceiptItems", testSaveReceiptItems},
		{"SaveReceiptManyItems", testSaveReceiptManyItems},
		{"SaveReceiptItemsAfterPurge", testSaveReceiptItemsAfterPurge},
		{"Record", testRecord},
		{"FindRequests", testFindRequests},
		{"PurgeRecords", testPurgeRecords},
		{"ReserveKeys", testReserveKeys},
		{"FinishReserved", testFinishReserved},
		{"FinishReservedTakenOver", testFinishReservedTakenOver},
		{"ReleaseKeys", testReleaseKeys},
		{"LookupKey", testLookupKey},
		{"PurgeIdempotency", testPurgeIdempotency},
		{"ClaimJobs", testClaimJobs},
		{"RescueJobs", testRescueJobs},
		{"SaveLeased", testSaveLeased},
		{"CompleteJobs", testCompleteJobs},
		{"FailJob", testFailJob},
		{"ReleaseJobs", testReleaseJobs},
		{"RetryJobs", testRetryJobs},
		{"RetryDead", testRetryDead},
		{"ReplayJobs", testReplayJobs},
		{"ExtendLease", testExtendLease},
		{"FindJobs", testFindJobs},
		{"FindAttempts", testFindAttempts},
		{"Faults", testFaults},
		{"Tokens", testTokens},
		{"TwoHandles", testTwoHandles},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, b)
		})
	}
}

// CheckMigratedQueue checks a store just migrated from a schema older than
// its record of how each job was claimed (SQLite's 0007_claimed_ahead.sql,
// PostgreSQL's 0004_claimed_ahead.sql), whose queue held job running,
// claimed then, and one more job available. Both are kept, and once the
// lease of running has expired (now for the caller's clock, and for the
// database's), it is rescued with its attempt counted, as before.
func CheckMigratedQueue(t *testing.T, s Store, now time.Time, running int64) {
	t.Helper()
	jobs, err := s.FindJobs(t.Context(), hooks.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	states := map[hooks.JobState]int{}
	for _, j := range jobs {
		states[j.State]++
	}
	if len(jobs) != 2 || states[hooks.JobRunning] != 1 || states[hooks.JobAvailable] != 1 {
		t.Fatalf("jobs after the migration: %v, want one running and one available", states)
	}
	if n, err := s.RescueJobs(t.Context(), now, hooks.RetryPolicy{MaxAttempts: 1}); err != nil || n != 1 {
		t.Fatalf("rescue: %d, %v", n, err)
	}
	dead, err := s.FindJobs(t.Context(), hooks.JobFilter{State: hooks.JobDead})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != running || dead[0].Attempts != 1 {
		t.Fatalf("dead after the rescue: %+v, want job %d after its one attempt", dead, running)
	}
}

// BatchReceipt builds a Bloomreach batch receipt the way the batch handler
// does, received at now: the request ID is its only key, and each customer
// is an item under its own key ("sms/item:" and the customer; none for "")
// whose job delivers that customer alone, {"customer":"<c>"}. The body is
// {"messages":[...]}; with inBody, each item says where in the body its
// payload lies, as the handler's do. Without, the payloads are copies, as
// a job written before the payload span migrations kept them.
func BatchReceipt(now time.Time, requestID string, inBody bool, customers ...string) *hooks.Receipt {
	req := &hooks.Request{
		Sender: hooks.SenderBloomreach, Name: "sms", RequestID: requestID, Method: http.MethodPost,
		Path: "/bloomreach/sms", RemoteAddr: "192.0.2.1:4242", Header: http.Header{"Content-Type": {"application/json"}},
		Status: http.StatusOK, Response: []byte(`{"success":true}`), ReceivedAt: now,
	}
	body := []byte(`{"messages":[`)
	var at []int
	for i, c := range customers {
		if i > 0 {
			body = append(body, ',')
		}
		at = append(at, len(body))
		body = fmt.Appendf(body, `{"customer":%q}`, c)
	}
	req.Body = append(body, "]}"...)
	r := &hooks.Receipt{Request: req, Keys: []string{requestID}}
	for i, c := range customers {
		it := &hooks.ReceiptItem{Job: hooks.NewJob(req, now), InBody: inBody, At: at[i]}
		if c != "" {
			it.Key = hooks.ItemKey("sms", c)
		}
		it.Job.Payload = fmt.Appendf(nil, `{"customer":%q}`, c)
		if inBody {
			it.Job.Payload = req.Body[at[i] : at[i]+len(it.Job.Payload)]
		}
		r.Items = append(r.Items, it)
	}
	return r
}

// CheckMigratedPayloads checks a store migrated to keeping a batch's
// payloads as their bounds in the body (SQLite's 0008_payload_span.sql,
// PostgreSQL's 0005_payload_span.sql) from a database holding batch "old"
// of customers a, b and c, saved by BatchReceipt without inBody: it saves
// batch "new" of x and y with it, claims every job, and checks that each
// delivers its own bytes, the old ones as before.
func CheckMigratedPayloads(t *testing.T, s Store, now time.Time) {
	t.Helper()
	if _, err := s.SaveReceipt(t.Context(), BatchReceipt(now, "new", true, "x", "y")); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.ClaimJobs(t.Context(), now, time.Hour, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := customerBodies(t, jobs)
	want := []string{`{"customer":"a"}`, `{"customer":"b"}`, `{"customer":"c"}`, `{"customer":"x"}`, `{"customer":"y"}`}
	if !slices.Equal(got, want) {
		t.Fatalf("claimed: got %q, want %q", got, want)
	}
}

// CheckPayloadOutsideBody checks what a store does with a job whose
// payload's bounds its request's body does not reach, which only a change
// to the database outside hookbay makes: corrupt moves the bounds of job
// past past the body and takes those of job null away (payload_len NULL).
// Claimed, such jobs are made dead with hooks.PayloadOutsideBodyError, their
// attempt taken back, and not handed out, while the batch's other
// customers are; a replay of the request refuses, naming one.
func CheckPayloadOutsideBody(t *testing.T, s Store, now time.Time, corrupt func(past, null int64)) {
	t.Helper()
	r := BatchReceipt(now, "outside", true, "a", "b", "c")
	if _, err := s.SaveReceipt(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	corrupt(r.Items[0].Job.ID, r.Items[2].Job.ID)
	jobs, err := s.ClaimJobs(t.Context(), now, time.Hour, 10, 10)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	got := customerBodies(t, jobs)
	if want := []string{`{"customer":"b"}`}; !slices.Equal(got, want) {
		t.Errorf("claimed: got %q, want %q", got, want)
	}
	dead, err := s.FindJobs(t.Context(), hooks.JobFilter{State: hooks.JobDead})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Fatalf("dead jobs: got %+v, want 2", dead)
	}
	for _, j := range dead {
		if j.LastError != hooks.PayloadOutsideBodyError || j.Attempts != 0 {
			t.Errorf("dead job %d: %q after %d attempts, want %q after none", j.ID, j.LastError, j.Attempts, hooks.PayloadOutsideBodyError)
		}
	}
	if _, err := s.ReplayJobs(t.Context(), r.Request.ID, now, time.Hour, false); err == nil ||
		!strings.Contains(err.Error(), hooks.PayloadOutsideBodyError) {
		t.Errorf("replay: got %v, want an error saying %q", err, hooks.PayloadOutsideBodyError)
	}
}

// customerBodies returns what each of a batch's jobs delivers, in order,
// checking that each delivers its payload as its body.
func customerBodies(t *testing.T, jobs []*hooks.Job) []string {
	t.Helper()
	var bodies []string
	for _, j := range jobs {
		if string(j.Payload) != string(j.Body) {
			t.Errorf("job %d: payload %s, body %s; want the same", j.ID, j.Payload, j.Body)
		}
		bodies = append(bodies, string(j.Body))
	}
	return bodies
}
