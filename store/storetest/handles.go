package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// rounds is how many times a race between two handles is run: each round
// is a fresh chance for a store that lets both sides through to show it.
const rounds = 25

// race runs a and b at once, released together, and waits for both.
func race(a, b func()) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { <-start; a() })
	wg.Go(func() { <-start; b() })
	close(start)
	wg.Wait()
}

// testTwoHandles covers what only a database with several writers shows:
// two handles on one database, as two processes or two replicas hold, race
// for the same keys and jobs, and exactly one of them wins each time.
func testTwoHandles(t *testing.T, b Backend) {
	sender := hooks.SenderBubblehouse

	t.Run("SeesWrites", func(t *testing.T) {
		// What one handle commits, the other reads and acts on.
		e := newEnv(t, b)
		other := e.open()
		r := e.receipt("req-1", `{"n":1}`)
		e.save(r)
		if en, err := other.LookupKey(t.Context(), sender, "req-1"); err != nil || en.RequestRef != r.Request.ID {
			t.Fatalf("lookup on the other handle: got %+v, %v; want the entry of request %d", en, err, r.Request.ID)
		}
		found, err := other.SaveReceipt(t.Context(), e.receipt("req-1", `{"n":2}`))
		if err != nil || found == nil || string(found.Response.Body) != `{"n":1}` {
			t.Fatalf("repeat on the other handle: got %+v, %v; want the first answer", found, err)
		}
		jobs, err := other.ClaimJobs(t.Context(), e.now(), time.Hour, 10, 10)
		if err != nil || len(jobs) != 1 || jobs[0].ID != r.Job.ID {
			t.Fatalf("claim on the other handle: got %v, %v; want [%d]", jobIDs(jobs), err, r.Job.ID)
		}
	})

	t.Run("ReserveOneOwner", func(t *testing.T) {
		// Two callers reserve one free key at once: exactly one owns it,
		// and the other is told to wait for it.
		e := newEnv(t, b)
		handles := [2]Store{e.s, e.open()}
		for i := 0; i < rounds; i++ {
			key := fmt.Sprintf("req-%d", i)
			owners := [2]int64{int64(2*i + 100), int64(2*i + 101)}
			keys := [2][]string{{key}, {fmt.Sprintf("other-%d", i), key}} // the second also holds a key of its own
			var found [2]*hooks.Entry
			var errs [2]error
			reserve := func(h int) func() {
				return func() {
					found[h], errs[h] = handles[h].ReserveKeys(t.Context(), sender, keys[h], owners[h], e.now().Add(time.Hour))
				}
			}
			race(reserve(0), reserve(1))
			oneWinner(t, e, i, key, handles, owners, keys, found, errs)
		}
	})

	t.Run("TakeOverOneWinner", func(t *testing.T) {
		// The key's holder died (its lease ran out) and two retries take it
		// over at once: exactly one owns it.
		e := newEnv(t, b)
		handles := [2]Store{e.s, e.open()}
		for i := 0; i < rounds; i++ {
			key := fmt.Sprintf("req-%d", i)
			e.reserve([]string{key}, testOwner, e.now().Add(-time.Second))
			owners := [2]int64{int64(2*i + 100), int64(2*i + 101)}
			keys := [2][]string{{key}, {key}}
			var found [2]*hooks.Entry
			var errs [2]error
			reserve := func(h int) func() {
				return func() {
					found[h], errs[h] = handles[h].ReserveKeys(t.Context(), sender, keys[h], owners[h], e.now().Add(time.Hour))
				}
			}
			race(reserve(0), reserve(1))
			oneWinner(t, e, i, key, handles, owners, keys, found, errs)
			// The holder that died holds nothing any more.
			if lost, err := e.s.FinishReserved(t.Context(), e.receipt(key, `{"who":"dead"}`), testOwner); err != nil ||
				lost == nil || string(lost.Response.Body) == `{"who":"dead"}` {
				t.Fatalf("round %d: finish by the dead holder: got %+v, %v; want the winner's answer", i, lost, err)
			}
		}
	})

	t.Run("TakeOverSaveOneWinner", func(t *testing.T) {
		// Two retries of a request whose holder died are saved at once:
		// one takes the key over and queues the job, the other replays its
		// answer.
		e := newEnv(t, b)
		handles := [2]Store{e.s, e.open()}
		for i := 0; i < rounds; i++ {
			key := fmt.Sprintf("req-%d", i)
			e.reserve([]string{key}, testOwner, e.now().Add(-time.Second))
			receipts := [2]*hooks.Receipt{e.receipt(key, `{"h":0}`), e.receipt(key, `{"h":1}`)}
			var found [2]*hooks.Entry
			var errs [2]error
			save := func(h int) func() {
				return func() { found[h], errs[h] = handles[h].SaveReceipt(t.Context(), receipts[h]) }
			}
			race(save(0), save(1))
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("round %d: got errors %v, %v", i, errs[0], errs[1])
			}
			if (found[0] == nil) == (found[1] == nil) {
				t.Fatalf("round %d: got entries %+v and %+v; want exactly one nil (one winner)", i, found[0], found[1])
			}
			w := 0
			if found[0] != nil {
				w = 1
			}
			if l := found[1-w]; l.State != hooks.EntryDone || string(l.Response.Body) != fmt.Sprintf(`{"h":%d}`, w) {
				t.Fatalf("round %d: loser got %+v, want the winner's answer", i, l)
			}
			jobs := e.jobs(hooks.JobFilter{RequestRef: receipts[w].Request.ID})
			if len(jobs) != 1 {
				t.Fatalf("round %d: winner's jobs: got %d, want 1", i, len(jobs))
			}
		}
		if got, want := len(e.jobs(hooks.JobFilter{Limit: 1000})), rounds; got != want {
			t.Fatalf("jobs: got %d, want %d (one per key)", got, want)
		}
	})

	t.Run("SaveOrReserveOneWinner", func(t *testing.T) {
		// A request saved on one handle and another reserving its key on
		// the other, on a free key and on one whose holder died: one wins,
		// the other is answered with the winner's entry.
		e := newEnv(t, b)
		other := e.open()
		for i := 0; i < 2*rounds; i++ {
			key := fmt.Sprintf("req-%d", i)
			if i%2 == 1 {
				e.reserve([]string{key}, testOwner, e.now().Add(-time.Second))
			}
			r := e.receipt(key, `{"saved":true}`)
			owner := int64(i + 100)
			var saved, reserved *hooks.Entry
			var serr, rerr error
			race(func() { saved, serr = e.s.SaveReceipt(t.Context(), r) },
				func() {
					reserved, rerr = other.ReserveKeys(t.Context(), sender, []string{key}, owner, e.now().Add(time.Hour))
				})
			if serr != nil || rerr != nil {
				t.Fatalf("round %d: got errors %v, %v", i, serr, rerr)
			}
			switch {
			case saved == nil && reserved != nil && reserved.State == hooks.EntryDone && reserved.RequestRef == r.Request.ID:
			case reserved == nil && saved != nil && saved.State == hooks.EntryPending:
				if recs := e.requests(hooks.RequestFilter{RequestID: key}); len(recs) != 0 || r.Job.ID != 0 {
					t.Fatalf("round %d: the save lost but wrote %d records, job %d", i, len(recs), r.Job.ID)
				}
			default:
				t.Fatalf("round %d: save got %+v, reserve got %+v; want exactly one winner", i, saved, reserved)
			}
		}
	})

	t.Run("BatchItemsOneJob", func(t *testing.T) {
		// Two Bloomreach batches whose customers overlap, saved at once on
		// two handles (a batch retried under a new request ID, reaching
		// another replica while the first is still being saved), with the
		// shared customers in opposite orders: both are accepted, each
		// customer is queued exactly once, by the batch that took its key,
		// and the other batch reports it as a duplicate.
		e := newEnv(t, b)
		handles := [2]Store{e.s, e.open()}
		for i := 0; i < rounds; i++ {
			shared := []string{fmt.Sprintf("s%d-1", i), fmt.Sprintf("s%d-2", i), fmt.Sprintf("s%d-3", i)}
			receipts := [2]*hooks.Receipt{
				e.batch(fmt.Sprintf("batch-%d-a", i), append([]string{fmt.Sprintf("a%d", i)}, shared...)...),
				e.batch(fmt.Sprintf("batch-%d-b", i), shared[2], shared[1], shared[0], fmt.Sprintf("b%d", i)),
			}
			var found [2]*hooks.Entry
			var errs [2]error
			save := func(h int) func() {
				return func() { found[h], errs[h] = handles[h].SaveReceipt(t.Context(), receipts[h]) }
			}
			race(save(0), save(1))
			if errs[0] != nil || errs[1] != nil || found[0] != nil || found[1] != nil {
				t.Fatalf("round %d: got %+v, %v and %+v, %v; want both accepted", i, found[0], errs[0], found[1], errs[1])
			}
			oneJobPerItem(t, e, i, receipts)
		}
	})

	t.Run("ClaimNoJobTwice", func(t *testing.T) {
		// Workers on two handles claim at once: no job is handed out
		// twice, and none is left behind.
		e := newEnv(t, b)
		const n = 150
		for i := 0; i < n; i++ {
			e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now())
		}
		seen := claimAll(t, e.now(), []Store{e.s, e.open()}, 4)
		if got, want := len(seen), n; got != want {
			t.Fatalf("distinct jobs claimed: got %d, want %d", got, want)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("job %d: claimed %d times, want 1", id, c)
			}
		}
	})

	t.Run("RescueOnce", func(t *testing.T) {
		// Two processes rescue the same expired jobs at once: each job is
		// rescued once, with one interrupted attempt on record.
		e := newEnv(t, b)
		other := e.open()
		const n = 40
		for i := 0; i < n; i++ {
			e.queue(fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, e.now())
		}
		for round := 1; round <= 3; round++ {
			claimed := e.claim(shortLease, n)
			if len(claimed) != n {
				t.Fatalf("round %d: claimed %d, want %d", round, len(claimed), n)
			}
			e.wait(expire)
			var counts [2]int64
			var errs [2]error
			race(func() { counts[0], errs[0] = e.s.RescueJobs(t.Context(), e.now(), hooks.RetryPolicy{}) },
				func() { counts[1], errs[1] = other.RescueJobs(t.Context(), e.now(), hooks.RetryPolicy{}) })
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("round %d: got errors %v, %v", round, errs[0], errs[1])
			}
			if got := counts[0] + counts[1]; got != n {
				t.Fatalf("round %d: rescued %d + %d, want %d in all", round, counts[0], counts[1], n)
			}
		}
		for _, j := range e.jobs(hooks.JobFilter{Limit: n}) {
			if j.State != hooks.JobAvailable || j.Attempts != 3 {
				t.Errorf("job %d: got %s after %d attempts, want available after 3", j.ID, j.State, j.Attempts)
			}
			if got, want := e.attempts(j.ID), "interrupted,interrupted,interrupted"; got != want {
				t.Errorf("job %d: attempts %s, want %s", j.ID, got, want)
			}
		}
	})

	t.Run("StaleHolder", func(t *testing.T) {
		// A process whose lease ran out, and whose job another process
		// rescued and claimed, can no longer finish, fail, release or
		// extend it.
		e := newEnv(t, b)
		other := e.open()
		e.queue("req-1", hooks.UrgencyRegular, e.now())
		a := e.claim(shortLease, 1)[0]
		e.wait(expire)
		if n, err := other.RescueJobs(t.Context(), e.now(), hooks.RetryPolicy{}); err != nil || n != 1 {
			t.Fatalf("rescue on the other handle: got %d, %v; want 1, nil", n, err)
		}
		bb, err := other.ClaimJobs(t.Context(), e.now(), time.Hour, 1, 1)
		if err != nil || len(bb) != 1 || bb[0].ID != a.ID {
			t.Fatalf("claim on the other handle: got %v, %v; want [%d]", jobIDs(bb), err, a.ID)
		}
		a.AttemptStarted = e.now()
		if err := e.s.CompleteJobs(t.Context(), []*hooks.Job{a}, e.now()); err != nil {
			t.Fatal(err)
		}
		if err := e.s.FailJob(t.Context(), a, e.now(), e.now(), true, "late"); err != nil {
			t.Fatal(err)
		}
		if err := e.s.ReleaseJobs(t.Context(), []*hooks.Job{a}); err != nil {
			t.Fatal(err)
		}
		if ok, err := e.s.ExtendLease(t.Context(), a, e.now().Add(2*time.Hour)); err != nil || ok {
			t.Fatalf("extend by the stale holder: got %v, %v; want false, nil", ok, err)
		}
		if j := e.job(a.ID); j.State != hooks.JobRunning || j.Attempts != 2 || !j.LockedUntil.Equal(bb[0].LockedUntil) {
			t.Fatalf("job: got %+v, want still the other's run (attempt 2, its lease)", j)
		}
		if got, want := e.attempts(a.ID), string(hooks.OutcomeInterrupted); got != want {
			t.Fatalf("attempts: got %q, want %q (nothing from the stale holder)", got, want)
		}
		if err := other.CompleteJobs(t.Context(), bb, e.now()); err != nil {
			t.Fatal(err)
		}
		if got, want := e.job(a.ID).State, hooks.JobDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})
}

// oneWinner checks a round of two reservations of key: exactly one got
// through and owns every key it asked for; the other was told the key is
// pending under the winner's lease, holds nothing, and cannot finish.
func oneWinner(t *testing.T, e *env, round int, key string, handles [2]Store, owners [2]int64, keys [2][]string,
	found [2]*hooks.Entry, errs [2]error) {
	t.Helper()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("round %d: got errors %v, %v", round, errs[0], errs[1])
	}
	if (found[0] == nil) == (found[1] == nil) {
		t.Fatalf("round %d: got entries %+v and %+v; want exactly one nil (one owner)", round, found[0], found[1])
	}
	w := 0
	if found[0] != nil {
		w = 1
	}
	l := 1 - w
	if found[l].State != hooks.EntryPending || found[l].Key != key {
		t.Fatalf("round %d: loser got %+v, want %q pending", round, found[l], key)
	}
	for _, k := range keys[l] {
		if k != key {
			if _, err := e.s.LookupKey(t.Context(), hooks.SenderBubblehouse, k); hooks.ErrorCode(err) != hooks.ENOTFOUND {
				t.Fatalf("round %d: loser's own key %q: got %v, want ENOTFOUND (nothing written)", round, k, err)
			}
		}
	}
	// The loser cannot finish under the key; the winner can.
	if _, err := handles[l].FinishReserved(t.Context(), e.receipt(key, `{"who":"loser"}`), owners[l]); hooks.ErrorCode(err) != hooks.ECONFLICT {
		t.Fatalf("round %d: finish by the loser: got %v, want ECONFLICT", round, err)
	}
	r := e.receipt(key, `{"who":"winner"}`)
	r.Keys = keys[w]
	if lost, err := handles[w].FinishReserved(t.Context(), r, owners[w]); err != nil || lost != nil {
		t.Fatalf("round %d: finish by the winner: got %+v, %v; want nil, nil", round, lost, err)
	}
}

// batch builds a Bloomreach batch receipt the way the batch handler does,
// received now (see BatchReceipt).
func (e *env) batch(requestID string, customers ...string) *hooks.Receipt {
	r := e.receipt(requestID, `{"success":true}`)
	b := BatchReceipt(e.now(), requestID, true, customers...)
	b.Request.Header, b.Request.Response, b.Keys = r.Request.Header, r.Request.Response, r.Keys
	return b
}

// oneJobPerItem checks a round of two batches saved at once: every item
// key has exactly one job, queued for the batch whose item it reported as
// new and that the key's entry names; the same key in the other batch was
// reported a duplicate and queued nothing. It claims the round's jobs.
func oneJobPerItem(t *testing.T, e *env, round int, receipts [2]*hooks.Receipt) {
	t.Helper()
	owner := map[string]int64{} // item key → request that queued it
	for _, r := range receipts {
		for _, it := range r.Items {
			switch {
			case it.Duplicate && it.Job.ID != 0:
				t.Fatalf("round %d: item %q of request %d: reported a duplicate but got job %d", round, it.Key, r.Request.ID, it.Job.ID)
			case it.Duplicate:
			case it.Job.ID == 0 || it.Job.RequestRef != r.Request.ID:
				t.Fatalf("round %d: item %q of request %d: got job %+v, want one queued for the request", round, it.Key, r.Request.ID, it.Job)
			case owner[it.Key] != 0:
				t.Fatalf("round %d: item %q queued by requests %d and %d", round, it.Key, owner[it.Key], r.Request.ID)
			default:
				owner[it.Key] = r.Request.ID
			}
		}
	}
	for _, r := range receipts {
		for _, it := range r.Items {
			if owner[it.Key] == 0 {
				t.Fatalf("round %d: item %q reported a duplicate by both batches: lost", round, it.Key)
			}
			en, err := e.s.LookupKey(t.Context(), hooks.SenderBloomreach, it.Key)
			if err != nil || en.RequestRef != owner[it.Key] {
				t.Fatalf("round %d: entry of item %q: got %+v, %v; want that of request %d", round, it.Key, en, err, owner[it.Key])
			}
		}
	}
	// What the store holds, as a worker is handed it: one job per
	// customer, delivering that customer.
	stored := map[string]int{} // item key → jobs stored for it
	for _, j := range e.claim(time.Hour, 100) {
		var c struct{ Customer string }
		if err := json.Unmarshal(j.Body, &c); err != nil {
			t.Fatalf("round %d: job %d: body %s: %v", round, j.ID, j.Body, err)
		}
		k := "sms/item:" + c.Customer
		if stored[k]++; j.RequestRef != owner[k] {
			t.Fatalf("round %d: job %d of item %q: queued for request %d, want %d", round, j.ID, k, j.RequestRef, owner[k])
		}
	}
	if got, want := len(stored), len(owner); got != want {
		t.Fatalf("round %d: customers with jobs: got %d, want %d", round, got, want)
	}
	for k, n := range stored {
		if n != 1 {
			t.Fatalf("round %d: item %q: got %d jobs, want 1", round, k, n)
		}
	}
}
