package storetest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

func testReserveKeys(t *testing.T, b Backend) {
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		e := newEnv(t, b)
		keys := []string{"req-1", "bhid-1"}
		until := e.now().Add(time.Hour)
		e.reserve(keys, testOwner, until)
		for _, k := range keys {
			en := e.lookup(k)
			if en.State != hooks.EntryPending || !en.LockedUntil.Equal(until) || !e.nowish(en.CreatedAt) {
				t.Errorf("entry %q: got %+v, want pending until %v, created now", k, en, until)
			}
		}
		if got := e.requests(hooks.RequestFilter{}); len(got) != 0 {
			t.Errorf("requests: got %d, want 0", len(got))
		}
	})

	t.Run("ErrPending", func(t *testing.T) {
		// The same keys again, or one of them, while the lease is live:
		// the pending entry, and nothing written.
		e := newEnv(t, b)
		until := e.now().Add(time.Hour)
		e.reserve([]string{"req-1", "bhid-1"}, testOwner, until)
		for _, keys := range [][]string{{"req-1", "bhid-1"}, {"req-2", "bhid-1"}} {
			found, err := e.s.ReserveKeys(t.Context(), sender, keys, testOwner+1, e.now().Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if found == nil || found.State != hooks.EntryPending || !found.LockedUntil.Equal(until) {
				t.Fatalf("reserve %v: got entry %+v, want pending until %v", keys, found, until)
			}
		}
		e.noKey("req-2")
		if got := e.lookup("req-1").LockedUntil; !got.Equal(until) {
			t.Errorf("lease: got %v, want %v", got, until)
		}
	})

	t.Run("ErrDone", func(t *testing.T) {
		// A key already answered: the done entry, to replay.
		e := newEnv(t, b)
		first := e.receipt("req-1", `{"n":1}`, "bhid-1")
		e.save(first)
		found, err := e.s.ReserveKeys(t.Context(), sender, []string{"req-2", "bhid-1"}, testOwner, e.now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if found == nil || found.State != hooks.EntryDone || found.Key != "bhid-1" || string(found.Response.Body) != `{"n":1}` ||
			found.RequestRef != first.Request.ID {
			t.Fatalf("got entry %+v, want done with the first answer", found)
		}
		e.noKey("req-2") // nothing reserved
	})

	t.Run("Expired", func(t *testing.T) {
		// A pending lease that ran out is taken over, with the keys that
		// come with it; an expired key behind a live one is left alone.
		e := newEnv(t, b)
		e.reserve([]string{"req-1"}, testOwner, e.now().Add(-time.Second))
		until := e.now().Add(time.Hour)
		e.reserve([]string{"req-1", "bhid-1"}, testOwner+1, until)
		for _, k := range []string{"req-1", "bhid-1"} {
			if en := e.lookup(k); en.State != hooks.EntryPending || !en.LockedUntil.Equal(until) {
				t.Errorf("entry %q: got %+v, want pending until %v", k, en, until)
			}
		}

		e.reserve([]string{"req-9"}, testOwner, e.now().Add(-time.Second))
		found, err := e.s.ReserveKeys(t.Context(), sender, []string{"req-9", "bhid-1"}, testOwner+2, e.now().Add(time.Hour))
		if err != nil || found == nil || found.Key != "bhid-1" || found.State != hooks.EntryPending {
			t.Fatalf("reserve behind a live key: got %+v, %v; want bhid-1 pending", found, err)
		}
		if en := e.lookup("req-9"); !en.LockedUntil.Before(e.now()) {
			t.Errorf("req-9: got %+v, want still the expired reservation (nothing written)", en)
		}
		// The taker owns the keys: it can finish under them.
		if lost, err := e.s.FinishReserved(t.Context(), e.receipt("req-1", `{"who":"taker"}`, "bhid-1"), testOwner+1); err != nil || lost != nil {
			t.Fatalf("finish by the taker: got %+v, %v; want nil, nil", lost, err)
		}
	})
}

func testFinishReserved(t *testing.T, b Backend) {
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		e := newEnv(t, b)
		keys := []string{"req-1", "bhid-1"}
		e.reserve(keys, testOwner, e.now().Add(time.Hour))
		r := e.receipt("req-1", `{"output":42}`, "bhid-1")
		if lost, err := e.s.FinishReserved(t.Context(), r, testOwner); err != nil || lost != nil {
			t.Fatalf("got %+v, %v; want nil, nil", lost, err)
		}
		for _, k := range keys {
			en := e.lookup(k)
			if en.State != hooks.EntryDone || en.RequestRef != r.Request.ID || en.Response.Status != http.StatusOK ||
				string(en.Response.Body) != `{"output":42}` || !en.LockedUntil.IsZero() {
				t.Errorf("entry %q: got %+v, want done with the answer of request %d", k, en, r.Request.ID)
			}
		}
		jobs := e.jobs(hooks.JobFilter{})
		if len(jobs) != 1 || jobs[0].RequestRef != r.Request.ID {
			t.Fatalf("jobs: got %+v, want one for request %d", jobs, r.Request.ID)
		}
		if got, want := len(e.requests(hooks.RequestFilter{})), 1; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}

		// A repeat now gets the answer, from ReserveKeys and SaveReceipt.
		found, err := e.s.ReserveKeys(t.Context(), sender, keys, testOwner, e.now().Add(time.Hour))
		if err != nil || found == nil || found.State != hooks.EntryDone || string(found.Response.Body) != `{"output":42}` {
			t.Fatalf("reserve after finish: got %+v, %v; want the done entry", found, err)
		}
		if found := e.save(e.receipt("req-1", `{}`, "bhid-1")); found == nil || string(found.Response.Body) != `{"output":42}` {
			t.Fatalf("save after finish: got %+v, want the done entry", found)
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("NoJob", func(t *testing.T) {
		e := newEnv(t, b)
		e.reserve([]string{"req-1"}, testOwner, e.now().Add(time.Hour))
		r := e.receipt("req-1", `{}`)
		r.Job = nil
		if _, err := e.s.FinishReserved(t.Context(), r, testOwner); err != nil {
			t.Fatal(err)
		}
		if got := e.jobs(hooks.JobFilter{}); len(got) != 0 {
			t.Errorf("jobs: got %d, want 0", len(got))
		}
		if got, want := e.lookup("req-1").State, hooks.EntryDone; got != want {
			t.Errorf("state: got %s, want %s", got, want)
		}
	})
}

// testFinishReservedTakenOver: an execution that ran past its lease, and
// whose key a retry took over, keeps no answer. If the retry has answered,
// that answer is returned for this request too; if the retry is still
// running, this request gets a conflict (retry for the retry's answer),
// never an answer of its own that repeats would not replay.
func testFinishReservedTakenOver(t *testing.T, b Backend) {
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
			e := newEnv(t, b)
			e.reserve([]string{"req-1"}, testOwner, e.now().Add(-time.Second)) // overran its lease
			e.reserve([]string{"req-1"}, other, e.now().Add(time.Hour))
			if tt.retryDone {
				if _, err := e.s.FinishReserved(t.Context(), e.receipt("req-1", `{"who":"retry"}`), other); err != nil {
					t.Fatal(err)
				}
			}
			lost, err := e.s.FinishReserved(t.Context(), e.receipt("req-1", `{"who":"first"}`), testOwner)
			switch {
			case tt.wantConflict && hooks.ErrorCode(err) != hooks.ECONFLICT:
				t.Fatalf("first execution: %+v, %v; want a conflict", lost, err)
			case !tt.wantConflict && (err != nil || lost == nil || string(lost.Response.Body) != `{"who":"retry"}`):
				t.Fatalf("first execution: %+v, %v; want the retry's answer", lost, err)
			}
			if tt.wantConflict {
				if en := e.lookup("req-1"); en.State != hooks.EntryPending {
					t.Fatalf("key: %+v, want still the retry's, pending", en)
				}
				// Nothing is recorded with the answer that was not sent:
				// the caller records the conflict it answers.
				if recs := e.requests(hooks.RequestFilter{RequestID: "req-1"}); len(recs) != 0 {
					t.Fatalf("records: %+v, want none yet", recs)
				}
				return
			}
			recs := e.requests(hooks.RequestFilter{RequestID: "req-1"})
			if len(recs) != 2 || recs[0].DuplicateOf != recs[1].ID || string(recs[0].Response) != `{"who":"retry"}` {
				t.Fatalf("records: %+v, want the late one a duplicate of the retry's, with its answer", recs)
			}
			if got, want := len(e.jobs(hooks.JobFilter{})), 1; got != want {
				t.Errorf("jobs: got %d, want %d (the retry's)", got, want)
			}
		})
	}
}

func testReleaseKeys(t *testing.T, b Backend) {
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		// Released keys are free: the retry executes.
		e := newEnv(t, b)
		keys := []string{"req-1", "bhid-1"}
		e.reserve(keys, testOwner, e.now().Add(time.Hour))
		if err := e.s.ReleaseKeys(t.Context(), sender, keys, testOwner); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			e.noKey(k)
		}
		e.reserve(keys, testOwner, e.now().Add(time.Hour))
		if err := e.s.ReleaseKeys(t.Context(), sender, keys, testOwner); err != nil {
			t.Fatal(err)
		}
		if found := e.save(e.receipt("req-1", `{}`, "bhid-1")); found != nil {
			t.Fatalf("save after release: got %+v, want nil", found)
		}
	})

	t.Run("KeepsDone", func(t *testing.T) {
		// Release never drops an answer.
		e := newEnv(t, b)
		e.save(e.receipt("req-1", `{"n":1}`))
		if err := e.s.ReleaseKeys(t.Context(), sender, []string{"req-1", "never-taken"}, testOwner); err != nil {
			t.Fatal(err)
		}
		if got, want := e.lookup("req-1").State, hooks.EntryDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})

	t.Run("KeepsOthers", func(t *testing.T) {
		// Keys another owner holds are left to it.
		e := newEnv(t, b)
		e.reserve([]string{"req-1"}, testOwner+1, e.now().Add(time.Hour))
		if err := e.s.ReleaseKeys(t.Context(), sender, []string{"req-1"}, testOwner); err != nil {
			t.Fatal(err)
		}
		if got, want := e.lookup("req-1").State, hooks.EntryPending; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})
}

func testLookupKey(t *testing.T, b Backend) {
	t.Run("OK", func(t *testing.T) {
		e := newEnv(t, b)
		r := e.receipt("req-1", `{"n":1}`)
		e.save(r)
		en := e.lookup("req-1")
		if en.Sender != hooks.SenderBubblehouse || en.Key != "req-1" || en.State != hooks.EntryDone ||
			en.RequestRef != r.Request.ID || en.Response.Status != http.StatusOK || string(en.Response.Body) != `{"n":1}` {
			t.Fatalf("got %+v", en)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		e := newEnv(t, b)
		_, err := e.s.LookupKey(t.Context(), hooks.SenderBubblehouse, "nope")
		if got, want := hooks.ErrorCode(err), hooks.ENOTFOUND; got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	})
}

func testPurgeIdempotency(t *testing.T, b Backend) {
	sender := hooks.SenderBubblehouse

	t.Run("OK", func(t *testing.T) {
		e := newEnv(t, b)
		e.save(e.receipt("old-1", `{}`, "old-bhid-1"))
		e.reserve([]string{"old-2"}, testOwner, e.now().Add(time.Hour))
		cutoff := e.mark()
		e.save(e.receipt("new-1", `{}`)) // created at the cutoff at the earliest: kept
		e.save(e.receipt("new-2", `{}`))

		n, err := e.s.PurgeIdempotency(t.Context(), cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := n, int64(3); got != want {
			t.Fatalf("purged: got %d, want %d", got, want)
		}
		for _, k := range []string{"old-1", "old-bhid-1", "old-2"} {
			e.noKey(k)
		}
		for _, k := range []string{"new-1", "new-2"} {
			e.lookup(k)
		}
		// The records and jobs stay; only the answers are forgotten.
		if got, want := len(e.requests(hooks.RequestFilter{})), 3; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if got, want := len(e.jobs(hooks.JobFilter{})), 3; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
		// An old ID arriving again is now a new request.
		if found := e.save(e.receipt("old-1", `{}`)); found != nil {
			t.Errorf("old-1 after purge: got entry %+v, want nil", found)
		}
		if n, err := e.s.PurgeIdempotency(t.Context(), cutoff); err != nil || n != 0 {
			t.Errorf("second purge: got %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("Batches", func(t *testing.T) {
		// More rows than a store may delete at once, of two senders.
		e := newEnv(t, b)
		const old, young = 2500, 1200
		reserve := func(prefix string, n int) {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("%s-%d", prefix, i)
			}
			e.reserve(keys, testOwner, e.now().Add(time.Hour))
		}
		reserve("old", old)
		if found, err := e.s.ReserveKeys(t.Context(), hooks.SenderSvix, []string{"svix-1"}, testOwner, e.now().Add(time.Hour)); err != nil || found != nil {
			t.Fatalf("reserve svix-1: %+v, %v", found, err)
		}
		cutoff := e.mark()
		reserve("young", young)

		n, err := e.s.PurgeIdempotency(t.Context(), cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := n, int64(old+1); got != want {
			t.Fatalf("purged: got %d, want %d", got, want)
		}
		for _, k := range []string{"old-0", "old-999", "old-1000", "old-2499"} {
			e.noKey(k)
		}
		for _, k := range []string{"young-0", "young-1199"} {
			e.lookup(k)
		}
		if n, err := e.s.PurgeIdempotency(t.Context(), e.mark()); err != nil || n != young {
			t.Fatalf("purge the rest: got %d, %v; want %d, nil", n, err, young)
		}
		if _, err := e.s.LookupKey(t.Context(), sender, "young-0"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("young-0 after purging the rest: got %v, want ENOTFOUND", err)
		}
	})

	t.Run("ItemKeys", func(t *testing.T) {
		// A batch's customers' keys go with the others, however a store
		// keeps them: more than it may purge at once, over two batches.
		e := newEnv(t, b)
		var old []string
		for i := range 1300 {
			old = append(old, fmt.Sprintf("o%04d", i))
		}
		stored := func(r *hooks.Receipt) *hooks.Receipt {
			for _, it := range r.Items {
				it.Job.Stored(e.now()) // nothing to deliver: only keys keep the records
			}
			return r
		}
		e.save(stored(BatchReceipt(e.now(), "old-1", true, old[:650]...)))
		e.save(stored(BatchReceipt(e.now(), "old-2", true, old[650:]...)))
		cutoff := e.mark()
		e.save(stored(BatchReceipt(e.now(), "young-1", true, "y1", "y2")))

		n, err := e.s.PurgeIdempotency(t.Context(), cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := n, int64(len(old)+2); got != want { // and the two batches' request IDs
			t.Fatalf("purged: got %d, want %d", got, want)
		}
		lookup := func(c string) error {
			_, err := e.s.LookupKey(t.Context(), hooks.SenderBloomreach, hooks.ItemKey("sms", c))
			return err
		}
		for _, c := range []string{"o0000", "o0649", "o0650", "o1299"} {
			if err := lookup(c); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("customer %s after the purge: got %v, want ENOTFOUND", c, err)
			}
		}
		for _, c := range []string{"y1", "y2"} {
			if err := lookup(c); err != nil {
				t.Errorf("customer %s after the purge: %v", c, err)
			}
		}
		// Customers whose keys went are taken again; the others are not.
		again := e.save(BatchReceipt(e.now(), "again-1", true, "o0000", "o1299", "y1"))
		if again != nil {
			t.Fatalf("batch after the purge: got entry %+v, want nil", again)
		}
		r := BatchReceipt(e.now(), "again-2", true, "o0001", "y2")
		e.save(r)
		if r.Items[0].Duplicate || !r.Items[1].Duplicate {
			t.Errorf("after the purge: o0001 duplicate %v, y2 duplicate %v; want false, true", r.Items[0].Duplicate, r.Items[1].Duplicate)
		}
		// With their keys gone, nothing keeps the old batches' records.
		if n, err := e.s.PurgeRecords(t.Context(), cutoff); err != nil || n != 2 {
			t.Errorf("purge records: got %d, %v; want 2, nil", n, err)
		}
		if n, err := e.s.PurgeIdempotency(t.Context(), cutoff); err != nil || n != 0 {
			t.Errorf("second purge: got %d, %v; want 0, nil", n, err)
		}
	})

	// itemKeysGo purges at a cutoff taken now and checks that the
	// customers' keys went, and how many keys went in all.
	itemKeysGo := func(t *testing.T, e *env, want int64, customers ...string) {
		t.Helper()
		n, err := e.s.PurgeIdempotency(t.Context(), e.mark())
		if err != nil || n != want {
			t.Errorf("purge: got %d, %v; want %d, nil", n, err, want)
		}
		for _, c := range customers {
			if _, err := e.s.LookupKey(t.Context(), hooks.SenderBloomreach, hooks.ItemKey("sms", c)); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("customer %s after the purge: got %v, want ENOTFOUND", c, err)
			}
		}
	}

	t.Run("ItemKeysAfterRecordPurge", func(t *testing.T) {
		// The newest records purged, jobs and all, then a new batch: its
		// keys still go when they are due.
		e := newEnv(t, b)
		e.save(BatchReceipt(e.now(), "kept", true, "k")) // its job, still to deliver, keeps its record
		r := BatchReceipt(e.now(), "first", true, "a", "b", "c")
		for _, it := range r.Items {
			it.Job.Stored(e.now())
		}
		e.save(r)
		itemKeysGo(t, e, 6, "k", "a", "b", "c")
		if n, err := e.s.PurgeRecords(t.Context(), e.now()); err != nil || n != 1 {
			t.Fatalf("purge records: got %d, %v; want 1, nil", n, err)
		}
		e.save(BatchReceipt(e.now(), "second", true, "d", "e"))
		itemKeysGo(t, e, 3, "d", "e")
	})

	t.Run("ItemKeysPastFutureDated", func(t *testing.T) {
		// A batch dated a day ahead (the clock stepped back since) does
		// not hold back the keys of those that arrived after it.
		e := newEnv(t, b)
		e.save(BatchReceipt(e.now().Add(24*time.Hour), "ahead", true, "a"))
		e.save(BatchReceipt(e.now(), "second", true, "b", "c"))
		n, err := e.s.PurgeIdempotency(t.Context(), e.mark())
		if err != nil || n < 3 {
			t.Errorf("purge: got %d, %v; want 3 or more, nil", n, err)
		}
		for _, c := range []string{"b", "c"} {
			if _, err := e.s.LookupKey(t.Context(), hooks.SenderBloomreach, hooks.ItemKey("sms", c)); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("customer %s after the purge: got %v, want ENOTFOUND", c, err)
			}
		}
	})

	t.Run("ItemKeysPastRetriedJob", func(t *testing.T) {
		// A dead customer retried after the cutoff starts over, but its
		// key and the later customers' keys go with their batches'.
		e := newEnv(t, b)
		e.save(BatchReceipt(e.now(), "first", true, "a"))
		j := e.claim(time.Hour, 10)[0]
		if err := e.s.FailJob(t.Context(), j, e.now(), e.now(), true, "gave up"); err != nil {
			t.Fatal(err)
		}
		e.save(BatchReceipt(e.now(), "second", true, "b", "c"))
		cutoff := e.mark()
		e.wait(time.Millisecond)
		if n, err := e.s.RetryJobs(t.Context(), []int64{j.ID}, e.now()); err != nil || n != 1 {
			t.Fatalf("retry: got %d, %v; want 1, nil", n, err)
		}
		if n, err := e.s.PurgeIdempotency(t.Context(), cutoff); err != nil || n != 5 {
			t.Errorf("purge: got %d, %v; want 5 (three customers, two request IDs), nil", n, err)
		}
		for _, c := range []string{"a", "b", "c"} {
			if _, err := e.s.LookupKey(t.Context(), hooks.SenderBloomreach, hooks.ItemKey("sms", c)); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Errorf("customer %s after the purge: got %v, want ENOTFOUND", c, err)
			}
		}
	})
}
