package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

func TestDB_Commit(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		// Request record, every key and the job are written together.
		db := sqlitetest.Open(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{"ok":true}`, "bhid-1")
		r.Request.Notes = []string{"unknown urgency"}
		r.Request.Latency = 1500 * time.Microsecond
		if e := mustSave(t, db, r); e != nil {
			t.Fatalf("got entry %+v, want nil", e)
		}
		if r.Request.ID == 0 {
			t.Fatalf("request ID: got 0, want it set")
		}

		reqs := mustFindRequests(t, db, sqlite.RequestFilter{})
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

		jobs := mustFindJobs(t, db, sqlite.JobFilter{})
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
		db := sqlitetest.Open(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{}`)
		r.Job = nil
		if e := mustSave(t, db, r); e != nil {
			t.Fatalf("got entry %+v, want nil", e)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 0; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		if got, want := mustLookup(t, db, "req-1").RequestRef, r.Request.ID; got != want {
			t.Fatalf("entry request: got %d, want %d", got, want)
		}
	})

	t.Run("ErrDuplicate", func(t *testing.T) {
		// A repeat of the request ID gets the first answer, is recorded as
		// a duplicate, and queues nothing.
		db := sqlitetest.Open(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustSave(t, db, first)

		repeat := newReceipt(t0.Add(time.Second), "req-1", `{"n":2}`, "bhid-2")
		repeat.Request.Status = http.StatusAccepted
		e := mustSave(t, db, repeat)
		if e == nil {
			t.Fatalf("repeat: got nil entry, want the first answer")
		}
		if e.State != hooks.EntryDone || e.Key != "req-1" || e.RequestRef != first.Request.ID ||
			e.Response.Status != http.StatusOK || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("entry: got %+v, want done with the answer of request %d", e, first.Request.ID)
		}

		reqs := mustFindRequests(t, db, sqlite.RequestFilter{RequestID: "req-1"})
		if got, want := len(reqs), 2; got != want {
			t.Fatalf("records: got %d, want %d", got, want)
		}
		rec := reqs[0] // newest first
		if got, want := rec.ID, repeat.Request.ID; got != want {
			t.Fatalf("repeat's record ID: got %d, want %d", got, want)
		}
		if got, want := rec.DuplicateOf, first.Request.ID; got != want {
			t.Errorf("DuplicateOf: got %d, want %d", got, want)
		}
		if got, want := rec.Status, http.StatusOK; got != want {
			t.Errorf("recorded status: got %d, want %d", got, want)
		}
		if got, want := string(rec.Response), `{"n":1}`; got != want {
			t.Errorf("recorded response: got %s, want %s", got, want)
		}
		if !hasNote(rec.Notes, "duplicate of request") {
			t.Errorf("notes: got %q, want a duplicate note", rec.Notes)
		}
		if got, want := reqs[1].DuplicateOf, int64(0); got != want {
			t.Errorf("original's DuplicateOf: got %d, want %d", got, want)
		}

		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if repeat.Job.ID != 0 {
			t.Errorf("repeat's job ID: got %d, want 0 (not queued)", repeat.Job.ID)
		}
		// The repeat's new content key is not stored: only the first
		// request's keys answer.
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "bhid-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("repeat's content key: got %v, want ENOTFOUND", err)
		}
	})

	t.Run("ErrDuplicateContentKey", func(t *testing.T) {
		// A new request ID carrying a content key already answered (the
		// same SendEvent1 bhid resent under a new request ID) gets the first
		// answer; its request ID is remembered so that its own retries
		// replay that answer too.
		db := sqlitetest.Open(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustSave(t, db, first)

		second := newReceipt(t0, "req-2", `{"n":2}`, "bhid-1")
		e := mustSave(t, db, second)
		if e == nil {
			t.Fatalf("second: got nil entry, want the first answer")
		}
		if e.State != hooks.EntryDone || e.Key != "bhid-1" || e.RequestRef != first.Request.ID ||
			string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("entry: got %+v, want done under bhid-1 with the answer of request %d", e, first.Request.ID)
		}
		recs := mustFindRequests(t, db, sqlite.RequestFilter{RequestID: "req-2"})
		if got, want := len(recs), 1; got != want {
			t.Fatalf("records of req-2: got %d, want %d", got, want)
		}
		if got, want := recs[0].DuplicateOf, first.Request.ID; got != want {
			t.Errorf("DuplicateOf: got %d, want %d", got, want)
		}
		if !hasNote(recs[0].Notes, `"bhid-1"`) {
			t.Errorf("notes: got %q, want a note naming the content key", recs[0].Notes)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		e2 := mustLookup(t, db, "req-2")
		if e2.State != hooks.EntryDone || string(e2.Response.Body) != `{"n":1}` || e2.Response.Status != http.StatusOK {
			t.Errorf("entry of req-2: got %+v, want done with the first answer", e2)
		}

		// The sender retries req-2: replayed from its own key.
		retry := newReceipt(t0, "req-2", `{"n":3}`, "bhid-1")
		e = mustSave(t, db, retry)
		if e == nil || e.Key != "req-2" || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("retry of req-2: got entry %+v, want the first answer under req-2", e)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 3; got != want {
			t.Errorf("records: got %d, want %d", got, want)
		}
	})

	t.Run("ErrDuplicateContentKeyRefersToOriginal", func(t *testing.T) {
		// Entry.RequestRef is "the request that produced the answer" and
		// Request.DuplicateOf "the ID of the original request": a request ID
		// remembered for a content-key duplicate must point at the original,
		// not at the duplicate's own record (which has no job).
		db := sqlitetest.Open(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustSave(t, db, first)
		mustSave(t, db, newReceipt(t0, "req-2", `{"n":2}`, "bhid-1"))

		if got, want := mustLookup(t, db, "req-2").RequestRef, first.Request.ID; got != want {
			t.Errorf("RequestRef of req-2's entry: got %d, want %d", got, want)
		}
		retry := newReceipt(t0, "req-2", `{"n":3}`, "bhid-1")
		mustSave(t, db, retry)
		if got, want := retry.Request.DuplicateOf, first.Request.ID; got != want {
			t.Errorf("DuplicateOf of req-2's retry: got %d, want %d", got, want)
		}
	})

	t.Run("ContentKeyOnly", func(t *testing.T) {
		// Without a request ID the content keys alone de-duplicate.
		db := sqlitetest.Open(t)
		useClock(db)
		first := newReceipt(t0, "", `{"n":1}`, "bhid-1", "bhid-2")
		mustSave(t, db, first)
		e := mustSave(t, db, newReceipt(t0, "", `{"n":2}`, "bhid-3", "bhid-2"))
		if e == nil || e.Key != "bhid-2" || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("got entry %+v, want the first answer under bhid-2", e)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("NoKeys", func(t *testing.T) {
		// A request without any key is processed every time.
		db := sqlitetest.Open(t)
		useClock(db)
		for i := 0; i < 3; i++ {
			r := newReceipt(t0, "", `{}`)
			if e := mustSave(t, db, r); e != nil {
				t.Fatalf("commit %d: got entry %+v, want nil", i, e)
			}
		}
		reqs := mustFindRequests(t, db, sqlite.RequestFilter{})
		if got, want := len(reqs), 3; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		for _, r := range reqs {
			if r.DuplicateOf != 0 {
				t.Errorf("request %d: DuplicateOf got %d, want 0", r.ID, r.DuplicateOf)
			}
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 3; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("SenderNamespace", func(t *testing.T) {
		// Keys are per sender: the same ID from another sender is new.
		db := sqlitetest.Open(t)
		useClock(db)
		mustSave(t, db, newReceipt(t0, "req-1", `{"n":1}`))
		other := newReceipt(t0, "req-1", `{"n":2}`)
		other.Request.Sender = hooks.SenderSvix
		other.Job.Sender = hooks.SenderSvix
		if e := mustSave(t, db, other); e != nil {
			t.Fatalf("other sender: got entry %+v, want nil", e)
		}
		e, err := db.LookupKey(ctx, hooks.SenderSvix, "req-1")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(e.Response.Body), `{"n":2}`; got != want {
			t.Fatalf("svix answer: got %s, want %s", got, want)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 2; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("ErrPending", func(t *testing.T) {
		// A key held by a request executing inline, under a live lease:
		// Commit returns the pending entry and writes nothing.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		until := t0.Add(time.Minute)
		if e, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-1"}, testOwner, until); err != nil || e != nil {
			t.Fatalf("reserve: got %+v, %v; want nil, nil", e, err)
		}
		clk.Add(59 * time.Second)
		r := newReceipt(t0, "req-1", `{"n":2}`)
		e := mustSave(t, db, r)
		if e == nil {
			t.Fatalf("got nil entry, want the pending one")
		}
		if e.State != hooks.EntryPending || e.Key != "req-1" || !e.LockedUntil.Equal(until) {
			t.Fatalf("entry: got %+v, want pending until %v", e, until)
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 0; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 0; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := mustLookup(t, db, "req-1").State, hooks.EntryPending; got != want {
			t.Errorf("entry state: got %s, want %s", got, want)
		}
	})

	t.Run("ErrPendingContentKey", func(t *testing.T) {
		// The request ID is new but its content key is held by a request
		// executing inline: nothing is written, not even the new ID.
		db := sqlitetest.Open(t)
		useClock(db)
		until := t0.Add(time.Minute)
		if _, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-1", "bhid-1"}, testOwner, until); err != nil {
			t.Fatal(err)
		}
		r := newReceipt(t0, "req-2", `{"n":2}`, "bhid-1")
		e := mustSave(t, db, r)
		if e == nil || e.State != hooks.EntryPending || e.Key != "bhid-1" || !e.LockedUntil.Equal(until) {
			t.Fatalf("got entry %+v, want bhid-1 pending until %v", e, until)
		}
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "req-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("req-2: got %v, want ENOTFOUND", err)
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 0; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 0; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		// Once the holder finishes, the same receipt replays its answer.
		if _, err := db.FinishReserved(ctx, newReceipt(t0, "req-1", `{"n":1}`, "bhid-1"), testOwner); err != nil {
			t.Fatal(err)
		}
		e = mustSave(t, db, newReceipt(t0, "req-2", `{"n":2}`, "bhid-1"))
		if e == nil || e.State != hooks.EntryDone || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("after finish: got entry %+v, want the done answer", e)
		}
	})

	t.Run("ErrDuplicateLaterKey", func(t *testing.T) {
		// Only the third key was answered before: the keys in front of it
		// replay that answer, the ones after it are not taken, no job.
		db := sqlitetest.Open(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-c")
		mustSave(t, db, first)
		r := newReceipt(t0, "req-2", `{"n":2}`, "bhid-b", "bhid-c", "bhid-d")
		e := mustSave(t, db, r)
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
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("RepeatedKey", func(t *testing.T) {
		// A receipt naming the same key twice (a request ID equal to its
		// content key) is one new request, not a duplicate of itself: it
		// is answered 202, so its job must be queued.
		db := sqlitetest.Open(t)
		useClock(db)
		r := newReceipt(t0, "SendEvent1/bhid:1", `{"n":1}`, "SendEvent1/bhid:1")
		e, err := db.SaveReceipt(ctx, r)
		if err != nil || e != nil {
			t.Errorf("got %+v, %v; want nil, nil", e, err)
		}
		if got, want := r.Request.DuplicateOf, int64(0); got != want {
			t.Errorf("DuplicateOf: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("PendingExpired", func(t *testing.T) {
		// The holder of a pending key died: once its lease expires the
		// key is taken over and the receipt written.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		if _, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		now := clk.Add(time.Minute)
		r := newReceipt(now, "req-1", `{"n":2}`)
		if e := mustSave(t, db, r); e != nil {
			t.Fatalf("got entry %+v, want nil", e)
		}
		e := mustLookup(t, db, "req-1")
		if e.State != hooks.EntryDone || e.RequestRef != r.Request.ID || string(e.Response.Body) != `{"n":2}` {
			t.Fatalf("entry: got %+v, want done with the answer of request %d", e, r.Request.ID)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 1; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
	})

	t.Run("PendingExpiredSeveralKeys", func(t *testing.T) {
		// Reserve took the request ID and a content key; the process died.
		// The sender's retry, committed, must take over both keys.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		keys := []string{"req-1", "bhid-1"}
		if _, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, keys, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		now := clk.Add(2 * time.Minute)
		r := newReceipt(now, "req-1", `{"n":2}`, "bhid-1")
		e, err := db.SaveReceipt(ctx, r)
		if err != nil || e != nil {
			t.Fatalf("got %+v, %v; want nil, nil", e, err)
		}
		for _, k := range keys {
			if e := mustLookup(t, db, k); e.State != hooks.EntryDone || e.RequestRef != r.Request.ID {
				t.Errorf("entry %q: got %+v, want done for request %d", k, e, r.Request.ID)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// 50 requests with the same ID at once: one is processed, 49 get
		// its answer.
		db := sqlitetest.Open(t)
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
		for i, err := range errs {
			if err != nil {
				t.Fatalf("commit %d: %v", i, err)
			}
		}
		for i, a := range answers {
			if a != answers[0] {
				t.Fatalf("answer %d: got %s, want %s (as answer 0)", i, a, answers[0])
			}
		}

		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := mustFindRequests(t, db, sqlite.RequestFilter{Limit: 1000})
		if got, want := len(reqs), n; got != want {
			t.Fatalf("records: got %d, want %d", got, want)
		}
		var originals []*hooks.Request
		for _, r := range reqs {
			if r.DuplicateOf == 0 {
				originals = append(originals, r)
			}
		}
		if got, want := len(originals), 1; got != want {
			t.Fatalf("records with DuplicateOf 0: got %d, want %d", got, want)
		}
		for _, r := range reqs {
			if r.DuplicateOf != 0 && r.DuplicateOf != originals[0].ID {
				t.Errorf("record %d: DuplicateOf got %d, want %d", r.ID, r.DuplicateOf, originals[0].ID)
			}
			if got, want := string(r.Response), answers[0]; got != want {
				t.Errorf("record %d: response got %s, want %s", r.ID, got, want)
			}
		}
		if got, want := string(originals[0].Response), answers[0]; got != want {
			t.Errorf("original's response: got %s, want %s", got, want)
		}
	})

	t.Run("ConcurrentDistinct", func(t *testing.T) {
		// 200 requests with distinct keys at once are all written; the
		// writer commits them in shared transactions.
		db := sqlitetest.Open(t)
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
				t.Fatalf("commit %d: %v", i, err)
			}
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{Limit: 1000})), n; got != want {
			t.Errorf("records: got %d, want %d", got, want)
		}
		jobs := mustFindJobs(t, db, sqlite.JobFilter{Limit: 1000})
		if got, want := len(jobs), n; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		ids := map[int64]bool{}
		for _, j := range jobs {
			ids[j.RequestRef] = true
		}
		for i, r := range receipts {
			if !ids[r.Request.ID] {
				t.Errorf("receipt %d: no job for request %d", i, r.Request.ID)
			}
			e := mustLookup(t, db, fmt.Sprintf("bhid-%d", i))
			if got, want := string(e.Response.Body), fmt.Sprintf(`{"n":%d}`, i); got != want || e.RequestRef != r.Request.ID {
				t.Errorf("entry bhid-%d: got %s for %d, want %s for %d", i, got, e.RequestRef, want, r.Request.ID)
			}
		}
	})

	t.Run("ErrCanceled", func(t *testing.T) {
		// A context already done before the write is queued fails fast
		// and writes nothing... or, if the write won the race into the
		// queue, is committed in full. Never half.
		db := sqlitetest.Open(t)
		useClock(db)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		r := newReceipt(t0, "req-1", `{}`)
		_, err := db.SaveReceipt(cctx, r)
		n := len(mustFindRequests(t, db, sqlite.RequestFilter{}))
		j := len(mustFindJobs(t, db, sqlite.JobFilter{}))
		switch {
		case err == nil && (n != 1 || j != 1):
			t.Fatalf("committed: got %d records, %d jobs; want 1, 1", n, j)
		case err != nil && (n != 0 || j != 0):
			t.Fatalf("failed with %v: got %d records, %d jobs; want 0, 0", err, n, j)
		}
	})
}

func TestDB_Reserve(t *testing.T) {
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		keys := []string{"req-1", "bhid-1"}
		until := t0.Add(time.Minute)
		if e, err := db.ReserveKeys(ctx, sender, keys, testOwner, until); err != nil || e != nil {
			t.Fatalf("got %+v, %v; want nil, nil", e, err)
		}
		for _, k := range keys {
			e := mustLookup(t, db, k)
			if e.State != hooks.EntryPending || !e.LockedUntil.Equal(until) || !e.CreatedAt.Equal(t0) {
				t.Errorf("entry %q: got %+v, want pending until %v", k, e, until)
			}
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 0; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
	})

	t.Run("ErrPending", func(t *testing.T) {
		// The same keys again, while the lease is live: the pending entry.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		until := t0.Add(time.Minute)
		if _, err := db.ReserveKeys(ctx, sender, []string{"req-1", "bhid-1"}, testOwner, until); err != nil {
			t.Fatal(err)
		}
		clk.Add(30 * time.Second)
		for _, keys := range [][]string{{"req-1", "bhid-1"}, {"req-2", "bhid-1"}} {
			e, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if e == nil || e.State != hooks.EntryPending || !e.LockedUntil.Equal(until) {
				t.Fatalf("reserve %v: got entry %+v, want pending until %v", keys, e, until)
			}
		}
		// Nothing was written by the refused reservations.
		if _, err := db.LookupKey(ctx, sender, "req-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("req-2: got %v, want ENOTFOUND", err)
		}
		if got := mustLookup(t, db, "req-1").LockedUntil; !got.Equal(until) {
			t.Errorf("lease: got %v, want %v", got, until)
		}
	})

	t.Run("ErrDone", func(t *testing.T) {
		// A key already answered: the done entry, to replay.
		db := sqlitetest.Open(t)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`, "bhid-1")
		mustSave(t, db, first)
		e, err := db.ReserveKeys(ctx, sender, []string{"req-2", "bhid-1"}, testOwner, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.State != hooks.EntryDone || e.Key != "bhid-1" || string(e.Response.Body) != `{"n":1}` ||
			e.RequestRef != first.Request.ID {
			t.Fatalf("got entry %+v, want done with the first answer", e)
		}
		if _, err := db.LookupKey(ctx, sender, "req-2"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("req-2: got %v, want ENOTFOUND (nothing reserved)", err)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		// A pending lease that expired is taken over.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		if _, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		now := clk.Add(time.Minute)
		until := now.Add(time.Minute)
		if e, err := db.ReserveKeys(ctx, sender, []string{"req-1", "bhid-1"}, testOwner, until); err != nil || e != nil {
			t.Fatalf("got %+v, %v; want nil, nil", e, err)
		}
		for _, k := range []string{"req-1", "bhid-1"} {
			if e := mustLookup(t, db, k); e.State != hooks.EntryPending || !e.LockedUntil.Equal(until) {
				t.Errorf("entry %q: got %+v, want pending until %v", k, e, until)
			}
		}
	})
}

func TestDB_Finish(t *testing.T) {
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		keys := []string{"req-1", "bhid-1"}
		if _, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		r := newReceipt(t0, "req-1", `{"output":42}`, "bhid-1")
		if _, err := db.FinishReserved(ctx, r, testOwner); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			e := mustLookup(t, db, k)
			if e.State != hooks.EntryDone || e.RequestRef != r.Request.ID || e.Response.Status != http.StatusOK ||
				string(e.Response.Body) != `{"output":42}` || !e.LockedUntil.IsZero() {
				t.Errorf("entry %q: got %+v, want done with the answer of request %d", k, e, r.Request.ID)
			}
		}
		jobs := mustFindJobs(t, db, sqlite.JobFilter{})
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		if got, want := jobs[0].RequestRef, r.Request.ID; got != want {
			t.Errorf("job's request: got %d, want %d", got, want)
		}
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 1; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}

		// A repeat now gets the answer, from Reserve and from Commit.
		e, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute))
		if err != nil || e == nil || e.State != hooks.EntryDone || string(e.Response.Body) != `{"output":42}` {
			t.Fatalf("reserve after finish: got %+v, %v; want the done entry", e, err)
		}
		e = mustSave(t, db, newReceipt(t0, "req-1", `{}`, "bhid-1"))
		if e == nil || string(e.Response.Body) != `{"output":42}` {
			t.Fatalf("commit after finish: got %+v, want the done entry", e)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("NoJob", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		if _, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		r := newReceipt(t0, "req-1", `{}`)
		r.Job = nil
		if _, err := db.FinishReserved(ctx, r, testOwner); err != nil {
			t.Fatal(err)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 0; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := mustLookup(t, db, "req-1").State, hooks.EntryDone; got != want {
			t.Errorf("state: got %s, want %s", got, want)
		}
	})
}

// An execution that ran past its lease, and whose key a retry took over,
// keeps no answer: if the retry has answered, that answer is returned for
// this request too; if the retry is still running, this request gets a
// conflict (retry for the retry's answer), never an answer of its own
// that repeats would not replay.
func TestDB_FinishTakenOver(t *testing.T) {
	ctx := context.Background()
	sender := hooks.SenderBubblehouse
	const other = testOwner + 1
	for _, tt := range []struct {
		name         string
		retryDone    bool
		wantConflict bool
	}{
		{"RetryAnswered", true, false},
		{"RetryRunning", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := sqlitetest.Open(t)
			clk := useClock(db)
			if _, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner, t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			clk.Add(2 * time.Second) // the first execution overran its lease
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
			case tt.wantConflict && hooks.ErrorCode(err) != hooks.ECONFLICT:
				t.Fatalf("first execution: %+v, %v; want a conflict", lost, err)
			case !tt.wantConflict && (err != nil || lost == nil || string(lost.Response.Body) != `{"who":"retry"}`):
				t.Fatalf("first execution: %+v, %v; want the retry's answer", lost, err)
			}
			if tt.wantConflict {
				if e := mustLookup(t, db, "req-1"); e.State != hooks.EntryPending {
					t.Fatalf("key: %+v, want still the retry's, pending", e)
				}
				// Nothing is recorded with the answer that was not sent:
				// the caller records the conflict it answers.
				if recs := mustFindRequests(t, db, sqlite.RequestFilter{RequestID: "req-1"}); len(recs) != 0 {
					t.Fatalf("records: %+v, want none yet", recs)
				}
			}
		})
	}
}

func TestDB_Release(t *testing.T) {
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		// Released keys are free: the retry executes.
		db := sqlitetest.Open(t)
		useClock(db)
		keys := []string{"req-1", "bhid-1"}
		if _, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseKeys(ctx, sender, keys, testOwner); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, err := db.LookupKey(ctx, sender, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("entry %q: got %v, want ENOTFOUND", k, err)
			}
		}
		if e, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute)); err != nil || e != nil {
			t.Fatalf("reserve again: got %+v, %v; want nil, nil", e, err)
		}
		if err := db.ReleaseKeys(ctx, sender, keys, testOwner); err != nil {
			t.Fatal(err)
		}
		if e := mustSave(t, db, newReceipt(t0, "req-1", `{}`, "bhid-1")); e != nil {
			t.Fatalf("commit after release: got %+v, want nil", e)
		}
	})

	t.Run("KeepsDone", func(t *testing.T) {
		// Release never drops an answer.
		db := sqlitetest.Open(t)
		useClock(db)
		mustSave(t, db, newReceipt(t0, "req-1", `{"n":1}`))
		if err := db.ReleaseKeys(ctx, sender, []string{"req-1", "never-taken"}, testOwner); err != nil {
			t.Fatal(err)
		}
		if got, want := mustLookup(t, db, "req-1").State, hooks.EntryDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})
}

func TestDB_Record(t *testing.T) {
	ctx := context.Background()
	db := sqlitetest.Open(t)
	useClock(db)
	req := newReceipt(t0, "req-1", `{"error":"unauthorized"}`).Request
	req.Status = http.StatusUnauthorized
	req.Note("bad token")
	if err := db.Record(ctx, req); err != nil {
		t.Fatal(err)
	}
	if req.ID == 0 {
		t.Fatalf("ID: got 0, want it set")
	}
	reqs := mustFindRequests(t, db, sqlite.RequestFilter{})
	if got, want := len(reqs), 1; got != want {
		t.Fatalf("requests: got %d, want %d", got, want)
	}
	if got, want := reqs[0].Status, http.StatusUnauthorized; got != want {
		t.Errorf("status: got %d, want %d", got, want)
	}
	if got, want := fmt.Sprint(reqs[0].Notes), "[bad token]"; got != want {
		t.Errorf("notes: got %s, want %s", got, want)
	}
	// A record is not an answer: no key, no job.
	if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "req-1"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		t.Errorf("lookup: got %v, want ENOTFOUND", err)
	}
	if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 0; got != want {
		t.Errorf("jobs: got %d, want %d", got, want)
	}
}

func TestDB_Lookup(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{"n":1}`)
		mustSave(t, db, r)
		e := mustLookup(t, db, "req-1")
		if e.Sender != hooks.SenderBubblehouse || e.Key != "req-1" || e.State != hooks.EntryDone ||
			e.RequestRef != r.Request.ID || e.Response.Status != http.StatusOK || string(e.Response.Body) != `{"n":1}` {
			t.Fatalf("got %+v", e)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		db := sqlitetest.Open(t)
		_, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "nope")
		if got, want := hooks.ErrorCode(err), hooks.ENOTFOUND; got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	})
}

func TestDB_PurgeIdempotency(t *testing.T) {
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		clk := useClock(db)
		mustSave(t, db, newReceipt(t0, "old-1", `{}`, "old-bhid-1"))
		if _, err := db.ReserveKeys(ctx, sender, []string{"old-2"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		cutoff := clk.Add(time.Hour)
		mustSave(t, db, newReceipt(cutoff, "new-1", `{}`)) // created at the cutoff: kept
		clk.Add(time.Second)
		mustSave(t, db, newReceipt(clk.Now(), "new-2", `{}`))

		n, err := db.PurgeIdempotency(ctx, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := n, int64(3); got != want {
			t.Fatalf("purged: got %d, want %d", got, want)
		}
		for _, k := range []string{"old-1", "old-bhid-1", "old-2"} {
			if _, err := db.LookupKey(ctx, sender, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("%s: got %v, want ENOTFOUND", k, err)
			}
		}
		for _, k := range []string{"new-1", "new-2"} {
			mustLookup(t, db, k)
		}
		// The records and jobs stay; only the answers are forgotten.
		if got, want := len(mustFindRequests(t, db, sqlite.RequestFilter{})), 3; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, sqlite.JobFilter{})), 3; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		// An old ID arriving again is now a new request.
		if e := mustSave(t, db, newReceipt(clk.Now(), "old-1", `{}`)); e != nil {
			t.Errorf("old-1 after purge: got entry %+v, want nil", e)
		}
		if n, err := db.PurgeIdempotency(ctx, cutoff); err != nil || n != 0 {
			t.Errorf("second purge: got %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("Batches", func(t *testing.T) {
		// More rows than one delete batch.
		db := sqlitetest.Open(t)
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
		// Another sender's old keys are purged too.
		if _, err := db.ReserveKeys(ctx, hooks.SenderSvix, []string{"svix-1"}, testOwner, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		cutoff := clk.Add(72 * time.Hour)
		reserve("young", young)

		n, err := db.PurgeIdempotency(ctx, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := n, int64(old+1); got != want {
			t.Fatalf("purged: got %d, want %d", got, want)
		}
		for _, k := range []string{"old-0", "old-999", "old-1000", "old-2499"} {
			if _, err := db.LookupKey(ctx, sender, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("%s: got %v, want ENOTFOUND", k, err)
			}
		}
		for _, k := range []string{"young-0", "young-1199"} {
			mustLookup(t, db, k)
		}
		if n, err := db.PurgeIdempotency(ctx, cutoff.Add(time.Microsecond)); err != nil || n != young {
			t.Fatalf("purge the rest: got %d, %v; want %d, nil", n, err, young)
		}
	})
}

func TestDB_FindRequests(t *testing.T) {
	db := sqlitetest.Open(t)
	useClock(db)
	var ids []int64
	for i, name := range []string{"SendEvent1", "SendEvent1", "ProcessOrder"} {
		r := newReceipt(t0, fmt.Sprintf("req-%d", i), `{}`)
		r.Request.Name = name
		mustSave(t, db, r)
		ids = append(ids, r.Request.ID)
	}
	svix := newReceipt(t0, "msg-1", `{}`)
	svix.Request.Sender, svix.Job.Sender = hooks.SenderSvix, hooks.SenderSvix
	mustSave(t, db, svix)

	for _, tt := range []struct {
		name string
		f    sqlite.RequestFilter
		want []int64
	}{
		{"All", sqlite.RequestFilter{}, []int64{svix.Request.ID, ids[2], ids[1], ids[0]}},
		{"Sender", sqlite.RequestFilter{Sender: hooks.SenderBubblehouse}, []int64{ids[2], ids[1], ids[0]}},
		{"Name", sqlite.RequestFilter{Name: "SendEvent1"}, []int64{svix.Request.ID, ids[1], ids[0]}},
		{"SenderName", sqlite.RequestFilter{Sender: hooks.SenderBubblehouse, Name: "SendEvent1"}, []int64{ids[1], ids[0]}},
		{"RequestID", sqlite.RequestFilter{RequestID: "req-1"}, []int64{ids[1]}},
		{"Limit", sqlite.RequestFilter{Limit: 2}, []int64{svix.Request.ID, ids[2]}},
		{"None", sqlite.RequestFilter{Sender: hooks.SenderBloomreach}, nil},
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
