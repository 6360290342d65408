package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// The SQLite store judges due times, leases and expiry by the time it is
// given, the now passed to a method or DB.Now, to the microsecond. The
// conformance suite stays clear of such boundaries, since a backend may
// judge by its database's clock instead; these tests hold SQLite to them.

// mustQueue saves a receipt for request ID rid with the given urgency and
// returns its job, due at scheduled.
func mustQueue(tb testing.TB, db *sqlite.DB, rid string, u hooks.Urgency, scheduled time.Time) *hooks.Job {
	tb.Helper()
	r := newReceipt(t0, rid, `{}`)
	r.Request.Urgency = u
	r.Request.Body = fmt.Appendf(nil, `{"event":%q}`, rid)
	r.Job = hooks.NewJob(r.Request, t0)
	r.Job.ScheduledAt = scheduled
	if e := mustSave(tb, db, r); e != nil {
		tb.Fatalf("queue %s: got entry %+v, want nil", rid, e)
	}
	return r.Job
}

func mustClaim(tb testing.TB, db *sqlite.DB, now time.Time, lease time.Duration, limit int) []*hooks.Job {
	tb.Helper()
	jobs, err := db.ClaimJobs(context.Background(), now, lease, limit, limit)
	if err != nil {
		tb.Fatalf("claim jobs: %v", err)
	}
	return jobs
}

// mustRescue makes jobs whose lease expired by now available again.
func mustRescue(tb testing.TB, db *sqlite.DB, now time.Time) int64 {
	tb.Helper()
	n, err := db.RescueJobs(context.Background(), now, hooks.RetryPolicy{})
	if err != nil {
		tb.Fatalf("rescue jobs: %v", err)
	}
	return n
}

// mustJob returns the stored state of job id.
func mustJob(tb testing.TB, db *sqlite.DB, id int64) *hooks.Job {
	tb.Helper()
	for _, j := range mustFindJobs(tb, db, hooks.JobFilter{Limit: 10000}) {
		if j.ID == id {
			return j
		}
	}
	tb.Fatalf("job %d not found", id)
	return nil
}

func TestDB_Clock(t *testing.T) {
	ctx := context.Background()
	sender := hooks.SenderBubblehouse

	t.Run("Scheduled", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		at := t0.Add(time.Hour)
		j := mustQueue(t, db, "req-1", hooks.UrgencyUrgent, at)
		if got := mustClaim(t, db, at.Add(-time.Microsecond), time.Minute, 10); len(got) != 0 {
			t.Fatalf("before its time: got %d jobs, want none", len(got))
		}
		got := mustClaim(t, db, at, time.Minute, 10)
		if len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("at its time: got %d jobs, want job %d", len(got), j.ID)
		}
		if got, want := got[0].LockedUntil, at.Add(time.Minute); !got.Equal(want) {
			t.Errorf("locked until: got %v, want %v", got, want)
		}
	})

	t.Run("Lease", func(t *testing.T) {
		// A lease is live until its last microsecond and expired at it.
		db := sqlitetest.Open(t)
		useClock(db)
		j := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		mustClaim(t, db, t0, time.Minute, 1)
		if got := mustRescue(t, db, t0.Add(time.Minute-time.Microsecond)); got != 0 {
			t.Fatalf("rescued before expiry: got %d, want 0", got)
		}
		if got := mustClaim(t, db, t0.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claimed after expiry, not rescued: got %d jobs, want none", len(got))
		}
		if got := mustRescue(t, db, t0.Add(time.Minute)); got != 1 {
			t.Fatalf("rescued at expiry: got %d, want 1", got)
		}
		if got, want := mustJob(t, db, j.ID).State, hooks.JobAvailable; got != want {
			t.Fatalf("state: got %s, want %s", got, want)
		}
	})

	t.Run("RetryAt", func(t *testing.T) {
		db := sqlitetest.Open(t)
		useClock(db)
		mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
		j := mustClaim(t, db, t0, time.Minute, 1)[0]
		retryAt := t0.Add(10 * time.Second)
		if err := db.FailJob(ctx, j, t0.Add(time.Second), retryAt, false, "HTTP 503"); err != nil {
			t.Fatal(err)
		}
		if got := mustClaim(t, db, retryAt.Add(-time.Microsecond), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claim before retryAt: got %d jobs, want none", len(got))
		}
		if got := mustClaim(t, db, retryAt, time.Minute, 10); len(got) != 1 || got[0].Attempts != 2 {
			t.Fatalf("claim at retryAt: got %+v, want job %d, attempt 2", got, j.ID)
		}
	})

	t.Run("KeyLease", func(t *testing.T) {
		// A reserved key is pending to the last microsecond of its lease,
		// for a reservation and for a receipt, and taken over at it.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		until := t0.Add(time.Minute)
		if e, err := db.ReserveKeys(ctx, sender, []string{"req-1", "req-2"}, testOwner, until); err != nil || e != nil {
			t.Fatalf("reserve: got %+v, %v; want nil, nil", e, err)
		}
		clk.Add(time.Minute - time.Microsecond)
		if e, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner+1, t0.Add(time.Hour)); err != nil || e == nil || e.State != hooks.EntryPending {
			t.Fatalf("reserve before expiry: got %+v, %v; want the pending entry", e, err)
		}
		if e := mustSave(t, db, newReceipt(t0, "req-2", `{}`)); e == nil || e.State != hooks.EntryPending {
			t.Fatalf("save before expiry: got %+v, want the pending entry", e)
		}
		clk.Add(time.Microsecond)
		if e, err := db.ReserveKeys(ctx, sender, []string{"req-1"}, testOwner+1, t0.Add(time.Hour)); err != nil || e != nil {
			t.Fatalf("reserve at expiry: got %+v, %v; want nil, nil", e, err)
		}
		if e := mustSave(t, db, newReceipt(t0, "req-2", `{}`)); e != nil {
			t.Fatalf("save at expiry: got %+v, want nil", e)
		}
	})

	t.Run("PurgeIdempotency", func(t *testing.T) {
		// created_at is DB.Now; an entry created at the cutoff is kept.
		db := sqlitetest.Open(t)
		clk := useClock(db)
		mustSave(t, db, newReceipt(t0, "old", `{}`))
		cutoff := clk.Add(time.Hour)
		mustSave(t, db, newReceipt(cutoff, "at-cutoff", `{}`))
		if n, err := db.PurgeIdempotency(ctx, cutoff); err != nil || n != 1 {
			t.Fatalf("purged: got %d, %v; want 1, nil", n, err)
		}
		if got, want := mustLookup(t, db, "at-cutoff").CreatedAt, cutoff; !got.Equal(want) {
			t.Fatalf("created at: got %v, want %v", got, want)
		}
	})
}

// A worker claims a job and the process dies before finishing it. After a
// restart the job is rescued and claimed again once its lease expired.
func TestDB_CrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	j := mustQueue(t, db, "req-1", hooks.UrgencyRegular, t0)
	const lease = 30 * time.Second
	if got := mustClaim(t, db, t0, lease, 10); len(got) != 1 || got[0].Attempts != 1 {
		t.Fatalf("first claim: got %+v, want job %d, attempt 1", got, j.ID)
	}
	if err := db.Close(); err != nil { // the crash: never completed
		t.Fatal(err)
	}

	db = sqlitetest.OpenPath(t, path)
	useClock(db)
	if got := mustRescue(t, db, t0.Add(lease-time.Microsecond)); got != 0 {
		t.Fatalf("rescued before the lease expired: got %d, want 0", got)
	}
	now := t0.Add(lease + time.Second)
	if got := mustRescue(t, db, now); got != 1 {
		t.Fatalf("rescued after the lease expired: got %d, want 1", got)
	}
	got := mustClaim(t, db, now, lease, 10)
	if len(got) != 1 || got[0].ID != j.ID || got[0].Attempts != 2 || string(got[0].Body) != `{"event":"req-1"}` {
		t.Fatalf("claim after the lease expired: got %+v, want job %d, attempt 2, with its body", got, j.ID)
	}
}
