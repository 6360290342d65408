package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
)

// Two handles on one database are two replicas: everything that decides an
// owner must decide one between them.
func TestTwoHandles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("ReserveKeys", func(t *testing.T) {
		t.Parallel()
		// Two reservers of the same keys, in opposite orders, at once: one
		// owns all of them, the other is told to wait, and nothing of the
		// loser's is left behind.
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		for round := range 20 {
			k1, k2 := fmt.Sprintf("req-%d", round), fmt.Sprintf("bhid-%d", round)
			var ea, eb *hooks.Entry
			var erra, errb error
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				ea, erra = a.ReserveKeys(ctx, sender, []string{k1, k2}, 1, time.Now().Add(time.Minute))
			}()
			go func() {
				defer wg.Done()
				eb, errb = b.ReserveKeys(ctx, sender, []string{k2, k1}, 2, time.Now().Add(time.Minute))
			}()
			wg.Wait()
			if erra != nil || errb != nil {
				t.Fatalf("round %d: %v, %v", round, erra, errb)
			}
			if (ea == nil) == (eb == nil) {
				t.Fatalf("round %d: got entries %+v and %+v, want exactly one owner", round, ea, eb)
			}
			winner, owner, lost := a, int64(1), eb
			if eb == nil {
				winner, owner, lost = b, 2, ea
			}
			if lost.State != hooks.EntryPending {
				t.Fatalf("round %d: loser got %+v, want a pending entry", round, lost)
			}
			// The winner holds both keys: it finishes under both.
			r := newReceipt(time.Now(), k1, `{"n":1}`, k2)
			if got, err := winner.FinishReserved(ctx, r, owner); err != nil || got != nil {
				t.Fatalf("round %d: winner's finish: %+v, %v", round, got, err)
			}
			for _, k := range []string{k1, k2} {
				if e := mustLookup(t, a, k); e.State != hooks.EntryDone || e.RequestRef != r.Request.ID {
					t.Fatalf("round %d: key %s: got %+v, want the winner's answer", round, k, e)
				}
			}
		}
	})

	t.Run("ClaimJobs", func(t *testing.T) {
		t.Parallel()
		// Two replicas draining one queue never get the same job.
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		const n = 200
		for i := range n {
			mustQueue(t, a, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		seen := claimAll(t, time.Now(), a, b, a, b)
		if got, want := len(seen), n; got != want {
			t.Fatalf("distinct jobs claimed: got %d, want %d", got, want)
		}
	})

	t.Run("TakeOver", func(t *testing.T) {
		t.Parallel()
		// A key whose reservation expired, taken over by two at once: by
		// two reservers, one owns it; by two receipts, one is written and
		// the other is its duplicate.
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		for round := range 10 {
			key := fmt.Sprintf("req-%d", round)
			if _, err := a.ReserveKeys(ctx, sender, []string{key}, 99, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			s.expireKeys(t)
			var wg sync.WaitGroup
			var ea, eb *hooks.Entry
			var erra, errb error
			wg.Add(2)
			if round%2 == 0 {
				go func() {
					defer wg.Done()
					ea, erra = a.ReserveKeys(ctx, sender, []string{key}, 1, time.Now().Add(time.Minute))
				}()
				go func() {
					defer wg.Done()
					eb, errb = b.ReserveKeys(ctx, sender, []string{key}, 2, time.Now().Add(time.Minute))
				}()
			} else {
				go func() { defer wg.Done(); ea, erra = a.SaveReceipt(ctx, newReceipt(time.Now(), key, `{"who":"a"}`)) }()
				go func() { defer wg.Done(); eb, errb = b.SaveReceipt(ctx, newReceipt(time.Now(), key, `{"who":"b"}`)) }()
			}
			wg.Wait()
			if erra != nil || errb != nil {
				t.Fatalf("round %d: %v, %v", round, erra, errb)
			}
			if (ea == nil) == (eb == nil) {
				t.Fatalf("round %d: got entries %+v and %+v, want one winner", round, ea, eb)
			}
		}
		// Each receipt round wrote one job.
		if got, want := len(mustFindJobs(t, a, hooks.JobFilter{})), 5; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("StaleHolder", func(t *testing.T) {
		t.Parallel()
		// Replica A lost its lease and B took the job: nothing A does with
		// its claim changes the job, and only B's run is on record.
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		job := mustQueue(t, a, "req-1", hooks.UrgencyRegular, t0)
		stale := mustClaim(t, a, time.Now(), time.Minute, 1)[0]
		s.expireJobs(t)
		if got := mustRescue(t, b, time.Now()); got != 1 {
			t.Fatalf("rescued: got %d, want 1", got)
		}
		live := mustClaim(t, b, time.Now(), time.Minute, 1)[0]
		stale.AttemptStarted = time.Now()
		if err := a.CompleteJobs(ctx, []*hooks.Job{stale}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := a.FailJob(ctx, stale, time.Now(), time.Now(), true, "stale"); err != nil {
			t.Fatal(err)
		}
		if err := a.ReleaseJobs(ctx, []*hooks.Job{stale}); err != nil {
			t.Fatal(err)
		}
		if ok, err := a.ExtendLease(ctx, stale, time.Now().Add(time.Hour)); err != nil || ok {
			t.Fatalf("stale extend: got %v, %v; want false", ok, err)
		}
		if j := mustJob(t, b, job.ID); j.State != hooks.JobRunning || j.Attempts != 2 {
			t.Fatalf("job after the stale holder's calls: got %+v, want B's running attempt 2", j)
		}
		live.AttemptStarted = time.Now()
		if err := b.CompleteJobs(ctx, []*hooks.Job{live}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, want := mustJob(t, a, job.ID).State, hooks.JobDone; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
		atts, err := a.FindAttempts(ctx, job.ID)
		if err != nil || len(atts) != 2 || atts[0].Outcome != hooks.OutcomeInterrupted || atts[1].Outcome != hooks.OutcomeOK {
			t.Fatalf("attempts: got %+v, %v; want interrupted (the rescue), ok (B's)", atts, err)
		}
	})

	t.Run("RescueJobs", func(t *testing.T) {
		t.Parallel()
		// Two replicas rescuing the same expired jobs at once record each
		// interrupted attempt once.
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		const n = 50
		for i := range n {
			mustQueue(t, a, fmt.Sprintf("req-%d", i), hooks.UrgencyRegular, t0)
		}
		mustClaim(t, a, time.Now(), time.Minute, n)
		s.expireJobs(t)
		var na, nb int64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); na = mustRescue(t, a, time.Now()) }()
		go func() { defer wg.Done(); nb = mustRescue(t, b, time.Now()) }()
		wg.Wait()
		if na+nb != n {
			t.Fatalf("rescued: %d + %d, want %d in all", na, nb, n)
		}
		for _, j := range mustFindJobs(t, a, hooks.JobFilter{}) {
			if atts, _ := a.FindAttempts(ctx, j.ID); len(atts) != 1 {
				t.Errorf("job %d: %d attempts recorded, want 1", j.ID, len(atts))
			}
		}
	})

	t.Run("SaveReceipt", func(t *testing.T) {
		t.Parallel()
		// 100 requests with one ID, split across two replicas: one is
		// processed, every other gets its answer.
		s := newSchema(t)
		handles := []*postgres.DB{s.open(t), s.open(t)}
		const n = 100
		answers := make([]string, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := newReceipt(time.Now(), "req-1", fmt.Sprintf(`{"n":%d}`, i), "bhid-1")
				<-start
				e, err := handles[i%2].SaveReceipt(ctx, r)
				switch {
				case err != nil:
					t.Errorf("save %d: %v", i, err)
				case e == nil:
					answers[i] = string(r.Request.Response)
				default:
					answers[i] = string(e.Response.Body)
				}
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			if answers[i] != answers[0] {
				t.Fatalf("answer %d: got %s, want %s", i, answers[i], answers[0])
			}
		}
		if got, want := len(mustFindJobs(t, handles[0], hooks.JobFilter{})), 1; got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("BatchItemsNoDeadlock", func(t *testing.T) {
		t.Parallel()
		// Batches sharing customers, in opposite orders, saved at once
		// on two replicas: their item keys are taken in one order, so
		// neither waits for a deadlock to be detected (a second each).
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		batch := func(rid string, keys ...string) *hooks.Receipt {
			r := newReceipt(time.Now(), rid, `{"success":true}`)
			r.Job = nil
			r.Request.Sender = hooks.SenderBloomreach
			for _, k := range keys {
				j := hooks.NewJob(r.Request, time.Now())
				j.Payload = fmt.Appendf(nil, `{"item":%q}`, k)
				r.Items = append(r.Items, &hooks.ReceiptItem{Key: k, Job: j})
			}
			return r
		}
		for round := range 20 {
			var keys []string
			for i := range 50 {
				keys = append(keys, fmt.Sprintf("r%d-c%02d", round, i))
			}
			reversed := slices.Clone(keys)
			slices.Reverse(reversed)
			ra, rb := batch(fmt.Sprintf("a-%d", round), keys...), batch(fmt.Sprintf("b-%d", round), reversed...)
			var wg sync.WaitGroup
			var erra, errb error
			wg.Add(2)
			go func() { defer wg.Done(); _, erra = a.SaveReceipt(ctx, ra) }()
			go func() { defer wg.Done(); _, errb = b.SaveReceipt(ctx, rb) }()
			wg.Wait()
			if erra != nil || errb != nil {
				t.Fatalf("round %d: %v, %v", round, erra, errb)
			}
		}
		if n := a.Conflicts() + b.Conflicts(); n != 0 {
			t.Fatalf("%d transactions lost a deadlock, want none", n)
		}
	})
}

// Leases are judged by the database's clock: a replica whose clock runs an
// hour ahead neither rescues, nor claims, nor takes over what another holds.
func TestDatabaseClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	a, ahead := s.open(t), s.open(t)
	skewed := func() time.Time { return time.Now().Add(time.Hour) }
	ahead.Now = skewed
	mustQueue(t, a, "req-1", hooks.UrgencyRegular, t0)
	if got := mustClaim(t, a, time.Now(), time.Minute, 1); len(got) != 1 {
		t.Fatalf("claim: got %d jobs, want 1", len(got))
	}
	if n := mustRescue(t, ahead, skewed()); n != 0 {
		t.Fatalf("rescued by the replica ahead: got %d, want 0", n)
	}
	if _, err := a.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-2"}, 1, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if e, err := ahead.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-2"}, 2, skewed().Add(time.Minute)); err != nil || e == nil {
		t.Fatalf("reserve on the replica ahead: got %+v, %v; want the live reservation", e, err)
	}
	if e := mustCommit(t, ahead, newReceipt(skewed(), "req-2", `{}`)); e == nil || e.State != hooks.EntryPending {
		t.Fatalf("save on the replica ahead: got %+v, want the live reservation", e)
	}
	if ok, err := a.TryLead(ctx, "rescue", "a", time.Minute); err != nil || !ok {
		t.Fatalf("lead: got %v, %v; want true", ok, err)
	}
	if ok, err := ahead.TryLead(ctx, "rescue", "ahead", time.Minute); err != nil || ok {
		t.Fatalf("lead on the replica ahead: got %v, %v; want false", ok, err)
	}
}

// ReserveKeys reads the keys that exist before it takes them; a key that
// another client inserts between the two finds the reservation half done.
// It must then put back what it wrote: a key it inserted is deleted, an
// expired reservation it took over gets its owner and lease back.
func TestDB_ReserveKeysRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	db := s.open(t)
	useClock(db)
	// An expired reservation of another owner on "expired".
	s.exec(t, `INSERT INTO idempotency (sender, key, state, locked_until, lease_expires, owner, created_at)
		VALUES ('bubblehouse', 'expired', 'pending', now() - interval '1 hour', now() - interval '1 hour', 5, now())`)
	// Another client inserts "contended", and commits only once the
	// reservation waits for it.
	conn := s.conn(t)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency (sender, key, state, locked_until, lease_expires, owner, created_at)
		VALUES ('bubblehouse', 'contended', 'pending', now() + interval '1 hour', now() + interval '1 hour', 6, now())`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		e   *hooks.Entry
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"fresh", "expired", "contended"}, testOwner, t0.Add(time.Minute))
		done <- result{e, err}
	}()
	// The reservation is waiting for the other client's insert.
	waitFor(t, s, `SELECT count(*) > 0 FROM pg_locks WHERE NOT granted`)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || res.e == nil || res.e.Key != "contended" || res.e.State != hooks.EntryPending {
		t.Fatalf("got %+v, %v; want the contended key's pending entry", res.e, res.err)
	}
	if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "fresh"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
		t.Errorf("fresh: got %v, want ENOTFOUND (put back)", err)
	}
	var owner int64
	var expired bool
	if err := conn.QueryRow(ctx, `SELECT owner, locked_until < now() AND lease_expires < now() FROM idempotency
		WHERE key = 'expired'`).Scan(&owner, &expired); err != nil {
		t.Fatal(err)
	}
	if owner != 5 || !expired {
		t.Errorf("expired: owner %d, still expired %v; want owner 5's expired reservation back", owner, expired)
	}
}

// waitFor polls a boolean query on the schema until it is true.
func waitFor(t *testing.T, s *schema, q string) {
	t.Helper()
	conn := s.conn(t)
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var ok bool
		if err := conn.QueryRow(context.Background(), q).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
	}
	t.Fatalf("%s: still false after 10s", q)
}
