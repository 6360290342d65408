package storetest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// testOwner is the reservation token of the cases' inline requests.
const testOwner = 7

// env is one case's database: its clock, its first handle s, and open for
// more handles on the same database.
type env struct {
	t    *testing.T
	clk  *Clock
	open func() Store
	s    Store
}

// newEnv creates a fresh database with b and opens a first handle on it. The
// clock starts at the real time, to the microsecond (the resolution stores
// keep), so that times compare equal after a round trip.
func newEnv(t *testing.T, b Backend) *env {
	t.Helper()
	clk := NewClock(time.Now().Truncate(time.Microsecond))
	open := b(t, clk.Now)
	return &env{t: t, clk: clk, open: open, s: open()}
}

// now is the clock's time.
func (e *env) now() time.Time { return e.clk.Now() }

// wait lets d pass on the clock and in real time, so that a lease of less
// than d taken before has run out for every backend, whichever clock it
// judges by.
func (e *env) wait(d time.Duration) time.Time {
	now := e.clk.Add(d)
	time.Sleep(d)
	return now
}

// mark returns a time that everything written so far precedes and
// everything written afterwards does not, by the clock and by the real
// time: the clock jumps to it once the real time has passed it.
func (e *env) mark() time.Time {
	m := time.Now().Truncate(time.Microsecond).Add(time.Millisecond)
	for !time.Now().After(m) {
		time.Sleep(time.Until(m) + 100*time.Microsecond)
	}
	e.clk.Set(m)
	return m
}

// receipt builds a receipt the way the idempotency guard does, received
// now: the request ID, when there is one, in front of the content keys; the
// answer is stored as the response; the receipt queues a job due now.
func (e *env) receipt(requestID, answer string, contentKeys ...string) *hooks.Receipt {
	now := e.now()
	req := &hooks.Request{
		Sender:     hooks.SenderBubblehouse,
		Name:       "SendEvent1",
		RequestID:  requestID,
		Urgency:    hooks.UrgencyRegular,
		Method:     http.MethodPost,
		Path:       "/bubblehouse/SendEvent1",
		RemoteAddr: "192.0.2.1:4242",
		Header:     http.Header{"Content-Type": {"application/json"}, "X-Bh-Request-Id": {requestID}},
		Body:       fmt.Appendf(nil, `{"request":%q}`, requestID),
		Status:     http.StatusOK,
		Response:   []byte(answer),
		ReceivedAt: now,
	}
	var keys []string
	if requestID != "" {
		keys = append(keys, requestID)
	}
	keys = append(keys, contentKeys...)
	return &hooks.Receipt{Request: req, Keys: keys, Job: hooks.NewJob(req, now)}
}

// save saves r on the first handle and returns the entry found, if any.
func (e *env) save(r *hooks.Receipt) *hooks.Entry {
	e.t.Helper()
	found, err := e.s.SaveReceipt(e.t.Context(), r)
	if err != nil {
		e.t.Fatalf("save receipt %v: %v", r.Keys, err)
	}
	return found
}

// queue saves a receipt for request ID rid with the given urgency, its job
// due at scheduled, and returns the job.
func (e *env) queue(rid string, u hooks.Urgency, scheduled time.Time) *hooks.Job {
	e.t.Helper()
	r := e.receipt(rid, `{}`)
	r.Request.Urgency = u
	r.Request.Body = fmt.Appendf(nil, `{"event":%q}`, rid)
	r.Job = hooks.NewJob(r.Request, e.now())
	r.Job.ScheduledAt = scheduled
	if found := e.save(r); found != nil {
		e.t.Fatalf("queue %s: got entry %+v, want nil", rid, found)
	}
	return r.Job
}

// reserve reserves keys for owner until leaseUntil and fails unless they
// are now owner's.
func (e *env) reserve(keys []string, owner int64, leaseUntil time.Time) {
	e.t.Helper()
	found, err := e.s.ReserveKeys(e.t.Context(), hooks.SenderBubblehouse, keys, owner, leaseUntil)
	if err != nil || found != nil {
		e.t.Fatalf("reserve %v: got %+v, %v; want nil, nil", keys, found, err)
	}
}

func (e *env) requests(f hooks.RequestFilter) []*hooks.Request {
	e.t.Helper()
	reqs, err := e.s.FindRequests(e.t.Context(), f)
	if err != nil {
		e.t.Fatalf("find requests: %v", err)
	}
	return reqs
}

func (e *env) jobs(f hooks.JobFilter) []*hooks.Job {
	e.t.Helper()
	jobs, err := e.s.FindJobs(e.t.Context(), f)
	if err != nil {
		e.t.Fatalf("find jobs: %v", err)
	}
	return jobs
}

// job returns the stored state of job id.
func (e *env) job(id int64) *hooks.Job {
	e.t.Helper()
	for _, j := range e.jobs(hooks.JobFilter{Limit: 10000}) {
		if j.ID == id {
			return j
		}
	}
	e.t.Fatalf("job %d not found", id)
	return nil
}

// lookup returns the entry under a Bubblehouse key, which must exist.
func (e *env) lookup(key string) *hooks.Entry {
	e.t.Helper()
	found, err := e.s.LookupKey(e.t.Context(), hooks.SenderBubblehouse, key)
	if err != nil {
		e.t.Fatalf("lookup %q: %v", key, err)
	}
	return found
}

// noKey fails unless there is no entry under a Bubblehouse key.
func (e *env) noKey(key string) {
	e.t.Helper()
	if found, err := e.s.LookupKey(e.t.Context(), hooks.SenderBubblehouse, key); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		e.t.Errorf("key %q: got %+v, %v; want ENOTFOUND", key, found, err)
	}
}

// claim claims up to limit jobs now on the first handle.
func (e *env) claim(lease time.Duration, limit int) []*hooks.Job {
	e.t.Helper()
	jobs, err := e.s.ClaimJobs(e.t.Context(), e.now(), lease, limit, limit)
	if err != nil {
		e.t.Fatalf("claim jobs: %v", err)
	}
	return jobs
}

// rescue takes back, on the first handle, the jobs whose lease ran out.
func (e *env) rescue(policy hooks.RetryPolicy) int64 {
	e.t.Helper()
	n, err := e.s.RescueJobs(e.t.Context(), e.now(), policy)
	if err != nil {
		e.t.Fatalf("rescue jobs: %v", err)
	}
	return n
}

// attempts returns the outcomes of a job's attempts, oldest first, joined
// by commas.
func (e *env) attempts(id int64) string {
	e.t.Helper()
	atts, err := e.s.FindAttempts(e.t.Context(), id)
	if err != nil {
		e.t.Fatalf("find attempts of job %d: %v", id, err)
	}
	var out []string
	for _, a := range atts {
		out = append(out, string(a.Outcome))
	}
	return strings.Join(out, ",")
}

// shortLease is a lease that a case lets run out with env.wait(expire).
const (
	shortLease = time.Millisecond
	expire     = 10 * time.Millisecond
)

func jobIDs(jobs []*hooks.Job) []int64 {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

func requestIDs(reqs []*hooks.Request) []int64 {
	ids := make([]int64, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	return ids
}

// hasNote reports whether any note contains s.
func hasNote(notes []string, s string) bool {
	return slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, s) })
}

// nowish reports whether a time a store stamped on a write just made is now,
// by whichever clock the store reads: no earlier than the suite's clock, no
// later than the real time.
func (e *env) nowish(got time.Time) bool {
	return !got.Before(e.now()) && !got.After(time.Now())
}

// lockedWithin reports whether a lease taken now for d, by whichever clock
// the backend judges, ends when it should: no earlier than the suite's
// clock says, no later than the real time says.
func lockedWithin(got, now time.Time, d time.Duration) bool {
	return !got.Before(now.Add(d)) && !got.After(time.Now().Add(d))
}
