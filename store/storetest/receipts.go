package storetest

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

func testPing(t *testing.T, b Backend) {
	e := newEnv(t, b)
	if err := e.s.Ping(t.Context()); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if got := e.requests(hooks.RequestFilter{}); len(got) != 0 {
		t.Fatalf("requests in a new store: got %d, want 0", len(got))
	}
	if got := e.jobs(hooks.JobFilter{}); len(got) != 0 {
		t.Fatalf("jobs in a new store: got %d, want 0", len(got))
	}
}

func testSaveReceipt(t *testing.T, b Backend) {
	t.Run("OK", func(t *testing.T) {
		// Request record, every key and the job are written together.
		e := newEnv(t, b)
		r := e.receipt("req-1", `{"ok":true}`, "bhid-1")
		r.Request.Notes = []string{"unknown urgency"}
		r.Request.Latency = 1500 * time.Microsecond
		if found := e.save(r); found != nil {
			t.Fatalf("got entry %+v, want nil", found)
		}
		if r.Request.ID == 0 {
			t.Fatalf("request ID: got 0, want it set")
		}

		reqs := e.requests(hooks.RequestFilter{})
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
			en := e.lookup(k)
			if en.State != hooks.EntryDone || en.Response.Status != http.StatusOK ||
				string(en.Response.Body) != `{"ok":true}` || en.RequestRef != r.Request.ID ||
				!e.nowish(en.CreatedAt) || !en.LockedUntil.IsZero() {
				t.Errorf("entry %q: got %+v, want done with the answer of request %d, created now", k, en, r.Request.ID)
			}
		}

		jobs := e.jobs(hooks.JobFilter{})
		if got, want := len(jobs), 1; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		j := jobs[0]
		if j.ID != r.Job.ID || j.RequestRef != r.Request.ID || j.Sender != hooks.SenderBubblehouse ||
			j.Name != "SendEvent1" || j.Urgency != hooks.UrgencyRegular || j.Priority != 2 ||
			j.State != hooks.JobAvailable || j.Attempts != 0 || !j.ScheduledAt.Equal(e.now()) || !j.CreatedAt.Equal(e.now()) {
			t.Errorf("job: got %+v, want available, for request %d", j, r.Request.ID)
		}
	})

	t.Run("NoJob", func(t *testing.T) {
		e := newEnv(t, b)
		r := e.receipt("req-1", `{}`)
		r.Job = nil
		if found := e.save(r); found != nil {
			t.Fatalf("got entry %+v, want nil", found)
		}
		if got := e.jobs(hooks.JobFilter{}); len(got) != 0 {
			t.Fatalf("jobs: got %d, want 0", len(got))
		}
		if got, want := e.lookup("req-1").RequestRef, r.Request.ID; got != want {
			t.Fatalf("entry request: got %d, want %d", got, want)
		}
	})

	t.Run("StoredJob", func(t *testing.T) {
		// A job whose action is to keep the request is done as it is
		// written: no worker ever claims it.
		e := newEnv(t, b)
		r := e.receipt("req-1", `{}`)
		r.Job.Stored(e.now())
		e.save(r)
		if got, want := e.job(r.Job.ID).State, hooks.JobDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
		if got := e.claim(time.Hour, 10); len(got) != 0 {
			t.Fatalf("claim: got %v, want none", jobIDs(got))
		}
	})

	t.Run("ErrDuplicate", func(t *testing.T) {
		// A repeat of the request ID gets the first answer, is recorded as
		// a duplicate, and queues nothing.
		e := newEnv(t, b)
		first := e.receipt("req-1", `{"n":1}`, "bhid-1")
		e.save(first)

		repeat := e.receipt("req-1", `{"n":2}`, "bhid-2")
		repeat.Request.Status = http.StatusAccepted
		found := e.save(repeat)
		if found == nil {
			t.Fatalf("repeat: got nil entry, want the first answer")
		}
		if found.State != hooks.EntryDone || found.Key != "req-1" || found.RequestRef != first.Request.ID ||
			found.Response.Status != http.StatusOK || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("entry: got %+v, want done with the answer of request %d", found, first.Request.ID)
		}

		reqs := e.requests(hooks.RequestFilter{RequestID: "req-1"})
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
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if repeat.Job.ID != 0 {
			t.Errorf("repeat's job ID: got %d, want 0 (not queued)", repeat.Job.ID)
		}
		// The repeat's new content key is not stored: only the first
		// request's keys answer.
		e.noKey("bhid-2")
	})

	t.Run("ErrDuplicateContentKey", func(t *testing.T) {
		// A new request ID carrying a content key already answered gets
		// the first answer; its request ID is remembered, pointing at the
		// original, so that its own retries replay that answer too.
		e := newEnv(t, b)
		first := e.receipt("req-1", `{"n":1}`, "bhid-1")
		e.save(first)

		found := e.save(e.receipt("req-2", `{"n":2}`, "bhid-1"))
		if found == nil || found.State != hooks.EntryDone || found.Key != "bhid-1" ||
			found.RequestRef != first.Request.ID || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("entry: got %+v, want done under bhid-1 with the answer of request %d", found, first.Request.ID)
		}
		recs := e.requests(hooks.RequestFilter{RequestID: "req-2"})
		if got, want := len(recs), 1; got != want {
			t.Fatalf("records of req-2: got %d, want %d", got, want)
		}
		if got, want := recs[0].DuplicateOf, first.Request.ID; got != want {
			t.Errorf("DuplicateOf: got %d, want %d", got, want)
		}
		if !hasNote(recs[0].Notes, `"bhid-1"`) {
			t.Errorf("notes: got %q, want a note naming the content key", recs[0].Notes)
		}
		en := e.lookup("req-2")
		if en.State != hooks.EntryDone || string(en.Response.Body) != `{"n":1}` || en.Response.Status != http.StatusOK ||
			en.RequestRef != first.Request.ID {
			t.Errorf("entry of req-2: got %+v, want done with the first answer, of request %d", en, first.Request.ID)
		}

		// The sender retries req-2: replayed from its own key.
		retry := e.receipt("req-2", `{"n":3}`, "bhid-1")
		found = e.save(retry)
		if found == nil || found.Key != "req-2" || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("retry of req-2: got entry %+v, want the first answer under req-2", found)
		}
		if got, want := retry.Request.DuplicateOf, first.Request.ID; got != want {
			t.Errorf("DuplicateOf of req-2's retry: got %d, want %d", got, want)
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := len(e.requests(hooks.RequestFilter{})), 3; got != want {
			t.Errorf("records: got %d, want %d", got, want)
		}
	})

	t.Run("ContentKeyOnly", func(t *testing.T) {
		// Without a request ID the content keys alone de-duplicate.
		e := newEnv(t, b)
		e.save(e.receipt("", `{"n":1}`, "bhid-1", "bhid-2"))
		found := e.save(e.receipt("", `{"n":2}`, "bhid-3", "bhid-2"))
		if found == nil || found.Key != "bhid-2" || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("got entry %+v, want the first answer under bhid-2", found)
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("NoKeys", func(t *testing.T) {
		// A request without any key is processed every time.
		e := newEnv(t, b)
		for i := 0; i < 3; i++ {
			if found := e.save(e.receipt("", `{}`)); found != nil {
				t.Fatalf("save %d: got entry %+v, want nil", i, found)
			}
		}
		reqs := e.requests(hooks.RequestFilter{})
		if got, want := len(reqs), 3; got != want {
			t.Fatalf("requests: got %d, want %d", got, want)
		}
		for _, r := range reqs {
			if r.DuplicateOf != 0 {
				t.Errorf("request %d: DuplicateOf got %d, want 0", r.ID, r.DuplicateOf)
			}
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 3; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("SenderNamespace", func(t *testing.T) {
		// Keys are per sender: the same ID from another sender is new.
		e := newEnv(t, b)
		e.save(e.receipt("req-1", `{"n":1}`))
		other := e.receipt("req-1", `{"n":2}`)
		other.Request.Sender, other.Job.Sender = hooks.SenderSvix, hooks.SenderSvix
		if found := e.save(other); found != nil {
			t.Fatalf("other sender: got entry %+v, want nil", found)
		}
		en, err := e.s.LookupKey(t.Context(), hooks.SenderSvix, "req-1")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(en.Response.Body), `{"n":2}`; got != want {
			t.Fatalf("svix answer: got %s, want %s", got, want)
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 2; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("ErrPending", func(t *testing.T) {
		// A key held by a request executing inline, under a live lease:
		// the pending entry is returned and nothing is written.
		e := newEnv(t, b)
		until := e.now().Add(time.Hour)
		e.reserve([]string{"req-1"}, testOwner, until)
		found := e.save(e.receipt("req-1", `{"n":2}`))
		if found == nil || found.State != hooks.EntryPending || found.Key != "req-1" || !found.LockedUntil.Equal(until) {
			t.Fatalf("entry: got %+v, want pending until %v", found, until)
		}
		if got := e.requests(hooks.RequestFilter{}); len(got) != 0 {
			t.Errorf("requests: got %d, want 0", len(got))
		}
		if got := e.jobs(hooks.JobFilter{}); len(got) != 0 {
			t.Errorf("jobs: got %d, want 0", len(got))
		}
		if got, want := e.lookup("req-1").State, hooks.EntryPending; got != want {
			t.Errorf("entry state: got %s, want %s", got, want)
		}
	})

	t.Run("ErrPendingContentKey", func(t *testing.T) {
		// The request ID is new but its content key is held by a request
		// executing inline: nothing is written, not even the new ID.
		e := newEnv(t, b)
		until := e.now().Add(time.Hour)
		e.reserve([]string{"req-1", "bhid-1"}, testOwner, until)
		found := e.save(e.receipt("req-2", `{"n":2}`, "bhid-1"))
		if found == nil || found.State != hooks.EntryPending || found.Key != "bhid-1" || !found.LockedUntil.Equal(until) {
			t.Fatalf("got entry %+v, want bhid-1 pending until %v", found, until)
		}
		e.noKey("req-2")
		if got := e.requests(hooks.RequestFilter{}); len(got) != 0 {
			t.Errorf("requests: got %d, want 0", len(got))
		}
		if got := e.jobs(hooks.JobFilter{}); len(got) != 0 {
			t.Errorf("jobs: got %d, want 0", len(got))
		}
		// Once the holder finishes, the same receipt replays its answer.
		if _, err := e.s.FinishReserved(t.Context(), e.receipt("req-1", `{"n":1}`, "bhid-1"), testOwner); err != nil {
			t.Fatal(err)
		}
		found = e.save(e.receipt("req-2", `{"n":2}`, "bhid-1"))
		if found == nil || found.State != hooks.EntryDone || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("after finish: got entry %+v, want the done answer", found)
		}
	})

	t.Run("ErrDuplicateLaterKey", func(t *testing.T) {
		// Only the third key was answered before: the keys in front of it
		// replay that answer, the ones after it are not taken, no job.
		e := newEnv(t, b)
		e.save(e.receipt("req-1", `{"n":1}`, "bhid-c"))
		found := e.save(e.receipt("req-2", `{"n":2}`, "bhid-b", "bhid-c", "bhid-d"))
		if found == nil || found.Key != "bhid-c" || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("got entry %+v, want the first answer under bhid-c", found)
		}
		for _, k := range []string{"req-2", "bhid-b"} {
			if en := e.lookup(k); en.State != hooks.EntryDone || string(en.Response.Body) != `{"n":1}` {
				t.Errorf("entry %q: got %+v, want the first answer", k, en)
			}
		}
		e.noKey("bhid-d")
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("RepeatedKey", func(t *testing.T) {
		// A receipt naming the same key twice (a request ID equal to its
		// content key) is one new request, not a duplicate of itself.
		e := newEnv(t, b)
		r := e.receipt("SendEvent1/bhid:1", `{"n":1}`, "SendEvent1/bhid:1")
		if found := e.save(r); found != nil {
			t.Errorf("got entry %+v, want nil", found)
		}
		if got, want := r.Request.DuplicateOf, int64(0); got != want {
			t.Errorf("DuplicateOf: got %d, want %d", got, want)
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("PendingExpired", func(t *testing.T) {
		// The holder of a pending key died (its lease is over): the key is
		// taken over and the receipt written, under every key it reserved.
		e := newEnv(t, b)
		keys := []string{"req-1", "bhid-1"}
		e.reserve(keys, testOwner, e.now().Add(-time.Second))
		r := e.receipt("req-1", `{"n":2}`, "bhid-1")
		if found := e.save(r); found != nil {
			t.Fatalf("got entry %+v, want nil", found)
		}
		for _, k := range keys {
			if en := e.lookup(k); en.State != hooks.EntryDone || en.RequestRef != r.Request.ID || string(en.Response.Body) != `{"n":2}` {
				t.Errorf("entry %q: got %+v, want done with the answer of request %d", k, en, r.Request.ID)
			}
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		if got, want := len(e.requests(hooks.RequestFilter{})), 1; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		// The holder that died can no longer finish or release the keys.
		if lost, err := e.s.FinishReserved(t.Context(), e.receipt("req-1", `{"n":1}`, "bhid-1"), testOwner); err != nil ||
			lost == nil || string(lost.Response.Body) != `{"n":2}` {
			t.Errorf("finish by the old holder: got %+v, %v; want the taker's answer", lost, err)
		}
		if err := e.s.ReleaseKeys(t.Context(), hooks.SenderBubblehouse, keys, testOwner); err != nil {
			t.Fatal(err)
		}
		if got, want := e.lookup("req-1").State, hooks.EntryDone; got != want {
			t.Errorf("after release by the old holder: got %s, want %s", got, want)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// 50 requests with the same ID at once: one is processed, 49 get
		// its answer.
		e := newEnv(t, b)
		const n = 50
		answers := make([]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			r := e.receipt("req-1", fmt.Sprintf(`{"n":%d}`, i))
			wg.Go(func() {
				<-start
				found, err := e.s.SaveReceipt(t.Context(), r)
				switch {
				case err != nil:
					errs[i] = err
				case found == nil:
					answers[i] = string(r.Request.Response)
				case found.State != hooks.EntryDone:
					errs[i] = fmt.Errorf("got %s entry, want done", found.State)
				default:
					answers[i] = string(found.Response.Body)
				}
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
		}
		for i, a := range answers {
			if a != answers[0] {
				t.Fatalf("answer %d: got %s, want %s (as answer 0)", i, a, answers[0])
			}
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		reqs := e.requests(hooks.RequestFilter{Limit: 1000})
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
	})

	t.Run("ConcurrentDistinct", func(t *testing.T) {
		// 200 requests with distinct keys at once are all written.
		e := newEnv(t, b)
		const n = 200
		receipts := make([]*hooks.Receipt, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range receipts {
			receipts[i] = e.receipt(fmt.Sprintf("req-%d", i), fmt.Sprintf(`{"n":%d}`, i), fmt.Sprintf("bhid-%d", i))
			wg.Go(func() {
				<-start
				found, err := e.s.SaveReceipt(t.Context(), receipts[i])
				if err == nil && found != nil {
					err = fmt.Errorf("got entry %+v, want nil", found)
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
		}
		if got, want := len(e.requests(hooks.RequestFilter{Limit: 1000})), n; got != want {
			t.Errorf("records: got %d, want %d", got, want)
		}
		jobs := e.jobs(hooks.JobFilter{Limit: 1000})
		if got, want := len(jobs), n; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
		refs := map[int64]bool{}
		for _, j := range jobs {
			refs[j.RequestRef] = true
		}
		for i, r := range receipts {
			if !refs[r.Request.ID] {
				t.Errorf("receipt %d: no job for request %d", i, r.Request.ID)
			}
			en := e.lookup(fmt.Sprintf("bhid-%d", i))
			if got, want := string(en.Response.Body), fmt.Sprintf(`{"n":%d}`, i); got != want || en.RequestRef != r.Request.ID {
				t.Errorf("entry bhid-%d: got %s for %d, want %s for %d", i, got, en.RequestRef, want, r.Request.ID)
			}
		}
	})

	t.Run("ErrCanceled", func(t *testing.T) {
		// A context done before the write fails fast and writes nothing,
		// or the write is committed in full. Never half.
		e := newEnv(t, b)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := e.s.SaveReceipt(ctx, e.receipt("req-1", `{}`))
		n, j := len(e.requests(hooks.RequestFilter{})), len(e.jobs(hooks.JobFilter{}))
		switch {
		case err == nil && (n != 1 || j != 1):
			t.Fatalf("saved: got %d records, %d jobs; want 1, 1", n, j)
		case err != nil && (n != 0 || j != 0):
			t.Fatalf("failed with %v: got %d records, %d jobs; want 0, 0", err, n, j)
		}
	})
}

// testSaveReceiptItems covers batches: each customer is de-duplicated on
// its own key and queued as its own job, delivering its own bytes.
func testSaveReceiptItems(t *testing.T, b Backend) {
	e := newEnv(t, b)
	first := e.batch("batch-1", "a", "b", "")
	if found := e.save(first); found != nil {
		t.Fatalf("first batch: got entry %+v, want nil", found)
	}
	for i, it := range first.Items {
		if it.Duplicate || it.Job.ID == 0 || it.Job.RequestRef != first.Request.ID {
			t.Errorf("item %d: got duplicate %v, job %+v; want queued for request %d", i, it.Duplicate, it.Job, first.Request.ID)
		}
	}
	if en, err := e.s.LookupKey(t.Context(), hooks.SenderBloomreach, "sms/item:a"); err != nil || en.State != hooks.EntryDone || en.RequestRef != first.Request.ID {
		t.Errorf("item key: got %+v, %v; want done, of request %d", en, err, first.Request.ID)
	}

	// The batch again under a new request ID, with one new customer: only
	// the new one and the one without an ID are queued.
	second := e.batch("batch-2", "b", "c", "")
	if found := e.save(second); found != nil {
		t.Fatalf("second batch: got entry %+v, want nil", found)
	}
	var dups []bool
	for _, it := range second.Items {
		dups = append(dups, it.Duplicate)
	}
	if got, want := fmt.Sprint(dups), "[true false false]"; got != want {
		t.Errorf("duplicates: got %s, want %s", got, want)
	}
	if got, want := len(e.jobs(hooks.JobFilter{})), 5; got != want {
		t.Errorf("jobs: got %d, want %d", got, want)
	}

	// A claimed item job delivers its customer, not the batch.
	claimed := e.claim(time.Hour, 10)
	if got, want := len(claimed), 5; got != want {
		t.Fatalf("claimed: got %d, want %d", got, want)
	}
	j := claimed[0]
	if got, want := string(j.Body), `{"customer":"a"}`; got != want || !bytes.Equal(j.Payload, j.Body) {
		t.Errorf("item job: got body %s, payload %s; want %s for both", j.Body, j.Payload, want)
	}
	if got, want := j.RequestID, "batch-1"; got != want {
		t.Errorf("item job's request ID: got %q, want %q", got, want)
	}
}

// testSaveReceiptManyItems covers batches larger than a store writes in
// one statement: a customer repeated in the same batch, near or far, is
// queued once, for its first place; a retried batch with new customers
// queues only those; and each queued customer's job delivers its own
// bytes.
func testSaveReceiptManyItems(t *testing.T, b Backend) {
	e := newEnv(t, b)
	var customers []string
	for i := range 300 {
		customers = append(customers, fmt.Sprintf("c%03d", i))
	}
	customers[5] = customers[4]    // next to each other
	customers[250] = customers[10] // far apart
	customers[31] = customers[30]  // three times
	customers[32] = customers[30]  //
	customers[120] = ""            // no ID: always queued
	customers[121] = ""            //
	first := e.batch("batch-1", customers...)
	if found := e.save(first); found != nil {
		t.Fatalf("first batch: got entry %+v, want nil", found)
	}
	wantDup := map[int]bool{5: true, 250: true, 31: true, 32: true}
	checkItems(t, e, "first batch", first, wantDup)

	// Retried under a new request ID, every other customer replaced.
	var again []string
	wantDup = map[int]bool{}
	for i, c := range customers {
		if i%2 == 1 {
			c = fmt.Sprintf("n%03d", i)
		}
		again = append(again, c)
		wantDup[i] = c != ""
	}
	for i := range again {
		if i%2 == 1 {
			wantDup[i] = false
		}
	}
	wantDup[121] = false
	second := e.batch("batch-2", again...)
	if found := e.save(second); found != nil {
		t.Fatalf("second batch: got entry %+v, want nil", found)
	}
	checkItems(t, e, "second batch", second, wantDup)
}

// testSaveReceiptItemsAfterPurge: a customer's key outlives its batch's
// record when records are purged first (a store may then give a later
// request the purged record's ID), or keeps the record while it lives
// (SQLite keeps the key in the customer's job): either way a batch that
// repeats the customer still finds it a duplicate.
func testSaveReceiptItemsAfterPurge(t *testing.T, b Backend) {
	e := newEnv(t, b)
	var customers []string
	for i := range 100 {
		customers = append(customers, fmt.Sprintf("c%03d", i))
	}
	first := e.batch("batch-1", customers...)
	for _, it := range first.Items {
		it.Job.Stored(e.now()) // delivered: nothing keeps the record
	}
	e.save(first)
	purged, err := e.s.PurgeRecords(t.Context(), e.now().Add(time.Second))
	if err != nil || purged > 1 {
		t.Fatalf("purge records: got %d, %v; want at most 1, nil", purged, err)
	}
	second := e.batch("batch-2", customers...)
	e.save(second)
	for i, it := range second.Items {
		if !it.Duplicate {
			t.Errorf("item %d (%q) of the batch after the purge: queued again (request %d; the first was %d)", i, it.Key, second.Request.ID, first.Request.ID)
		}
	}
	// Once the keys go, so do both records, the first if it was kept.
	if _, err := e.s.PurgeIdempotency(t.Context(), e.now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := e.s.PurgeRecords(t.Context(), e.now().Add(time.Second))
	if err != nil || purged+n != 2 {
		t.Fatalf("purge records after the keys: got %d, %v, after %d; want 2 in all, nil", n, err, purged)
	}
}

// checkItems checks a saved batch: the items at the indexes dup says are
// duplicates, and only those, queued nothing; every other item has a job
// of the request, which delivers the item's payload.
func checkItems(t *testing.T, e *env, what string, r *hooks.Receipt, dup map[int]bool) {
	t.Helper()
	claimed := e.claim(time.Hour, 1000)
	byID := make(map[int64]*hooks.Job, len(claimed))
	for _, j := range claimed {
		byID[j.ID] = j
	}
	queued := 0
	for i, it := range r.Items {
		if it.Duplicate != dup[i] {
			t.Errorf("%s, item %d (%q): got duplicate %v, want %v", what, i, it.Key, it.Duplicate, dup[i])
			continue
		}
		if it.Duplicate {
			continue
		}
		queued++
		j := byID[it.Job.ID]
		if j == nil || it.Job.RequestRef != r.Request.ID || !bytes.Equal(j.Body, it.Job.Payload) {
			t.Errorf("%s, item %d: job %d delivers %+v; want %s, of request %d", what, i, it.Job.ID, j, it.Job.Payload, r.Request.ID)
		}
	}
	if len(claimed) != queued {
		t.Errorf("%s: claimed %d jobs, want %d", what, len(claimed), queued)
	}
}

func testRecord(t *testing.T, b Backend) {
	e := newEnv(t, b)
	req := e.receipt("req-1", `{"error":"unauthorized"}`).Request
	req.Status = http.StatusUnauthorized
	req.Note("bad token")
	if err := e.s.Record(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if req.ID == 0 {
		t.Fatalf("ID: got 0, want it set")
	}
	reqs := e.requests(hooks.RequestFilter{})
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
	e.noKey("req-1")
	if got := e.jobs(hooks.JobFilter{}); len(got) != 0 {
		t.Errorf("jobs: got %d, want 0", len(got))
	}
}

func testFindRequests(t *testing.T, b Backend) {
	e := newEnv(t, b)
	var ids []int64
	for i, name := range []string{"SendEvent1", "SendEvent1", "ProcessOrder"} {
		r := e.receipt(fmt.Sprintf("req-%d", i), `{}`)
		r.Request.Name = name
		r.Request.ReceivedAt = e.now().Add(time.Duration(i-3) * time.Hour)
		e.save(r)
		ids = append(ids, r.Request.ID)
	}
	svix := e.receipt("msg-1", `{}`)
	svix.Request.Sender, svix.Job.Sender = hooks.SenderSvix, hooks.SenderSvix
	e.save(svix)

	for _, tt := range []struct {
		name string
		f    hooks.RequestFilter
		want []int64
	}{
		{"All", hooks.RequestFilter{}, []int64{svix.Request.ID, ids[2], ids[1], ids[0]}},
		{"ID", hooks.RequestFilter{ID: ids[1]}, []int64{ids[1]}},
		{"Sender", hooks.RequestFilter{Sender: hooks.SenderBubblehouse}, []int64{ids[2], ids[1], ids[0]}},
		{"Name", hooks.RequestFilter{Name: "SendEvent1"}, []int64{svix.Request.ID, ids[1], ids[0]}},
		{"SenderName", hooks.RequestFilter{Sender: hooks.SenderBubblehouse, Name: "SendEvent1"}, []int64{ids[1], ids[0]}},
		{"RequestID", hooks.RequestFilter{RequestID: "req-1"}, []int64{ids[1]}},
		{"Since", hooks.RequestFilter{Since: e.now().Add(-2 * time.Hour)}, []int64{svix.Request.ID, ids[2], ids[1]}},
		{"Limit", hooks.RequestFilter{Limit: 2}, []int64{svix.Request.ID, ids[2]}},
		{"None", hooks.RequestFilter{Sender: hooks.SenderBloomreach}, []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := fmt.Sprint(requestIDs(e.requests(tt.f))), fmt.Sprint(tt.want); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

// testPurgeRecords: old requests go with their jobs and attempts, but never
// a request whose job is still to be delivered.
func testPurgeRecords(t *testing.T, b Backend) {
	e := newEnv(t, b)
	ctx := t.Context()
	old := e.now().Add(-40 * 24 * time.Hour)
	receipt := func(rid string, at time.Time) *hooks.Receipt {
		r := e.receipt(rid, `{}`)
		r.Request.ReceivedAt = at
		return r
	}
	done := receipt("old-done", old)
	done.Job.Stored(old)
	e.save(done)
	waiting := receipt("old-waiting", old)
	e.save(waiting)
	recent := receipt("recent", e.now())
	recent.Job.Stored(e.now())
	e.save(recent)
	attempted := receipt("old-attempted", old)
	e.save(attempted)
	refused := receipt("old-refused", old).Request
	refused.Status = http.StatusUnauthorized
	if err := e.s.Record(ctx, refused); err != nil {
		t.Fatal(err)
	}
	// The old job with an attempt on record is delivered; the waiting one
	// was claimed and given back.
	for _, j := range e.claim(time.Hour, 10) {
		if j.ID == attempted.Job.ID {
			j.AttemptStarted, j.AttemptDuration = e.now(), time.Millisecond
			if err := e.s.CompleteJobs(ctx, []*hooks.Job{j}, e.now()); err != nil {
				t.Fatal(err)
			}
		} else if err := e.s.ReleaseJobs(ctx, []*hooks.Job{j}); err != nil {
			t.Fatal(err)
		}
	}

	n, err := e.s.PurgeRecords(ctx, e.now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(3); got != want {
		t.Fatalf("purged: got %d, want %d (old-done, old-attempted, old-refused)", got, want)
	}
	for id, want := range map[string]int{"old-done": 0, "old-attempted": 0, "old-refused": 0, "old-waiting": 1, "recent": 1} {
		if got := len(e.requests(hooks.RequestFilter{RequestID: id})); got != want {
			t.Errorf("%s: got %d records, want %d", id, got, want)
		}
	}
	if got := e.attempts(attempted.Job.ID); got != "" {
		t.Errorf("attempts of a purged job: got %q, want none", got)
	}
	if got, want := fmt.Sprint(jobIDs(e.jobs(hooks.JobFilter{}))), fmt.Sprint([]int64{waiting.Job.ID, recent.Job.ID}); got != want {
		t.Errorf("jobs left: got %s, want %s", got, want)
	}
	if n, err := e.s.PurgeRecords(ctx, e.now().Add(-30*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second purge: got %d, %v; want 0, nil", n, err)
	}
}
