package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// leasedFor fails unless a lease end by the database's clock lies d after
// its now() at the time the lease was taken: between start+d and the
// present+d, with a second's grace for the two clocks (the same machine's,
// in the tests).
func leasedFor(tb testing.TB, got, start time.Time, d time.Duration) {
	tb.Helper()
	if got.Before(start.Add(d-time.Second)) || got.After(time.Now().Add(d+time.Second)) {
		tb.Errorf("lease end: got %v, want about %v from %v", got, d, start)
	}
}

func TestDB_SaveReceipt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		// Request record, every key and the job are written together.
		db := openDB(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{"ok":true}`, "bhid-1")
		r.Request.Notes = []string{"unknown urgency"}
		r.Request.Latency = 1500 * time.Microsecond
		if e := mustCommit(t, db, r); e != nil {
			t.Fatalf("got entry %+v, want nil", e)
		}
		if r.Request.ID == 0 || r.Job.ID == 0 {
			t.Fatalf("IDs: got request %d, job %d; want both set", r.Request.ID, r.Job.ID)
		}
		reqs := mustFindRequests(t, db, hooks.RequestFilter{})
		if got, want := len(reqs), 1; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		got, want := reqs[0], r.Request
		if got.ID != want.ID || got.Sender != want.Sender || got.Name != want.Name ||
			got.RequestID != want.RequestID || got.Urgency != want.Urgency || got.Method != want.Method ||
			got.Path != want.Path || got.RemoteAddr != want.RemoteAddr || got.Status != want.Status ||
			got.Latency != want.Latency || got.DuplicateOf != 0 || !got.ReceivedAt.Equal(want.ReceivedAt) {
			t.Errorf("request record: got %+v, want %+v", got, want)
		}
		if !bytes.Equal(got.Body, want.Body) || !bytes.Equal(got.Response, want.Response) {
			t.Errorf("body, response: got %s, %s; want %s, %s", got.Body, got.Response, want.Body, want.Response)
		}
		if g, w := got.Header.Get("Content-Type"), "application/json"; g != w {
			t.Errorf("header: got %q, want %q", g, w)
		}
		if g, w := fmt.Sprint(got.Notes), "[unknown urgency]"; g != w {
			t.Errorf("notes: got %s, want %s", g, w)
		}
		for _, k := range []string{"req-1", "bhid-1"} {
			e := mustLookup(t, db, k)
			if e.State != hooks.EntryDone || e.Response.Status != http.StatusOK ||
				string(e.Response.Body) != `{"ok":true}` || e.RequestRef != r.Request.ID ||
				!e.CreatedAt.Equal(t0) || !e.LockedUntil.IsZero() {
				t.Errorf("entry %q: got %+v, want done with the answer of request %d", k, e, r.Request.ID)
			}
		}
		jobs := mustFindJobs(t, db, hooks.JobFilter{})
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		j := jobs[0]
		if j.ID != r.Job.ID || j.RequestRef != r.Request.ID || j.Sender != hooks.SenderBubblehouse ||
			j.Name != "SendEvent1" || j.Urgency != hooks.UrgencyRegular || j.Priority != 2 ||
			j.State != hooks.JobAvailable || j.Attempts != 0 || !j.ScheduledAt.Equal(t0) || !j.CreatedAt.Equal(t0) {
			t.Errorf("job: got %+v, want available, for request %d", j, r.Request.ID)
		}
	})

	t.Run("NoJob", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{}`)
		r.Job = nil
		if e := mustCommit(t, db, r); e != nil {
			t.Fatalf("got entry %+v, want nil", e)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 0; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		if got, want := mustLookup(t, db, "req-1").RequestRef, r.Request.ID; got != want {
			t.Fatalf("entry request: got %d, want %d", got, want)
		}
	})

	t.Run("StoredJob", func(t *testing.T) {
		t.Parallel()
		// A job the store action finished at once is kept done.
		db := openDB(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{}`)
		r.Job.Stored(t0)
		mustCommit(t, db, r)
		j := mustJob(t, db, r.Job.ID)
		if j.State != hooks.JobDone || !j.FinishedAt.Equal(t0) {
			t.Fatalf("job: got %+v, want done at %v", j, t0)
		}
	})

	t.Run("ErrDuplicate", func(t *testing.T) {
		t.Parallel()
		// A repeat of the request ID gets the first answer, is recorded as
		// a duplicate, and queues nothing.
		db := openDB(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustCommit(t, db, first)
		repeat := newReceipt(t0.Add(time.Second), "req-1", `{"n":2}`, "bhid-2")
		repeat.Request.Status = http.StatusAccepted
		e := mustCommit(t, db, repeat)
		if e == nil || e.State != hooks.EntryDone || e.Key != "req-1" || e.RequestRef != first.Request.ID ||
			e.Response.Status != http.StatusOK || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("entry: got %+v, want done with the answer of request %d", e, first.Request.ID)
		}
		reqs := mustFindRequests(t, db, hooks.RequestFilter{RequestID: "req-1"})
		if got, want := len(reqs), 2; got != want {
			t.Fatalf("records: got %d, want %d", got, want)
		}
		rec := reqs[0] // newest first
		if rec.ID != repeat.Request.ID || rec.DuplicateOf != first.Request.ID || rec.Status != http.StatusOK ||
			string(rec.Response) != `{"n":1}` || !hasNote(rec.Notes, "duplicate of request") {
			t.Errorf("repeat's record: got %+v, want a duplicate of %d with its answer", rec, first.Request.ID)
		}
		if got, want := reqs[1].DuplicateOf, int64(0); got != want {
			t.Errorf("original's DuplicateOf: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if repeat.Job.ID != 0 {
			t.Errorf("repeat's job ID: got %d, want 0 (not queued)", repeat.Job.ID)
		}
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "bhid-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("repeat's content key: got %v, want ENOTFOUND", err)
		}
	})

	t.Run("ErrDuplicateContentKey", func(t *testing.T) {
		t.Parallel()
		// A new request ID carrying a content key already answered gets the
		// first answer; its request ID replays that answer from then on,
		// pointing at the original request.
		db := openDB(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustCommit(t, db, first)
		second := newReceipt(t0, "req-2", `{"n":2}`, "bhid-1")
		e := mustCommit(t, db, second)
		if e == nil || e.State != hooks.EntryDone || e.Key != "bhid-1" || e.RequestRef != first.Request.ID ||
			string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("entry: got %+v, want done under bhid-1 with the answer of request %d", e, first.Request.ID)
		}
		recs := mustFindRequests(t, db, hooks.RequestFilter{RequestID: "req-2"})
		if len(recs) != 1 || recs[0].DuplicateOf != first.Request.ID || !hasNote(recs[0].Notes, `"bhid-1"`) {
			t.Fatalf("records of req-2: got %+v, want one duplicate of %d naming bhid-1", recs, first.Request.ID)
		}
		e2 := mustLookup(t, db, "req-2")
		if e2.State != hooks.EntryDone || string(e2.Response.Body) != `{"n":1}` || e2.RequestRef != first.Request.ID {
			t.Errorf("entry of req-2: got %+v, want done with the first answer, of request %d", e2, first.Request.ID)
		}
		retry := newReceipt(t0, "req-2", `{"n":3}`, "bhid-1")
		e = mustCommit(t, db, retry)
		if e == nil || e.Key != "req-2" || string(e.Response.Body) != `{"n":1}` || retry.Request.DuplicateOf != first.Request.ID {
			t.Fatalf("retry of req-2: got entry %+v, duplicate of %d; want the first answer under req-2, of %d",
				e, retry.Request.DuplicateOf, first.Request.ID)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 3; got != want {
			t.Errorf("records: got %d, want %d", got, want)
		}
	})

	t.Run("NoKeys", func(t *testing.T) {
		t.Parallel()
		// A request without any key is processed every time.
		db := openDB(t)
		useClock(db)
		for i := 0; i < 3; i++ {
			if e := mustCommit(t, db, newReceipt(t0, "", `{}`)); e != nil {
				t.Fatalf("save %d: got entry %+v, want nil", i, e)
			}
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 3; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("SenderNamespace", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		mustCommit(t, db, newReceipt(t0, "req-1", `{"n":1}`))
		other := newReceipt(t0, "req-1", `{"n":2}`)
		other.Request.Sender, other.Job.Sender = hooks.SenderSvix, hooks.SenderSvix
		if e := mustCommit(t, db, other); e != nil {
			t.Fatalf("other sender: got entry %+v, want nil", e)
		}
		e, err := db.LookupKey(ctx, hooks.SenderSvix, "req-1")
		if err != nil || string(e.Response.Body) != `{"n":2}` {
			t.Fatalf("svix answer: got %+v, %v; want {\"n\":2}", e, err)
		}
	})

	t.Run("ErrPending", func(t *testing.T) {
		t.Parallel()
		// A key held by a request executing inline, under a live lease:
		// SaveReceipt returns the pending entry and writes nothing, even
		// when the caller's clock has run past the lease (the database's
		// has not).
		s := newSchema(t)
		db := s.open(t)
		clk := useClock(db)
		start := time.Now()
		if e, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-1"}, testOwner, t0.Add(time.Minute)); err != nil || e != nil {
			t.Fatalf("reserve: got %+v, %v; want nil, nil", e, err)
		}
		clk.Add(time.Hour)
		e := mustCommit(t, db, newReceipt(t0, "req-1", `{"n":2}`))
		if e == nil || e.State != hooks.EntryPending || e.Key != "req-1" || !e.LockedUntil.Equal(t0.Add(time.Minute)) {
			t.Fatalf("got entry %+v, want the pending one, until %v", e, t0.Add(time.Minute))
		}
		leasedFor(t, s.leaseExpires(t, "idempotency", "key = $1", "req-1"), start, time.Minute)
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 0; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 0; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("ErrPendingContentKey", func(t *testing.T) {
		t.Parallel()
		// The request ID is new but its content key is held by a request
		// executing inline: nothing is written, not even the new ID.
		db := openDB(t)
		useClock(db)
		if _, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-1", "bhid-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		e := mustCommit(t, db, newReceipt(t0, "req-2", `{"n":2}`, "bhid-1"))
		if e == nil || e.State != hooks.EntryPending || e.Key != "bhid-1" {
			t.Fatalf("got entry %+v, want bhid-1 pending", e)
		}
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "req-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("req-2: got %v, want ENOTFOUND", err)
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 0; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if _, err := db.FinishReserved(ctx, newReceipt(t0, "req-1", `{"n":1}`, "bhid-1"), testOwner); err != nil {
			t.Fatal(err)
		}
		e = mustCommit(t, db, newReceipt(t0, "req-2", `{"n":2}`, "bhid-1"))
		if e == nil || e.State != hooks.EntryDone || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("after finish: got entry %+v, want the done answer", e)
		}
	})

	t.Run("ErrDuplicateLaterKey", func(t *testing.T) {
		t.Parallel()
		// Only the third key was answered before: the keys in front of it
		// replay that answer, the ones after it are not taken, no job.
		db := openDB(t)
		useClock(db)
		mustCommit(t, db, newReceipt(t0, "req-1", `{"n":1}`, "bhid-c"))
		e := mustCommit(t, db, newReceipt(t0, "req-2", `{"n":2}`, "bhid-b", "bhid-c", "bhid-d"))
		if e == nil || e.Key != "bhid-c" || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("got entry %+v, want the first answer under bhid-c", e)
		}
		for _, k := range []string{"req-2", "bhid-b"} {
			if e := mustLookup(t, db, k); e.State != hooks.EntryDone || string(e.Response.Body) != `{"n":1}` {
				t.Errorf("entry %q: got %+v, want the first answer", k, e)
			}
		}
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "bhid-d"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("bhid-d: got %v, want ENOTFOUND", err)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("RepeatedKey", func(t *testing.T) {
		t.Parallel()
		// A receipt naming the same key twice is one new request.
		db := openDB(t)
		useClock(db)
		r := newReceipt(t0, "SendEvent1/bhid:1", `{"n":1}`, "SendEvent1/bhid:1")
		if e, err := db.SaveReceipt(ctx, r); err != nil || e != nil || r.Request.DuplicateOf != 0 {
			t.Fatalf("got %+v, %v, duplicate of %d; want nil, nil, 0", e, err, r.Request.DuplicateOf)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("PendingExpired", func(t *testing.T) {
		t.Parallel()
		// The holder of a pending key died: once its lease expired, by the
		// database's clock, the key is taken over and the receipt written.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		keys := []string{"req-1", "bhid-1"}
		if _, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, keys, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		s.expireKeys(t)
		r := newReceipt(t0, "req-1", `{"n":2}`, "bhid-1")
		if e := mustCommit(t, db, r); e != nil {
			t.Fatalf("got entry %+v, want nil", e)
		}
		for _, k := range keys {
			if e := mustLookup(t, db, k); e.State != hooks.EntryDone || e.RequestRef != r.Request.ID ||
				string(e.Response.Body) != `{"n":2}` || !e.CreatedAt.Equal(t0) {
				t.Errorf("entry %q: got %+v, want done for request %d", k, e, r.Request.ID)
			}
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		// The reservation's owner can no longer finish.
		if _, err := db.FinishReserved(ctx, newReceipt(t0, "req-1", `{"n":1}`, "bhid-1"), testOwner); err != nil {
			t.Fatal(err)
		}
		if got := string(mustLookup(t, db, "req-1").Response.Body); got != `{"n":2}` {
			t.Errorf("answer after the old owner finished: got %s, want {\"n\":2}", got)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		// 50 requests with the same ID at once: one is processed, 49 get
		// its answer.
		db := openDB(t)
		useClock(db)
		const n = 50
		answers := make([]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := newReceipt(t0, "req-1", fmt.Sprintf(`{"n":%d}`, i))
				<-start
				e, err := db.SaveReceipt(ctx, r)
				switch {
				case err != nil:
					errs[i] = err
				case e == nil:
					answers[i] = string(r.Request.Response)
				case e.State != hooks.EntryDone:
					errs[i] = fmt.Errorf("got %s entry, want done", e.State)
				default:
					answers[i] = string(e.Response.Body)
				}
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("save %d: %v", i, errs[i])
			}
			if answers[i] != answers[0] {
				t.Fatalf("answer %d: got %s, want %s (as answer 0)", i, answers[i], answers[0])
			}
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := mustFindRequests(t, db, hooks.RequestFilter{Limit: 1000})
		originals := 0
		for _, r := range reqs {
			if r.DuplicateOf == 0 {
				originals++
			}
			if string(r.Response) != answers[0] {
				t.Errorf("record %d: response got %s, want %s", r.ID, r.Response, answers[0])
			}
		}
		if len(reqs) != n || originals != 1 {
			t.Fatalf("records: got %d with %d originals, want %d with 1", len(reqs), originals, n)
		}
	})

	t.Run("ConcurrentDistinct", func(t *testing.T) {
		t.Parallel()
		// 200 requests with distinct keys at once are all written.
		db := openDB(t)
		useClock(db)
		const n = 200
		receipts := make([]*hooks.Receipt, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range receipts {
			receipts[i] = newReceipt(t0, fmt.Sprintf("req-%d", i), fmt.Sprintf(`{"n":%d}`, i), fmt.Sprintf("bhid-%d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				e, err := db.SaveReceipt(ctx, receipts[i])
				if err == nil && e != nil {
					err = fmt.Errorf("got entry %+v, want nil", e)
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
		}
		jobs := mustFindJobs(t, db, hooks.JobFilter{Limit: 1000})
		if got, want := len(jobs), n; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		byRequest := map[int64]int64{}
		for _, j := range jobs {
			byRequest[j.RequestRef] = j.ID
		}
		for i, r := range receipts {
			if byRequest[r.Request.ID] != r.Job.ID {
				t.Errorf("receipt %d: job %d for request %d, stored %d", i, r.Job.ID, r.Request.ID, byRequest[r.Request.ID])
			}
			e := mustLookup(t, db, fmt.Sprintf("bhid-%d", i))
			if got, want := string(e.Response.Body), fmt.Sprintf(`{"n":%d}`, i); got != want || e.RequestRef != r.Request.ID {
				t.Errorf("entry bhid-%d: got %s for %d, want %s for %d", i, got, e.RequestRef, want, r.Request.ID)
			}
		}
	})

	t.Run("ErrCanceled", func(t *testing.T) {
		t.Parallel()
		// A context already done fails fast and writes nothing, or, if the
		// write won the race into the queue, is saved in full. Never half.
		db := openDB(t)
		useClock(db)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := db.SaveReceipt(cctx, newReceipt(t0, "req-1", `{}`))
		n := len(mustFindRequests(t, db, hooks.RequestFilter{}))
		j := len(mustFindJobs(t, db, hooks.JobFilter{}))
		switch {
		case err == nil && (n != 1 || j != 1):
			t.Fatalf("saved: got %d records, %d jobs; want 1, 1", n, j)
		case err != nil && (n != 0 || j != 0):
			t.Fatalf("failed with %v: got %d records, %d jobs; want 0, 0", err, n, j)
		}
	})
}

func TestDB_SaveReceiptItems(t *testing.T) {
	t.Parallel()
	// A batch's customers: each is queued under its own key, once; a
	// retried batch queues only the ones it did not have before, and an
	// item without a key is queued every time.
	db := openDB(t)
	useClock(db)
	batch := func(rid string, keys ...string) *hooks.Receipt {
		r := newReceipt(t0, rid, `{"accepted":true}`)
		r.Job = nil
		r.Request.Sender = hooks.SenderBloomreach
		for _, k := range keys {
			j := hooks.NewJob(r.Request, t0)
			j.Payload = []byte(fmt.Sprintf(`{"item":%q}`, k))
			r.Items = append(r.Items, &hooks.ReceiptItem{Key: k, Job: j})
		}
		return r
	}
	first := batch("req-1", "a", "b", "", "a")
	if e := mustCommit(t, db, first); e != nil {
		t.Fatalf("first batch: got entry %+v, want nil", e)
	}
	if got, want := fmt.Sprint(first.Items[0].Duplicate, first.Items[1].Duplicate, first.Items[2].Duplicate, first.Items[3].Duplicate),
		"false false false true"; got != want {
		t.Fatalf("first batch's duplicates: got %s, want %s (the same key twice in one batch)", got, want)
	}
	second := batch("req-2", "b", "c", "")
	mustCommit(t, db, second)
	if got, want := fmt.Sprint(second.Items[0].Duplicate, second.Items[1].Duplicate, second.Items[2].Duplicate),
		"true false false"; got != want {
		t.Fatalf("second batch's duplicates: got %s, want %s", got, want)
	}
	jobs := mustFindJobs(t, db, hooks.JobFilter{})
	if got, want := len(jobs), 5; got != want {
		t.Fatalf("jobs: got %d, want %d (a, b, one keyless; c, one keyless)", got, want)
	}
	// Each item's job carries its own payload, claimed as its body.
	want := map[int64]string{}
	for _, r := range []*hooks.Receipt{first, second} {
		for _, it := range r.Items {
			if !it.Duplicate {
				want[it.Job.ID] = string(it.Job.Payload)
			}
		}
	}
	claimed := mustClaim(t, db, t0, time.Minute, 10)
	if len(claimed) != 5 {
		t.Fatalf("claimed: got %d, want 5", len(claimed))
	}
	for _, j := range claimed {
		if string(j.Body) != want[j.ID] || string(j.Payload) != want[j.ID] {
			t.Errorf("job %d: body %s, payload %s; want %s", j.ID, j.Body, j.Payload, want[j.ID])
		}
	}
	// The item keys are answered under the sender's namespace.
	if _, err := db.LookupKey(context.Background(), hooks.SenderBloomreach, "c"); err != nil {
		t.Errorf("item key c: %v", err)
	}
}

func TestDB_ReserveKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		keys := []string{"req-1", "bhid-1"}
		start := time.Now()
		if e, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute)); err != nil || e != nil {
			t.Fatalf("got %+v, %v; want nil, nil", e, err)
		}
		for _, k := range keys {
			e := mustLookup(t, db, k)
			if e.State != hooks.EntryPending || !e.CreatedAt.Equal(t0) || !e.LockedUntil.Equal(t0.Add(time.Minute)) {
				t.Errorf("entry %q: got %+v, want pending until %v, created at %v", k, e, t0.Add(time.Minute), t0)
			}
			leasedFor(t, s.leaseExpires(t, "idempotency", "key = $1", k), start, time.Minute)
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 0; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
	})

	t.Run("ErrPending", func(t *testing.T) {
		t.Parallel()
		// The same keys again while the lease is live: the pending entry,
		// and nothing written.
		db := openDB(t)
		useClock(db)
		if _, err := db.ReserveKeys(ctx, sender, []string{"req-1", "bhid-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		until := mustLookup(t, db, "req-1").LockedUntil
		for _, keys := range [][]string{{"req-1", "bhid-1"}, {"req-2", "bhid-1"}} {
			e, err := db.ReserveKeys(ctx, sender, keys, testOwner+1, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if e == nil || e.State != hooks.EntryPending || !e.LockedUntil.Equal(until) {
				t.Fatalf("reserve %v: got entry %+v, want pending until %v", keys, e, until)
			}
		}
		if _, err := db.LookupKey(ctx, sender, "req-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("req-2: got %v, want ENOTFOUND", err)
		}
		if got := mustLookup(t, db, "req-1").LockedUntil; !got.Equal(until) {
			t.Errorf("lease: got %v, want %v", got, until)
		}
	})

	t.Run("ErrDone", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustCommit(t, db, first)
		e, err := db.ReserveKeys(ctx, sender, []string{"req-2", "bhid-1"}, testOwner, t0.Add(time.Minute))
		if err != nil || e == nil || e.State != hooks.EntryDone || e.Key != "bhid-1" || e.RequestRef != first.Request.ID {
			t.Fatalf("got %+v, %v; want done with the first answer", e, err)
		}
		if _, err := db.LookupKey(ctx, sender, "req-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("req-2: got %v, want ENOTFOUND (nothing reserved)", err)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		// A pending lease that expired, by the database's clock, is taken
		// over; one still live by it is not, whatever the caller's clock.
		s := newSchema(t)
		db := s.open(t)
		clk := useClock(db)
		if _, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner, t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
		if e, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner+1, clk.Now().Add(time.Minute)); err != nil || e == nil {
			t.Fatalf("before expiry by the database's clock: got %+v, %v; want the pending entry", e, err)
		}
		s.expireKeys(t)
		start := time.Now()
		if e, err := db.ReserveKeys(ctx, sender, []string{"req-1", "bhid-1"}, testOwner+1, clk.Now().Add(time.Minute)); err != nil || e != nil {
			t.Fatalf("after expiry: got %+v, %v; want nil, nil", e, err)
		}
		for _, k := range []string{"req-1", "bhid-1"} {
			e := mustLookup(t, db, k)
			if e.State != hooks.EntryPending || !e.LockedUntil.Equal(clk.Now().Add(time.Minute)) {
				t.Errorf("entry %q: got %+v, want pending until %v", k, e, clk.Now().Add(time.Minute))
			}
			leasedFor(t, s.leaseExpires(t, "idempotency", "key = $1", k), start, time.Minute)
		}
		// The first owner lost it: it cannot release the new owner's keys.
		if err := db.ReleaseKeys(ctx, sender, []string{"req-1"}, testOwner); err != nil {
			t.Fatal(err)
		}
		mustLookup(t, db, "req-1")
	})
}

func TestDB_FinishReserved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		keys := []string{"req-1", "bhid-1"}
		if _, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		r := newReceipt(t0, "req-1", `{"output":42}`, "bhid-1")
		if lost, err := db.FinishReserved(ctx, r, testOwner); err != nil || lost != nil {
			t.Fatalf("got %+v, %v; want nil, nil", lost, err)
		}
		for _, k := range keys {
			e := mustLookup(t, db, k)
			if e.State != hooks.EntryDone || e.RequestRef != r.Request.ID || string(e.Response.Body) != `{"output":42}` ||
				!e.LockedUntil.IsZero() {
				t.Errorf("entry %q: got %+v, want done with the answer of request %d", k, e, r.Request.ID)
			}
		}
		jobs := mustFindJobs(t, db, hooks.JobFilter{})
		if len(jobs) != 1 || jobs[0].RequestRef != r.Request.ID {
			t.Fatalf("jobs: got %+v, want one for request %d", jobs, r.Request.ID)
		}
		e, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute))
		if err != nil || e == nil || string(e.Response.Body) != `{"output":42}` {
			t.Fatalf("reserve after finish: got %+v, %v; want the done entry", e, err)
		}
	})

	t.Run("NoJob", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		useClock(db)
		if _, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		r := newReceipt(t0, "req-1", `{}`)
		r.Job = nil
		if _, err := db.FinishReserved(ctx, r, testOwner); err != nil {
			t.Fatal(err)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 0; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})
}

// An execution that ran past its lease, and whose key a retry took over,
// keeps no answer: if the retry has answered, that answer is returned for
// this request too; if the retry is still running, this request gets a
// conflict.
func TestDB_FinishReservedTakenOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := hooks.SenderBubblehouse
	const other = testOwner + 1
	for _, tt := range []struct {
		name      string
		retryDone bool
	}{
		{"RetryAnswered", true},
		{"RetryRunning", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSchema(t)
			db := s.open(t)
			useClock(db)
			if _, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner, t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			s.expireKeys(t) // the first execution overran its lease
			if e, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, other, t0.Add(time.Minute)); err != nil || e != nil {
				t.Fatalf("takeover: %+v, %v", e, err)
			}
			if tt.retryDone {
				if _, err := db.FinishReserved(ctx, newReceipt(t0, "req-1", `{"who":"retry"}`), other); err != nil {
					t.Fatal(err)
				}
			}
			lost, err := db.FinishReserved(ctx, newReceipt(t0, "req-1", `{"who":"first"}`), testOwner)
			switch {
			case !tt.retryDone && hooks.ErrorCode(err) != hooks.ECONFLICT:
				t.Fatalf("first execution: %+v, %v; want a conflict", lost, err)
			case tt.retryDone && (err != nil || lost == nil || string(lost.Response.Body) != `{"who":"retry"}`):
				t.Fatalf("first execution: %+v, %v; want the retry's answer", lost, err)
			}
			if !tt.retryDone {
				if e := mustLookup(t, db, "req-1"); e.State != hooks.EntryPending {
					t.Fatalf("key: %+v, want still the retry's, pending", e)
				}
				if recs := mustFindRequests(t, db, hooks.RequestFilter{RequestID: "req-1"}); len(recs) != 0 {
					t.Fatalf("records: %+v, want none yet", recs)
				}
			}
		})
	}
}

func TestDB_ReleaseKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := hooks.SenderBubblehouse
	db := openDB(t)
	useClock(db)
	keys := []string{"req-1", "bhid-1"}
	if _, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Another owner's release leaves them alone.
	if err := db.ReleaseKeys(ctx, sender, keys, testOwner+1); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, db, "req-1")
	if err := db.ReleaseKeys(ctx, sender, keys, testOwner); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, err := db.LookupKey(ctx, sender, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("entry %q: got %v, want ENOTFOUND", k, err)
		}
	}
	// Release never drops an answer.
	mustCommit(t, db, newReceipt(t0, "req-1", `{"n":1}`))
	if err := db.ReleaseKeys(ctx, sender, []string{"req-1", "never-taken"}, testOwner); err != nil {
		t.Fatal(err)
	}
	if got, want := mustLookup(t, db, "req-1").State, hooks.EntryDone; got != want {
		t.Fatalf("state: got %s, want %s", got, want)
	}
}

func TestDB_Record(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	useClock(db)
	req := newReceipt(t0, "req-1", `{"error":"unauthorized"}`).Request
	req.Status = http.StatusUnauthorized
	req.Note("bad token")
	req.Header = nil
	if err := db.Record(ctx, req); err != nil {
		t.Fatal(err)
	}
	reqs := mustFindRequests(t, db, hooks.RequestFilter{})
	if len(reqs) != 1 || reqs[0].ID != req.ID || reqs[0].Status != http.StatusUnauthorized ||
		fmt.Sprint(reqs[0].Notes) != "[bad token]" {
		t.Fatalf("records: got %+v, want the refusal", reqs)
	}
	if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "req-1"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		t.Errorf("lookup: got %v, want ENOTFOUND", err)
	}
}

func TestDB_PurgeIdempotency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := hooks.SenderBubblehouse
	db := openDB(t)
	clk := useClock(db)
	const old, young = 2500, 1200
	reserve := func(prefix string, n int) {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s-%d", prefix, i)
		}
		if _, err := db.ReserveKeys(ctx, sender, keys, testOwner, clk.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	reserve("old", old)
	mustCommit(t, db, newReceipt(t0, "old-done", `{}`))
	if _, err := db.ReserveKeys(ctx, hooks.SenderSvix, []string{"svix-1"}, testOwner, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	cutoff := clk.Add(72 * time.Hour)
	reserve("young", young) // created at the cutoff: kept
	n, err := db.PurgeIdempotency(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(old+2); got != want {
		t.Fatalf("purged: got %d, want %d", got, want)
	}
	for _, k := range []string{"old-0", "old-2499", "old-done"} {
		if _, err := db.LookupKey(ctx, sender, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("%s: got %v, want ENOTFOUND", k, err)
		}
	}
	mustLookup(t, db, "young-0")
	// The records and jobs stay; only the answers are forgotten.
	if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 1; got != want {
		t.Errorf("requests: got %d, want %d", got, want)
	}
	if n, err := db.PurgeIdempotency(ctx, cutoff.Add(time.Microsecond)); err != nil || n != young {
		t.Fatalf("purge the rest: got %d, %v; want %d, nil", n, err, young)
	}
}

func TestDB_FindRequests(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	useClock(db)
	var ids []int64
	for i, name := range []string{"SendEvent1", "SendEvent1", "ProcessOrder"} {
		r := newReceipt(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("req-%d", i), `{}`)
		r.Request.Name = name
		if i == 1 {
			r.Request.Status = http.StatusServiceUnavailable
			r.Request.Body = []byte(`{"needle":"hay"}`)
		}
		mustCommit(t, db, r)
		ids = append(ids, r.Request.ID)
	}
	svix := newReceipt(t0.Add(3*time.Second), "msg-1", `{}`)
	svix.Request.Sender, svix.Job.Sender = hooks.SenderSvix, hooks.SenderSvix
	svix.Request.Header.Set("Webhook-Id", "msg-needle")
	mustCommit(t, db, svix)

	for _, tt := range []struct {
		name string
		f    hooks.RequestFilter
		want []int64
	}{
		{"All", hooks.RequestFilter{}, []int64{svix.Request.ID, ids[2], ids[1], ids[0]}},
		{"ID", hooks.RequestFilter{ID: ids[1]}, []int64{ids[1]}},
		{"Sender", hooks.RequestFilter{Sender: hooks.SenderBubblehouse}, []int64{ids[2], ids[1], ids[0]}},
		{"Name", hooks.RequestFilter{Name: "SendEvent1"}, []int64{svix.Request.ID, ids[1], ids[0]}},
		{"RequestID", hooks.RequestFilter{RequestID: "req-1"}, []int64{ids[1]}},
		{"Status", hooks.RequestFilter{Status: http.StatusServiceUnavailable}, []int64{ids[1]}},
		{"StatusClass", hooks.RequestFilter{StatusClass: 2}, []int64{svix.Request.ID, ids[2], ids[0]}},
		{"StatusWins", hooks.RequestFilter{Status: http.StatusServiceUnavailable, StatusClass: 2}, []int64{ids[1]}},
		{"SearchBody", hooks.RequestFilter{Search: `"needle"`}, []int64{ids[1]}},
		{"SearchBoth", hooks.RequestFilter{Search: "needle"}, []int64{svix.Request.ID, ids[1]}},
		{"SinceUntil", hooks.RequestFilter{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, []int64{ids[2], ids[1]}},
		{"BeforeID", hooks.RequestFilter{BeforeID: ids[2], Limit: 1}, []int64{ids[1]}},
		{"AfterID", hooks.RequestFilter{AfterID: ids[0], BeforeID: ids[2]}, []int64{ids[1]}},
		{"Limit", hooks.RequestFilter{Limit: 2}, []int64{svix.Request.ID, ids[2]}},
		{"None", hooks.RequestFilter{Sender: hooks.SenderBloomreach}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []int64
			for _, r := range mustFindRequests(t, db, tt.f) {
				got = append(got, r.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
