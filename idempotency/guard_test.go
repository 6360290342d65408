package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
	"github.com/hookbay/hookbay/store/storetest"
)

// t0 is the start of every test clock: a whole number of microseconds, the
// store's time resolution.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// header is the request ID header named in notes.
const header = "X-Request-ID"

// noIDNote is the note on a request processed without a request ID.
const noIDNote = "no X-Request-ID header: processed without de-duplication on the request ID"

// fixture is a guard over a real store, counting Notify calls.
type fixture struct {
	db       *sqlite.DB
	g        *idempotency.Guard
	notifies atomic.Int32
}

// newFixture returns a guard over a fresh store. A nil clock means the real
// time for both (tests with real deadlines and leases); otherwise guard and
// store share the clock.
func newFixture(t *testing.T, clock *storetest.Clock) *fixture {
	t.Helper()
	f := &fixture{db: sqlitetest.Open(t)}
	f.g = &idempotency.Guard{
		Store:        f.db,
		Notify:       func(int) { f.notifies.Add(1) },
		PollInterval: 5 * time.Millisecond,
		Now:          time.Now,
	}
	if clock != nil {
		f.db.Now = clock.Now
		f.g.Now = clock.Now
	}
	return f
}

// now is the fixture's clock.
func (f *fixture) now() time.Time { return f.g.Now() }

// newReceipt builds a fresh receipt for one request: the guard puts the
// request ID in front of Keys, so every call needs its own.
func (f *fixture) newReceipt(id, response string, keys ...string) *hooks.Receipt {
	now := f.now()
	req := &hooks.Request{
		Sender:     hooks.SenderBubblehouse,
		Name:       "CreateDiscount4",
		RequestID:  id,
		Header:     http.Header{},
		Body:       []byte(`{}`),
		Status:     http.StatusAccepted,
		Response:   []byte(response),
		ReceivedAt: now,
	}
	return &hooks.Receipt{Request: req, Keys: keys, Job: hooks.NewJob(req, now)}
}

func (f *fixture) requests(t *testing.T) []*hooks.Request {
	t.Helper()
	reqs, err := f.db.FindRequests(context.Background(), hooks.RequestFilter{})
	if err != nil {
		t.Fatalf("find requests: %v", err)
	}
	slices.Reverse(reqs) // oldest first
	return reqs
}

func (f *fixture) jobs(t *testing.T) []*hooks.Job {
	t.Helper()
	jobs, err := f.db.FindJobs(context.Background(), hooks.JobFilter{})
	if err != nil {
		t.Fatalf("find jobs: %v", err)
	}
	return jobs
}

func (f *fixture) lookup(t *testing.T, key string) (*hooks.Entry, error) {
	t.Helper()
	return f.db.LookupKey(context.Background(), hooks.SenderBubblehouse, key)
}

func (f *fixture) mustCommit(t *testing.T, r *hooks.Receipt) hooks.Response {
	t.Helper()
	resp, err := f.g.Commit(context.Background(), r, header)
	if err != nil {
		t.Fatalf("commit %q: %v", r.Request.RequestID, err)
	}
	return resp
}

// answer returns fn's answer for a request that executes inline.
func answer(body string) hooks.Response {
	return hooks.Response{Status: http.StatusOK, Body: []byte(body)}
}

func checkResponse(t *testing.T, what string, got hooks.Response, wantStatus int, wantBody string) {
	t.Helper()
	if got.Status != wantStatus || string(got.Body) != wantBody {
		t.Errorf("%s: got %d %s, want %d %s", what, got.Status, got.Body, wantStatus, wantBody)
	}
}

// checkDuplicate checks that a request record replays the original's answer.
func checkDuplicate(t *testing.T, got, orig *hooks.Request) {
	t.Helper()
	if got.DuplicateOf != orig.ID {
		t.Errorf("request %d DuplicateOf: got %d, want %d", got.ID, got.DuplicateOf, orig.ID)
	}
	if got.Status != orig.Status || string(got.Response) != string(orig.Response) {
		t.Errorf("request %d answer: got %d %s, want %d %s", got.ID, got.Status, got.Response, orig.Status, orig.Response)
	}
}

func TestGuard_Commit(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		r := f.newReceipt("id-1", `{"ok":true}`)
		resp := f.mustCommit(t, r)
		checkResponse(t, "answer", resp, http.StatusAccepted, `{"ok":true}`)
		if got, want := f.notifies.Load(), int32(1); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
		jobs := f.jobs(t)
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		if got, want := jobs[0].RequestRef, r.Request.ID; got != want {
			t.Errorf("job request: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 1; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		if reqs[0].DuplicateOf != 0 || reqs[0].RequestID != "id-1" || len(reqs[0].Notes) != 0 {
			t.Errorf("request record: got %+v, want id-1, no duplicate, no notes", reqs[0])
		}
		e, err := f.lookup(t, "id-1")
		if err != nil {
			t.Fatalf("lookup id-1: %v", err)
		}
		if e.State != hooks.EntryDone || e.RequestRef != r.Request.ID || string(e.Response.Body) != `{"ok":true}` {
			t.Errorf("entry: got %+v, want done with the answer of request %d", e, r.Request.ID)
		}
	})

	t.Run("Repeat", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		first := f.newReceipt("id-1", `{"n":1}`)
		f.mustCommit(t, first)
		second := f.newReceipt("id-1", `{"n":2}`)
		second.Request.Status = http.StatusOK
		resp := f.mustCommit(t, second)
		checkResponse(t, "repeat answer", resp, http.StatusAccepted, `{"n":1}`)

		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(1); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 2; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		if reqs[0].DuplicateOf != 0 {
			t.Errorf("first DuplicateOf: got %d, want 0", reqs[0].DuplicateOf)
		}
		checkDuplicate(t, reqs[1], reqs[0])
		if got, want := second.Job.ID, int64(0); got != want {
			t.Errorf("repeat's job ID: got %d, want %d (not inserted)", got, want)
		}
	})

	t.Run("RepeatTrimmed", func(t *testing.T) {
		// The request ID is normalized before it is used as a key.
		f := newFixture(t, storetest.NewClock(t0))
		f.mustCommit(t, f.newReceipt("  id-1 ", `{"n":1}`))
		resp := f.mustCommit(t, f.newReceipt("id-1", `{"n":2}`))
		checkResponse(t, "repeat answer", resp, http.StatusAccepted, `{"n":1}`)
		reqs := f.requests(t)
		if got, want := reqs[0].RequestID, "id-1"; got != want {
			t.Errorf("recorded request ID: got %q, want %q", got, want)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("NoRequestID", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		for i := range 2 {
			body := fmt.Sprintf(`{"n":%d}`, i)
			resp := f.mustCommit(t, f.newReceipt("", body))
			checkResponse(t, "answer", resp, http.StatusAccepted, body)
		}
		if got, want := len(f.jobs(t)), 2; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(2); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 2; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		for _, r := range reqs {
			if r.DuplicateOf != 0 {
				t.Errorf("request %d DuplicateOf: got %d, want 0", r.ID, r.DuplicateOf)
			}
			if got, want := r.Notes, []string{noIDNote}; !slices.Equal(got, want) {
				t.Errorf("request %d notes: got %q, want %q", r.ID, got, want)
			}
		}
	})

	t.Run("NoteNamesHeader", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		r := f.newReceipt("", `{}`)
		if _, err := f.g.Commit(context.Background(), r, "Webhook-Id"); err != nil {
			t.Fatalf("commit: %v", err)
		}
		want := "no Webhook-Id header: processed without de-duplication on the request ID"
		if got := f.requests(t)[0].Notes; !slices.Equal(got, []string{want}) {
			t.Errorf("notes: got %q, want %q", got, []string{want})
		}
	})

	t.Run("ContentKey", func(t *testing.T) {
		// Two request IDs for the same event: the content key decides.
		f := newFixture(t, storetest.NewClock(t0))
		first := f.newReceipt("id-1", `{"n":1}`, "SendEvent1/bhid:1")
		f.mustCommit(t, first)
		resp := f.mustCommit(t, f.newReceipt("id-2", `{"n":2}`, "SendEvent1/bhid:1"))
		checkResponse(t, "answer to id-2", resp, http.StatusAccepted, `{"n":1}`)
		// id-2's retry replays the same answer.
		resp = f.mustCommit(t, f.newReceipt("id-2", `{"n":3}`, "SendEvent1/bhid:1"))
		checkResponse(t, "answer to id-2's retry", resp, http.StatusAccepted, `{"n":1}`)

		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 3; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		checkDuplicate(t, reqs[1], reqs[0])
		checkDuplicate(t, reqs[2], reqs[0])
	})

	t.Run("Concurrent", func(t *testing.T) {
		f := newFixture(t, nil)
		const n = 20
		resps := make([]hooks.Response, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			r := f.newReceipt("id-1", fmt.Sprintf(`{"n":%d}`, i))
			wg.Go(func() { resps[i], errs[i] = f.g.Commit(context.Background(), r, header) })
		}
		wg.Wait()
		reqs := f.requests(t)
		if got, want := len(reqs), n; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		orig := reqs[0]
		for _, r := range reqs[1:] {
			checkDuplicate(t, r, orig)
		}
		for i := range n {
			if errs[i] != nil {
				t.Errorf("commit %d: got error %v, want nil", i, errs[i])
				continue
			}
			checkResponse(t, fmt.Sprintf("answer %d", i), resps[i], orig.Status, string(orig.Response))
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(1); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
	})

	t.Run("MalformedIDHashed", func(t *testing.T) {
		// A malformed ID is not refused (a 400 would stop a Bloomreach
		// campaign): its SHA-256 de-duplicates it, and a note says so.
		f := newFixture(t, storetest.NewClock(t0))
		first, err := f.g.Commit(context.Background(), f.newReceipt("id\n1", `{}`), header)
		if err != nil {
			t.Fatal(err)
		}
		again, err := f.g.Commit(context.Background(), f.newReceipt("id\n1", `{"other":1}`), header)
		if err != nil || string(again.Body) != string(first.Body) {
			t.Fatalf("repeat: %v %s", err, again.Body)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if !strings.HasPrefix(reqs[0].RequestID, "sha256:") || !strings.Contains(strings.Join(reqs[0].Notes, ";"), "malformed") {
			t.Errorf("record: id %q notes %v", reqs[0].RequestID, reqs[0].Notes)
		}
	})

	t.Run("Takeover", func(t *testing.T) {
		// A pending key whose lease expired belonged to a process that died:
		// the request takes it over at once.
		f := newFixture(t, nil)
		ctx := context.Background()
		if e, err := f.db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"id-1"}, testOwner, time.Now().Add(-time.Second)); err != nil || e != nil {
			t.Fatalf("reserve: got %v, %v; want nil, nil", e, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		r := f.newReceipt("id-1", `{"ok":true}`)
		resp, err := f.g.Commit(ctx, r, header)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		if got, max := time.Since(start), time.Second; got > max {
			t.Errorf("commit took %v, want at most %v", got, max)
		}
		checkResponse(t, "answer", resp, http.StatusAccepted, `{"ok":true}`)
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		e, err := f.lookup(t, "id-1")
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		if e.State != hooks.EntryDone || e.RequestRef != r.Request.ID {
			t.Errorf("entry: got %+v, want done by request %d", e, r.Request.ID)
		}
	})
}

func TestGuard_Run(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		var calls atomic.Int32
		r := f.newReceipt("id-1", "")
		resp, err := f.g.Run(context.Background(), r, header, func(context.Context) (hooks.Response, error) {
			calls.Add(1)
			return answer(`{"discount":"X1"}`), nil
		})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		checkResponse(t, "answer", resp, http.StatusOK, `{"discount":"X1"}`)
		if got, want := calls.Load(), int32(1); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(1); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 1; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		if reqs[0].Status != http.StatusOK || string(reqs[0].Response) != `{"discount":"X1"}` {
			t.Errorf("recorded answer: got %d %s, want 200 {\"discount\":\"X1\"}", reqs[0].Status, reqs[0].Response)
		}
		e, err := f.lookup(t, "id-1")
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		if e.State != hooks.EntryDone || e.RequestRef != reqs[0].ID || string(e.Response.Body) != `{"discount":"X1"}` {
			t.Errorf("entry: got %+v, want done with the answer of request %d", e, reqs[0].ID)
		}
	})

	t.Run("Repeat", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		var calls atomic.Int32
		fn := func(context.Context) (hooks.Response, error) {
			n := calls.Add(1)
			return answer(fmt.Sprintf(`{"n":%d}`, n)), nil
		}
		for i := range 3 {
			resp, err := f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, fn)
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
			checkResponse(t, fmt.Sprintf("answer %d", i), resp, http.StatusOK, `{"n":1}`)
		}
		if got, want := calls.Load(), int32(1); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 3; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		checkDuplicate(t, reqs[1], reqs[0])
		checkDuplicate(t, reqs[2], reqs[0])
	})

	t.Run("NoRequestID", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		var calls atomic.Int32
		fn := func(context.Context) (hooks.Response, error) {
			return answer(fmt.Sprintf(`{"n":%d}`, calls.Add(1))), nil
		}
		for i := range 2 {
			resp, err := f.g.Run(context.Background(), f.newReceipt("", ""), header, fn)
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
			checkResponse(t, fmt.Sprintf("answer %d", i), resp, http.StatusOK, fmt.Sprintf(`{"n":%d}`, i+1))
		}
		if got, want := calls.Load(), int32(2); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
		for _, r := range f.requests(t) {
			if got, want := r.Notes, []string{noIDNote}; !slices.Equal(got, want) {
				t.Errorf("request %d notes: got %q, want %q", r.ID, got, want)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		f := newFixture(t, nil)
		const n = 20
		var calls atomic.Int32
		fn := func(context.Context) (hooks.Response, error) {
			c := calls.Add(1)
			time.Sleep(50 * time.Millisecond)
			return answer(fmt.Sprintf(`{"call":%d}`, c)), nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resps := make([]hooks.Response, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			r := f.newReceipt("id-1", "")
			wg.Go(func() { resps[i], errs[i] = f.g.Run(ctx, r, header, fn) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Errorf("run %d: got error %v, want nil", i, errs[i])
				continue
			}
			checkResponse(t, fmt.Sprintf("answer %d", i), resps[i], http.StatusOK, `{"call":1}`)
		}
		if got, want := calls.Load(), int32(1); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), n; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		var orig *hooks.Request
		for _, r := range reqs {
			if r.DuplicateOf == 0 {
				if orig != nil {
					t.Fatalf("originals: got requests %d and %d, want one", orig.ID, r.ID)
				}
				orig = r
			}
		}
		if orig == nil {
			t.Fatalf("originals: got none, want one")
		}
		for _, r := range reqs {
			if r != orig {
				checkDuplicate(t, r, orig)
			}
		}
	})

	t.Run("ErrorReleasesKeys", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		errUpstream := errors.New("upstream unavailable")
		var calls atomic.Int32
		fn := func(context.Context) (hooks.Response, error) {
			if calls.Add(1) == 1 {
				return hooks.Response{}, errUpstream
			}
			return answer(`{"ok":true}`), nil
		}
		_, err := f.g.Run(context.Background(), f.newReceipt("id-1", "", "SendEvent1/bhid:1"), header, fn)
		if !errors.Is(err, errUpstream) {
			t.Fatalf("first run: got error %v, want %v", err, errUpstream)
		}
		for _, k := range []string{"id-1", "SendEvent1/bhid:1"} {
			if _, err := f.lookup(t, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("lookup %q after the error: got %v, want ENOTFOUND", k, err)
			}
		}
		if got, want := len(f.jobs(t)), 0; got != want {
			t.Errorf("jobs after the error: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(0); got != want {
			t.Errorf("Notify calls after the error: got %d, want %d", got, want)
		}

		resp, err := f.g.Run(context.Background(), f.newReceipt("id-1", "", "SendEvent1/bhid:1"), header, fn)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		checkResponse(t, "retry's answer", resp, http.StatusOK, `{"ok":true}`)
		if got, want := calls.Load(), int32(2); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("WaiterExecutesAfterError", func(t *testing.T) {
		// A repeat waiting on a request whose fn fails executes itself.
		f := newFixture(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		started, fail := make(chan struct{}), make(chan struct{})
		firstErr := make(chan error, 1)
		go func() {
			_, err := f.g.Run(ctx, f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				close(started)
				<-fail
				return hooks.Response{}, errors.New("timed out upstream")
			})
			firstErr <- err
		}()
		<-started
		type result struct {
			resp hooks.Response
			err  error
		}
		second := make(chan result, 1)
		go func() {
			resp, err := f.g.Run(ctx, f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				return answer(`{"second":true}`), nil
			})
			second <- result{resp, err}
		}()
		select {
		case res := <-second:
			t.Fatalf("second run returned %+v while the first was executing, want it to wait", res)
		case <-time.After(50 * time.Millisecond):
		}
		close(fail)
		if err := <-firstErr; err == nil {
			t.Errorf("first run: got nil error, want fn's")
		}
		res := <-second
		if res.err != nil {
			t.Fatalf("second run: %v", res.err)
		}
		checkResponse(t, "second answer", res.resp, http.StatusOK, `{"second":true}`)
	})

	t.Run("CommitWaitsForRun", func(t *testing.T) {
		f := newFixture(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		started, finish := make(chan struct{}), make(chan struct{})
		runDone := make(chan error, 1)
		run := f.newReceipt("id-1", "")
		go func() {
			_, err := f.g.Run(ctx, run, header, func(context.Context) (hooks.Response, error) {
				close(started)
				<-finish
				return answer(`{"from":"run"}`), nil
			})
			runDone <- err
		}()
		<-started
		type result struct {
			resp hooks.Response
			err  error
		}
		commitDone := make(chan result, 1)
		commit := f.newReceipt("id-1", `{"from":"commit"}`)
		go func() {
			resp, err := f.g.Commit(ctx, commit, header)
			commitDone <- result{resp, err}
		}()
		select {
		case res := <-commitDone:
			t.Fatalf("commit returned %+v while the run was executing, want it to wait", res)
		case <-time.After(50 * time.Millisecond):
		}
		close(finish)
		if err := <-runDone; err != nil {
			t.Fatalf("run: %v", err)
		}
		res := <-commitDone
		if res.err != nil {
			t.Fatalf("commit: %v", res.err)
		}
		checkResponse(t, "commit's answer", res.resp, http.StatusOK, `{"from":"run"}`)
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(1); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 2; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		if got, want := reqs[0].ID, run.Request.ID; got != want {
			t.Errorf("first record: got request %d, want the run's %d", got, want)
		}
		checkDuplicate(t, reqs[1], reqs[0])
	})

	t.Run("ErrConflict", func(t *testing.T) {
		// Waiting is bounded by the repeat's deadline.
		f := newFixture(t, nil)
		started := make(chan struct{})
		firstDone := make(chan error, 1)
		go func() {
			_, err := f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				close(started)
				time.Sleep(500 * time.Millisecond)
				return answer(`{"ok":true}`), nil
			})
			firstDone <- err
		}()
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		var calls atomic.Int32
		start := time.Now()
		_, err := f.g.Run(ctx, f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			calls.Add(1)
			return answer(`{"second":true}`), nil
		})
		elapsed := time.Since(start)
		if got, want := hooks.ErrorCode(err), hooks.ECONFLICT; got != want {
			t.Errorf("error code: got %q (err %v), want %q", got, err, want)
		}
		if max := 300 * time.Millisecond; elapsed > max {
			t.Errorf("second run took %v, want at most %v", elapsed, max)
		}
		if got, want := calls.Load(), int32(0); got != want {
			t.Errorf("second fn calls: got %d, want %d", got, want)
		}
		if err := <-firstDone; err != nil {
			t.Fatalf("first run: %v", err)
		}
		// The refused repeat left no record behind: its retry replays.
		resp, err := f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			calls.Add(1)
			return answer(`{"third":true}`), nil
		})
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		checkResponse(t, "retry's answer", resp, http.StatusOK, `{"ok":true}`)
	})

	t.Run("CommitErrConflict", func(t *testing.T) {
		f := newFixture(t, nil)
		started, finish := make(chan struct{}), make(chan struct{})
		firstDone := make(chan error, 1)
		go func() {
			_, err := f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				close(started)
				<-finish
				return answer(`{"ok":true}`), nil
			})
			firstDone <- err
		}()
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := f.g.Commit(ctx, f.newReceipt("id-1", `{}`), header)
		elapsed := time.Since(start)
		close(finish)
		if got, want := hooks.ErrorCode(err), hooks.ECONFLICT; got != want {
			t.Errorf("error code: got %q (err %v), want %q", got, err, want)
		}
		if max := 300 * time.Millisecond; elapsed > max {
			t.Errorf("commit took %v, want at most %v", elapsed, max)
		}
		if err := <-firstDone; err != nil {
			t.Fatalf("run: %v", err)
		}
		if got, want := len(f.jobs(t)), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := len(f.requests(t)), 1; got != want {
			t.Errorf("requests: got %d, want %d (the refused commit is taken back)", got, want)
		}
	})

	t.Run("Takeover", func(t *testing.T) {
		// A pending key whose lease expired belonged to a process that died:
		// the request executes at once instead of waiting for its deadline.
		f := newFixture(t, nil)
		ctx := context.Background()
		if e, err := f.db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"id-1"}, testOwner, time.Now().Add(-time.Second)); err != nil || e != nil {
			t.Fatalf("reserve: got %v, %v; want nil, nil", e, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var calls atomic.Int32
		start := time.Now()
		resp, err := f.g.Run(ctx, f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			calls.Add(1)
			return answer(`{"ok":true}`), nil
		})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if got, max := time.Since(start), time.Second; got > max {
			t.Errorf("run took %v, want at most %v", got, max)
		}
		checkResponse(t, "answer", resp, http.StatusOK, `{"ok":true}`)
		if got, want := calls.Load(), int32(1); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
		e, err := f.lookup(t, "id-1")
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		if e.State != hooks.EntryDone || string(e.Response.Body) != `{"ok":true}` {
			t.Errorf("entry: got %+v, want done with the run's answer", e)
		}
	})

	t.Run("TakeoverWhileWaiting", func(t *testing.T) {
		// A lease that expires while a repeat waits lets the repeat execute.
		f := newFixture(t, nil)
		ctx := context.Background()
		start := time.Now() // the lease runs from here
		if e, err := f.db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"id-1"}, testOwner, start.Add(100*time.Millisecond)); err != nil || e != nil {
			t.Fatalf("reserve: got %v, %v; want nil, nil", e, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var calls atomic.Int32
		resp, err := f.g.Run(ctx, f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			calls.Add(1)
			return answer(`{"ok":true}`), nil
		})
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if min, max := 100*time.Millisecond, 2*time.Second; elapsed < min || elapsed > max {
			t.Errorf("run took %v, want between %v and %v", elapsed, min, max)
		}
		checkResponse(t, "answer", resp, http.StatusOK, `{"ok":true}`)
		if got, want := calls.Load(), int32(1); got != want {
			t.Errorf("fn calls: got %d, want %d", got, want)
		}
	})
}

func TestGuard_Record(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		clock := storetest.NewClock(t0)
		f := newFixture(t, clock)
		req := &hooks.Request{
			Sender:     hooks.SenderBubblehouse,
			Name:       "CreateDiscount4",
			RequestID:  "id-1",
			Header:     http.Header{},
			Body:       []byte(`{}`),
			Status:     http.StatusUnauthorized,
			Response:   []byte(`{"error":"unauthorized"}`),
			ReceivedAt: t0,
		}
		clock.Add(1500 * time.Microsecond)
		if err := f.g.Record(context.Background(), req); err != nil {
			t.Fatalf("record: %v", err)
		}
		reqs := f.requests(t)
		if got, want := len(reqs), 1; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		got := reqs[0]
		if got.ID != req.ID || got.RequestID != "id-1" || got.Status != http.StatusUnauthorized ||
			string(got.Response) != `{"error":"unauthorized"}` || !got.ReceivedAt.Equal(t0) {
			t.Errorf("record: got %+v, want %+v", got, req)
		}
		if got, want := got.Latency, 1500*time.Microsecond; got != want {
			t.Errorf("latency: got %v, want %v", got, want)
		}
		// A refused request leaves no idempotency key and no job.
		if _, err := f.lookup(t, "id-1"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("lookup: got %v, want ENOTFOUND", err)
		}
		if got, want := len(f.jobs(t)), 0; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		// The record is written even when the client has gone.
		f := newFixture(t, storetest.NewClock(t0))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := f.newReceipt("id-1", `{}`).Request
		if err := f.g.Record(ctx, req); err != nil {
			t.Fatalf("record: %v", err)
		}
		if got, want := len(f.requests(t)), 1; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
	})
}

func TestGuard_Purge(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		clock := storetest.NewClock(t0)
		f := newFixture(t, clock)
		f.g.Retention = 72 * time.Hour
		f.mustCommit(t, f.newReceipt("id-old", `{"n":"old"}`))
		clock.Add(48 * time.Hour)
		f.mustCommit(t, f.newReceipt("id-new", `{"n":"new"}`))
		clock.Add(25 * time.Hour) // id-old is 73 h old, id-new 25 h

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.g.Purge(ctx, time.Hour)
		}()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := f.lookup(t, "id-old")
			if hooks.ErrorCode(err) == hooks.ENOTFOUND {
				break
			} else if err != nil {
				t.Fatalf("lookup id-old: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("id-old: still there after 5s, want it purged")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Purge: still running 2s after cancel, want it returned")
		}

		if _, err := f.lookup(t, "id-new"); err != nil {
			t.Errorf("lookup id-new: got %v, want it kept", err)
		}
		// A repeat after the purge is processed again; one inside retention
		// still replays.
		resp := f.mustCommit(t, f.newReceipt("id-old", `{"n":"old again"}`))
		checkResponse(t, "id-old after purge", resp, http.StatusAccepted, `{"n":"old again"}`)
		resp = f.mustCommit(t, f.newReceipt("id-new", `{"n":"new again"}`))
		checkResponse(t, "id-new repeat", resp, http.StatusAccepted, `{"n":"new"}`)
		if got, want := len(f.jobs(t)), 3; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := f.notifies.Load(), int32(3); got != want {
			t.Errorf("Notify calls: got %d, want %d", got, want)
		}
	})

	t.Run("DefaultRetention", func(t *testing.T) {
		clock := storetest.NewClock(t0)
		f := newFixture(t, clock)
		f.mustCommit(t, f.newReceipt("id-1", `{}`))
		clock.Add(idempotency.DefaultRetention - time.Hour)
		f.mustCommit(t, f.newReceipt("id-2", `{}`))
		clock.Add(2 * time.Hour)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.g.Purge(ctx, time.Hour)
		}()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := f.lookup(t, "id-1"); hooks.ErrorCode(err) == hooks.ENOTFOUND {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("id-1: still there after 5s, want it purged")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		if _, err := f.lookup(t, "id-2"); err != nil {
			t.Errorf("lookup id-2: got %v, want it kept", err)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		f := newFixture(t, storetest.NewClock(t0))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.g.Purge(ctx, 10*time.Millisecond)
		}()
		time.Sleep(35 * time.Millisecond) // a few rounds
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Purge: still running 2s after cancel, want it returned")
		}
	})
}

// overrunGuard shares f's store but reserves leases that have already
// expired: the same as a request whose fn outlives its lease (fn ignores
// ctx past the deadline + 5 s, or runs past BubblehouseCallLimit), without
// waiting that long.
func overrunGuard(f *fixture) *idempotency.Guard {
	return &idempotency.Guard{
		Store:        f.db,
		PollInterval: 5 * time.Millisecond,
		Now:          func() time.Time { return time.Now().Add(-hooks.BubblehouseCallLimit - time.Second) },
	}
}

func TestGuard_Lease(t *testing.T) {
	t.Run("FinishAfterTakeover", func(t *testing.T) {
		// A's lease runs out while its fn runs; B takes the key over and
		// answers. A's late answer must not replace the answer B's sender
		// got and later repeats replay.
		f := newFixture(t, nil)
		started, finish := make(chan struct{}), make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			_, err := overrunGuard(f).Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				close(started)
				<-finish
				return answer(`{"from":"A"}`), nil
			})
			aDone <- err
		}()
		<-started
		resp, err := f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			return answer(`{"from":"B"}`), nil
		})
		if err != nil {
			t.Fatalf("run B: %v", err)
		}
		checkResponse(t, "B's answer", resp, http.StatusOK, `{"from":"B"}`)
		close(finish)
		if err := <-aDone; err != nil {
			t.Fatalf("run A: %v", err)
		}
		resp, err = f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			return answer(`{"from":"C"}`), nil
		})
		if err != nil {
			t.Fatalf("repeat: %v", err)
		}
		checkResponse(t, "repeat's answer", resp, http.StatusOK, `{"from":"B"}`)
	})

	t.Run("ReleaseAfterTakeover", func(t *testing.T) {
		// A's lease runs out while its fn runs; B takes the key over. A's
		// fn then fails: releasing A's keys must not free B's reservation,
		// or a repeat executes while B still is.
		f := newFixture(t, nil)
		aStarted, aFail := make(chan struct{}), make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			_, err := overrunGuard(f).Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				close(aStarted)
				<-aFail
				return hooks.Response{}, errors.New("A failed")
			})
			aDone <- err
		}()
		<-aStarted
		bStarted, bFinish := make(chan struct{}), make(chan struct{})
		bDone := make(chan error, 1)
		go func() {
			_, err := f.g.Run(context.Background(), f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
				close(bStarted)
				<-bFinish
				return answer(`{"from":"B"}`), nil
			})
			bDone <- err
		}()
		<-bStarted
		close(aFail)
		if err := <-aDone; err == nil {
			t.Errorf("run A: got nil error, want fn's")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		var calls atomic.Int32
		_, err := f.g.Run(ctx, f.newReceipt("id-1", ""), header, func(context.Context) (hooks.Response, error) {
			calls.Add(1)
			return answer(`{"from":"C"}`), nil
		})
		close(bFinish)
		if err := <-bDone; err != nil {
			t.Fatalf("run B: %v", err)
		}
		if got, want := calls.Load(), int32(0); got != want {
			t.Errorf("C's fn calls while B executed: got %d, want %d", got, want)
		}
		if got, want := hooks.ErrorCode(err), hooks.ECONFLICT; got != want {
			t.Errorf("C's error code: got %q (err %v), want %q", got, err, want)
		}
	})
}

// testOwner is the reservation token of requests reserved directly in the store.
const testOwner = 7
