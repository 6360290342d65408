package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
	"github.com/hookbay/hookbay/store/storetest"
)

func TestOpen(t *testing.T) {
	t.Parallel()

	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		// Data committed before Close is there after reopening, and running
		// the migrations again is harmless.
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{"ok":1}`, "bhid-1")
		mustCommit(t, db, r)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = s.open(t)
		useClock(db)
		if reqs := mustFindRequests(t, db, hooks.RequestFilter{}); len(reqs) != 1 || reqs[0].ID != r.Request.ID {
			t.Fatalf("requests after reopening: got %+v, want request %d", reqs, r.Request.ID)
		}
		if e := mustCommit(t, db, newReceipt(t0, "req-1", `{"ok":2}`)); e == nil || string(e.Response.Body) != `{"ok":1}` {
			t.Fatalf("repeat after reopening: got %+v, want the first answer", e)
		}
	})

	t.Run("Replicas", func(t *testing.T) {
		t.Parallel()
		// Several replicas starting at once on an empty schema: the
		// migrations run once, under the lock, and every replica opens.
		s := newSchema(t)
		const n = 4
		var wg sync.WaitGroup
		dbs := make([]*postgres.DB, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dbs[i], errs[i] = postgres.Open(context.Background(), s.url, postgres.WithSchema(s.name))
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("replica %d: %v", i, errs[i])
			}
			t.Cleanup(func() { dbs[i].Close() })
		}
		conn := s.conn(t)
		defer conn.Close(context.Background())
		var applied int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
			t.Fatal(err)
		}
		files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := applied, len(files); got != want {
			t.Fatalf("migrations recorded: got %d, want %d", got, want)
		}
		mustCommit(t, dbs[0], newReceipt(t0, "req-1", `{}`))
		if got := mustFindRequests(t, dbs[n-1], hooks.RequestFilter{}); len(got) != 1 {
			t.Fatalf("another replica's requests: got %d, want 1", len(got))
		}
	})

	t.Run("MaxConns", func(t *testing.T) {
		t.Parallel()
		// Readers blocked behind a table lock hold every connection the
		// pool may open: as many as allowed, and never so few that the
		// writers would leave nothing to the readers (2 writers and 4).
		for _, tt := range []struct{ max, want int }{{9, 9}, {1, 6}} {
			t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				s := newSchema(t)
				app := s.name
				base := s.url
				s.url += "&application_name=" + app
				db := s.open(t, postgres.WithMaxConns(tt.max), postgres.WithWriters(2))
				s.url = base
				conn := s.conn(t)
				defer conn.Close(ctx)
				tx, err := conn.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, `LOCK TABLE idempotency IN ACCESS EXCLUSIVE MODE`); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				for range 3 * tt.want {
					wg.Add(1)
					go func() { defer wg.Done(); db.LookupKey(ctx, hooks.SenderBubblehouse, "k") }()
				}
				q := fmt.Sprintf(`SELECT count(*) >= %d FROM pg_stat_activity WHERE application_name = '%s' AND wait_event_type = 'Lock'`, tt.want, app)
				waitFor(t, s, q)
				time.Sleep(100 * time.Millisecond) // room for more, were the pool to open them
				var n int
				if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if err := tx.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if n != tt.want {
					t.Fatalf("connections: got %d, want %d", n, tt.want)
				}
			})
		}
	})

	t.Run("ErrBadURL", func(t *testing.T) {
		t.Parallel()
		if db, err := postgres.Open(context.Background(), "postgres://%zz"); err == nil {
			db.Close()
			t.Fatal("open a malformed URL: got nil error")
		}
	})

	t.Run("ErrUnreachable", func(t *testing.T) {
		t.Parallel()
		// No server: Open fails, and says the store is unavailable.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
		if err == nil {
			db.Close()
			t.Fatal("open with no server: got nil error")
		}
		if got, want := hooks.ErrorCode(err), hooks.EUNAVAILABLE; got != want {
			t.Fatalf("error code: got %q (%v), want %q", got, err, want)
		}
	})
}

func TestDB_Ping(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, 5*time.Second, "Ping after Close", func() error { return db.Ping(context.Background()) }); err == nil {
		t.Fatal("ping after close: got nil, want an error")
	}
}

func TestDB_Close(t *testing.T) {
	t.Parallel()

	t.Run("ErrClosed", func(t *testing.T) {
		t.Parallel()
		// Every write after Close fails with ErrClosed instead of hanging;
		// reads fail too.
		ctx := context.Background()
		db := openDB(t)
		useClock(db)
		mustCommit(t, db, newReceipt(t0, "req-1", `{}`))
		jobs := mustClaim(t, db, t0, time.Minute, 1)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second close: got %v, want nil", err)
		}
		sender, keys := hooks.SenderBubblehouse, []string{"req-2"}
		writes := map[string]func() error{
			"SaveReceipt": func() error { _, err := db.SaveReceipt(ctx, newReceipt(t0, "req-2", `{}`)); return err },
			"ReserveKeys": func() error {
				_, err := db.ReserveKeys(ctx, sender, keys, testOwner, t0.Add(time.Minute))
				return err
			},
			"FinishReserved": func() error { _, err := db.FinishReserved(ctx, newReceipt(t0, "req-2", `{}`), testOwner); return err },
			"ReleaseKeys":    func() error { return db.ReleaseKeys(ctx, sender, keys, testOwner) },
			"Record":         func() error { return db.Record(ctx, newReceipt(t0, "req-2", `{}`).Request) },
			"ClaimJobs":      func() error { _, err := db.ClaimJobs(ctx, t0, time.Minute, 1, 1); return err },
			"CompleteJobs":   func() error { return db.CompleteJobs(ctx, jobs, t0) },
			"RescueJobs":     func() error { _, err := db.RescueJobs(ctx, t0, hooks.RetryPolicy{}); return err },
			"FailJob":        func() error { return db.FailJob(ctx, jobs[0], t0, t0.Add(time.Minute), false, "boom") },
			"ReleaseJobs":    func() error { return db.ReleaseJobs(ctx, jobs) },
			"PurgeIdempotency": func() error {
				_, err := db.PurgeIdempotency(ctx, t0.Add(time.Hour))
				return err
			},
			"PurgeRecords": func() error { _, err := db.PurgeRecords(ctx, t0.Add(time.Hour)); return err },
			"TryLead":      func() error { _, err := db.TryLead(ctx, "purge", "a", time.Minute); return err },
			"Listen":       func() error { return db.Listen(ctx, func(int) {}) },
		}
		for name, fn := range writes {
			for i := 0; i < 20; i++ {
				if err := within(t, 5*time.Second, name+" after Close", fn); !errors.Is(err, postgres.ErrClosed) {
					t.Fatalf("%s after close: got %v, want %v", name, err, postgres.ErrClosed)
				}
			}
		}
		reads := map[string]func() error{
			"LookupKey":    func() error { _, err := db.LookupKey(ctx, sender, "req-1"); return err },
			"FindRequests": func() error { _, err := db.FindRequests(ctx, hooks.RequestFilter{}); return err },
			"FindJobs":     func() error { _, err := db.FindJobs(ctx, hooks.JobFilter{}); return err },
		}
		for name, fn := range reads {
			if err := within(t, 5*time.Second, name+" after Close", fn); err == nil {
				t.Fatalf("%s after close: got nil, want an error", name)
			}
		}
	})

	t.Run("CommitsQueuedWrites", func(t *testing.T) {
		t.Parallel()
		// Close racing with writes: every write either succeeded, and is
		// there after reopening, or failed with ErrClosed. None hangs.
		ctx := context.Background()
		s := newSchema(t)
		db := s.open(t)
		useClock(db)
		const n = 100
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = db.SaveReceipt(ctx, newReceipt(t0, fmt.Sprintf("req-%d", i), `{}`))
			}()
		}
		close(start)
		time.Sleep(time.Millisecond)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := within(t, 10*time.Second, "writers", func() error { wg.Wait(); return nil }); err != nil {
			t.Fatal(err)
		}
		db = s.open(t)
		for i, err := range errs {
			rid := fmt.Sprintf("req-%d", i)
			got := len(mustFindRequests(t, db, hooks.RequestFilter{RequestID: rid}))
			switch {
			case err == nil && got != 1:
				t.Errorf("%s: saved, but got %d records after reopen, want 1", rid, got)
			case errors.Is(err, postgres.ErrClosed) && got != 0:
				t.Errorf("%s: ErrClosed, but got %d records after reopen, want 0", rid, got)
			case err != nil && !errors.Is(err, postgres.ErrClosed):
				t.Errorf("%s: got %v, want nil or ErrClosed", rid, err)
			}
		}
	})
}

// TestDB_GroupCommit checks that writes batched into one transaction are
// isolated from each other's failures.
func TestDB_GroupCommit(t *testing.T) {
	t.Parallel()
	// badReceipt fails inside its transaction: its job breaks the CHECK on
	// priority.
	badReceipt := func(rid string) *hooks.Receipt {
		r := newReceipt(t0, rid, `{"bad":true}`)
		r.Job.Priority = 99
		return r
	}
	// batched saves the receipts on one writer while another client holds
	// a lock that the first insert waits for: the first is taken alone,
	// the others queue behind it and form the next batch.
	batched := func(t *testing.T, s *schema, db *postgres.DB, receipts []*hooks.Receipt) []error {
		ctx := context.Background()
		conn := s.conn(t)
		defer conn.Close(ctx)
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE requests IN SHARE MODE`); err != nil {
			t.Fatal(err)
		}
		errs := make([]chan error, len(receipts))
		for i, r := range receipts {
			errs[i] = make(chan error, 1)
			go func() { _, err := db.SaveReceipt(ctx, r); errs[i] <- err }()
			time.Sleep(20 * time.Millisecond)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		out := make([]error, len(receipts))
		for i, ch := range errs {
			select {
			case out[i] = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatalf("save %d did not return", i)
			}
		}
		return out
	}

	t.Run("FailureIsolated", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := newSchema(t)
		db := s.open(t, postgres.WithWriters(1))
		useClock(db)
		receipts := make([]*hooks.Receipt, 6)
		for i := range receipts {
			if i == 3 {
				receipts[i] = badReceipt("bad")
			} else {
				receipts[i] = newReceipt(t0, fmt.Sprintf("req-%d", i), fmt.Sprintf(`{"n":%d}`, i))
			}
		}
		for i, err := range batched(t, s, db, receipts) {
			if (i == 3) != (err != nil) {
				t.Errorf("receipt %d: got %v", i, err)
			}
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 5; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "bad"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("key of the failed receipt: got %v, want ENOTFOUND", err)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 5; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("Window", func(t *testing.T) {
		t.Parallel()
		// Writes wait up to the window for company, and all are saved.
		db := openDB(t, postgres.WithGroupCommit(5*time.Millisecond, 16))
		useClock(db)
		var wg sync.WaitGroup
		errs := make([]error, 50)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.SaveReceipt(context.Background(), newReceipt(t0, fmt.Sprintf("req-%d", i), `{}`))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{Limit: 100})), len(errs); got != want {
			t.Fatalf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("OneByOne", func(t *testing.T) {
		t.Parallel()
		// A waits for a key held elsewhere, so it takes back what it
		// wrote; B, behind it in the same batch, shares A's other key. B
		// must find that key free, as it would had A run alone before it,
		// not answered by A's record, which is taken back.
		ctx := context.Background()
		s := newSchema(t)
		db := s.open(t, postgres.WithWriters(1))
		useClock(db)
		if _, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"held"}, testOwner, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		a := newReceipt(t0, "req-a", `{"who":"a"}`, "shared", "held")
		b := newReceipt(t0, "req-b", `{"who":"b"}`, "shared")
		for i, err := range batched(t, s, db, []*hooks.Receipt{newReceipt(t0, "req-0", `{}`), a, b}) {
			if err != nil {
				t.Fatalf("receipt %d: %v", i, err)
			}
		}
		if a.Request.ID != 0 {
			t.Errorf("A: recorded as %d, want taken back (it waits for the held key)", a.Request.ID)
		}
		if b.Request.DuplicateOf != 0 || b.Job.ID == 0 {
			t.Errorf("B: duplicate of %d, job %d; want a new request with its job", b.Request.DuplicateOf, b.Job.ID)
		}
		if e := mustLookup(t, db, "shared"); e.RequestRef != b.Request.ID || string(e.Response.Body) != `{"who":"b"}` {
			t.Errorf("shared key: got %+v, want B's answer", e)
		}
	})

	t.Run("DuplicateRetriedAlone", func(t *testing.T) {
		t.Parallel()
		// A duplicate that shared a failed batch is run again. Its record
		// must look the same as if it had been saved once.
		s := newSchema(t)
		db := s.open(t, postgres.WithWriters(1))
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`)
		mustCommit(t, db, first)
		dup := newReceipt(t0, "req-1", `{"n":2}`)
		errs := batched(t, s, db, []*hooks.Receipt{newReceipt(t0, "req-0", `{}`), dup, badReceipt("bad")})
		for i, err := range errs {
			if (i == 2) != (err != nil) {
				t.Fatalf("receipt %d: got error %v", i, err)
			}
		}
		reqs := mustFindRequests(t, db, hooks.RequestFilter{RequestID: "req-1"})
		if len(reqs) != 2 || reqs[0].DuplicateOf != first.Request.ID || len(reqs[0].Notes) != 1 || len(dup.Request.Notes) != 1 {
			t.Fatalf("records of req-1: got %+v, want the original and one duplicate with one note", reqs)
		}
	})
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	// A unique violation is a conflict, classified by its SQLSTATE.
	ctx := context.Background()
	db := openDB(t)
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := db.SaveToken(ctx, hash, "client", nil, t0.Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	err := db.SaveToken(ctx, hash, "client", nil, t0.Add(time.Hour), t0)
	if got, want := hooks.ErrorCode(err), hooks.ECONFLICT; got != want {
		t.Fatalf("the same token twice: got %q (%v), want %q", got, err, want)
	}
}

func TestDB_Tokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := db.SaveToken(ctx, hash, "client-1", []string{"read", "write"}, t0.Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	client, scopes, err := db.TokenClient(ctx, hash, t0.Add(time.Minute))
	if err != nil || client != "client-1" || fmt.Sprint(scopes) != "[read write]" {
		t.Fatalf("live token: got %q, %v, %v", client, scopes, err)
	}
	if client, _, err := db.TokenClient(ctx, hash, t0.Add(time.Hour)); err != nil || client != "" {
		t.Fatalf("expired token: got %q, %v; want none", client, err)
	}
	// Saving another deletes the expired ones on the way.
	if err := db.SaveToken(ctx, []byte("other"), "client-2", nil, t0.Add(3*time.Hour), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if client, _, err := db.TokenClient(ctx, hash, t0); err != nil || client != "" {
		t.Fatalf("token after the cleanup: got %q, %v; want none", client, err)
	}
}

func TestDB_Faults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	limited := &hooks.Fault{Sender: hooks.SenderBloomreach, Kind: hooks.FaultStatus, Status: 503, Remaining: 1, Percent: 100, CreatedAt: t0}
	expiring := &hooks.Fault{Sender: hooks.SenderSvix, Name: "user.created", Kind: hooks.FaultDelay, Delay: 1500 * time.Millisecond,
		Remaining: -1, Percent: 50, ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	for _, f := range []*hooks.Fault{limited, expiring} {
		if err := db.AddFault(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddFault(ctx, &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultStatus, Status: 200, Percent: 100}); hooks.ErrorCode(err) != hooks.EINVALID {
		t.Fatalf("a fault answering 200: got %v, want EINVALID", err)
	}
	got, err := db.Faults(ctx, t0)
	if err != nil || len(got) != 2 {
		t.Fatalf("faults: got %+v, %v; want 2", got, err)
	}
	if f := got[1]; f.ID != expiring.ID || f.Name != "user.created" || f.Delay != expiring.Delay || f.Percent != 50 ||
		!f.ExpiresAt.Equal(expiring.ExpiresAt) || !f.CreatedAt.Equal(t0) || f.Remaining != -1 {
		t.Errorf("fault: got %+v, want %+v", f, expiring)
	}
	if got, _ := db.Faults(ctx, t0.Add(time.Hour)); len(got) != 1 || got[0].ID != limited.ID {
		t.Errorf("faults after one expired: got %+v, want the limited one", got)
	}
	if ok, err := db.UseFault(ctx, limited.ID); err != nil || !ok {
		t.Fatalf("use: got %v, %v; want true", ok, err)
	}
	if ok, err := db.UseFault(ctx, limited.ID); err != nil || ok {
		t.Fatalf("use up: got %v, %v; want false", ok, err)
	}
	if ok, err := db.DeleteFault(ctx, expiring.ID); err != nil || !ok {
		t.Fatalf("delete: got %v, %v; want true", ok, err)
	}
	if ok, err := db.DeleteFault(ctx, expiring.ID); err != nil || ok {
		t.Fatalf("delete again: got %v, %v; want false", ok, err)
	}
	if n, err := db.ClearFaults(ctx, hooks.SenderSvix); err != nil || n != 0 {
		t.Fatalf("clear svix: got %d, %v; want 0", n, err)
	}
	if n, err := db.ClearFaults(ctx, ""); err != nil || n != 1 {
		t.Fatalf("clear all: got %d, %v; want 1", n, err)
	}
	// IDs are never reused.
	again := &hooks.Fault{Sender: hooks.SenderBloomreach, Kind: hooks.FaultDrop, Percent: 100, CreatedAt: t0}
	if err := db.AddFault(ctx, again); err != nil || again.ID <= expiring.ID {
		t.Fatalf("new fault: id %d, %v; want above %d", again.ID, err, expiring.ID)
	}
}

func TestDB_PurgeRecords(t *testing.T) {
	t.Parallel()
	// Old requests go with their jobs and attempts, but never a request
	// whose job is still to be delivered.
	ctx := context.Background()
	db := openDB(t)
	old := time.Now().Add(-40 * 24 * time.Hour)
	done := newReceipt(old, "old-done", `{}`)
	done.Job.Stored(old)
	mustCommit(t, db, done)
	mustCommit(t, db, newReceipt(old, "old-waiting", `{}`))
	recent := newReceipt(time.Now(), "recent", `{}`)
	recent.Job.Stored(time.Now())
	mustCommit(t, db, recent)
	attempted := newReceipt(old, "old-attempted", `{}`)
	mustCommit(t, db, attempted)
	for _, j := range mustClaim(t, db, time.Now(), time.Minute, 10) {
		if j.ID == attempted.Job.ID {
			j.AttemptStarted, j.AttemptDuration = time.Now(), time.Millisecond
			if err := db.CompleteJobs(ctx, []*hooks.Job{j}, time.Now()); err != nil {
				t.Fatal(err)
			}
		} else if err := db.ReleaseJobs(ctx, []*hooks.Job{j}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.PurgeRecords(ctx, time.Now().Add(-30*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("purged: got %d, %v; want 2 (old-done and old-attempted)", n, err)
	}
	for id, want := range map[string]int{"old-done": 0, "old-attempted": 0, "old-waiting": 1, "recent": 1} {
		if got := len(mustFindRequests(t, db, hooks.RequestFilter{RequestID: id})); got != want {
			t.Errorf("%s: got %d records, want %d", id, got, want)
		}
	}
	if atts, _ := db.FindAttempts(ctx, attempted.Job.ID); len(atts) != 0 {
		t.Errorf("attempts of a purged job: got %d, want 0", len(atts))
	}
	if js := mustFindJobs(t, db, hooks.JobFilter{}); len(js) != 2 {
		t.Errorf("jobs left: got %d, want 2", len(js))
	}
}

// A schema from before 0004_claimed_ahead.sql, with a job running and one
// waiting, keeps both through the migration, and the running one, claimed
// before claims said how, is rescued with its attempt counted, as it was
// before.
func TestOpen_MigratesClaimedAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	db := s.open(t)
	useClock(db)
	for _, id := range []string{"running", "waiting"} {
		mustCommit(t, db, newReceipt(t0, id, `{}`))
	}
	claimed, err := db.ClaimJobs(ctx, t0, time.Minute, 1, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d jobs, %v", len(claimed), err)
	}
	// Back to the schema before the migration.
	conn := s.reopenAfter(t, db, `ALTER TABLE jobs DROP COLUMN ahead; DELETE FROM schema_migrations WHERE name LIKE '%0004_claimed_ahead%'`)
	defer conn.Close(ctx)

	db = s.open(t)
	useClock(db)
	// The database judges leases by its own clock: this one's is a minute.
	if _, err := conn.Exec(ctx, `UPDATE jobs SET lease_expires = now() - interval '1 second' WHERE id = $1`, claimed[0].ID); err != nil {
		t.Fatal(err)
	}
	storetest.CheckMigratedQueue(t, db, t0.Add(2*time.Minute), claimed[0].ID)
}

// TestOpen_MigratesPayloadSpan migrates a database whose batch jobs keep
// their payloads whole to the schema where they may keep their bounds in
// the request's body: the old jobs deliver their bytes as before, and a
// new batch's jobs keep bounds, not copies.
func TestOpen_MigratesPayloadSpan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	db := s.open(t)
	useClock(db)
	mustCommit(t, db, storetest.BatchReceipt(t0, "old", false, "a", "b", "c"))
	// Back to the schema before the migration.
	conn := s.reopenAfter(t, db, `ALTER TABLE jobs DROP COLUMN payload_at, DROP COLUMN payload_len;
		ALTER TABLE jobs RENAME COLUMN payload_bytes TO payload;
		DELETE FROM schema_migrations WHERE name = '0005_payload_span.sql'`)
	defer conn.Close(ctx)

	db = s.open(t)
	useClock(db)
	storetest.CheckMigratedPayloads(t, db, t0)
	var spans, whole int
	if err := conn.QueryRow(ctx, `SELECT count(payload_at), count(payload_bytes) FROM jobs`).Scan(&spans, &whole); err != nil {
		t.Fatal(err)
	}
	if spans != 2 || whole != 3 {
		t.Errorf("jobs keeping bounds: %d, a whole payload: %d; want 2 (the new batch) and 3 (the old one)", spans, whole)
	}
}

// A schema that a newer hookbay migrated is refused, naming the migration
// this version does not know: a replica of an older version must not use
// statements that may no longer mean what they did.
func TestOpen_RefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	conn := s.reopenAfter(t, s.open(t), `INSERT INTO schema_migrations (name) VALUES ('9999_future.sql')`)
	defer conn.Close(ctx)
	db, err := postgres.Open(ctx, s.url, postgres.WithSchema(s.name))
	if err == nil {
		db.Close()
		t.Fatal("open: got nil error, want a refusal")
	}
	if !strings.Contains(err.Error(), "newer hookbay") || !strings.Contains(err.Error(), "9999_future") {
		t.Fatalf("open: got %v, want a refusal naming 9999_future and a newer hookbay", err)
	}
}

func TestClaimJobs_PayloadOutsideBody(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSchema(t)
	db := s.open(t)
	useClock(db)
	conn := s.conn(t)
	defer conn.Close(ctx)
	storetest.CheckPayloadOutsideBody(t, db, t0, func(past, null int64) {
		if _, err := conn.Exec(ctx, `UPDATE jobs SET payload_len = CASE id WHEN $1 THEN 100000 END WHERE id IN ($1, $2)`,
			past, null); err != nil {
			t.Fatal(err)
		}
	})
}
