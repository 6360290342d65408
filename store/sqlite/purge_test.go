package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// PurgeRecords deletes old requests with their jobs and attempts, but never
// a request whose job is still to be delivered.
func TestDB_PurgeRecords(t *testing.T) {
	db := sqlitetest.Open(t)
	ctx := context.Background()
	old := time.Now().Add(-40 * 24 * time.Hour)
	done := newReceipt(old, "old-done", `{}`)
	done.Job.Stored(old)
	mustSave(t, db, done)
	waiting := newReceipt(old, "old-waiting", `{}`)
	mustSave(t, db, waiting)
	recent := newReceipt(time.Now(), "recent", `{}`)
	recent.Job.Stored(time.Now())
	mustSave(t, db, recent)
	// An old job with an attempt on record.
	attempted := newReceipt(old, "old-attempted", `{}`)
	mustSave(t, db, attempted)
	claimed := mustClaim(t, db, time.Now(), time.Minute, 10)
	for _, j := range claimed {
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
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(2); got != want {
		t.Fatalf("purged: got %d, want %d (old-done and old-attempted)", got, want)
	}
	for id, want := range map[string]int{"old-done": 0, "old-attempted": 0, "old-waiting": 1, "recent": 1} {
		reqs, err := db.FindRequests(ctx, sqlite.RequestFilter{RequestID: id})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(reqs); got != want {
			t.Errorf("%s: got %d records, want %d", id, got, want)
		}
	}
	if atts, _ := db.FindAttempts(ctx, attempted.Job.ID); len(atts) != 0 {
		t.Errorf("attempts of a purged job: got %d, want 0", len(atts))
	}
	if js, _ := db.FindJobs(ctx, sqlite.JobFilter{}); len(js) != 2 {
		t.Errorf("jobs left: got %d, want 2", len(js))
	}
}
