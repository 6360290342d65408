package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
	"github.com/hookbay/hookbay/store/storetest"
)

// t0 is the start of every test clock. It is a whole number of microseconds,
// the store's time resolution, so times compare equal after a round trip.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// useClock sets db.Now to a test clock starting at t0. Call it before the
// first write: the writer goroutine reads db.Now.
func useClock(db *sqlite.DB) *storetest.Clock {
	c := storetest.NewClock(t0)
	db.Now = c.Now
	return c
}

// newReceipt builds a receipt the way the idempotency guard does: the
// request ID, when there is one, in front of the content keys. The answer
// is the JSON body stored as the response; every receipt queues a job.
func newReceipt(now time.Time, requestID, answer string, contentKeys ...string) *hooks.Receipt {
	req := &hooks.Request{
		Sender:     hooks.SenderBubblehouse,
		Name:       "SendEvent1",
		RequestID:  requestID,
		Urgency:    hooks.UrgencyRegular,
		Method:     http.MethodPost,
		Path:       "/bubblehouse/SendEvent1",
		RemoteAddr: "192.0.2.1:4242",
		Header:     http.Header{"Content-Type": {"application/json"}, "X-Bh-Request-Id": {requestID}},
		Body:       []byte(fmt.Sprintf(`{"request":%q}`, requestID)),
		Status:     http.StatusOK,
		Response:   []byte(answer),
		ReceivedAt: now,
	}
	var keys []string
	if requestID != "" {
		keys = append(keys, requestID)
	}
	keys = append(keys, contentKeys...)
	return &hooks.Receipt{Request: req, Keys: keys, Job: hooks.NewJob(req, now)}
}

// mustSave commits r and returns the entry Commit found, if any.
func mustSave(tb testing.TB, db *sqlite.DB, r *hooks.Receipt) *hooks.Entry {
	tb.Helper()
	e, err := db.SaveReceipt(context.Background(), r)
	if err != nil {
		tb.Fatalf("commit %v: %v", r.Keys, err)
	}
	return e
}

func mustFindRequests(tb testing.TB, db *sqlite.DB, f hooks.RequestFilter) []*hooks.Request {
	tb.Helper()
	reqs, err := db.FindRequests(context.Background(), f)
	if err != nil {
		tb.Fatalf("find requests: %v", err)
	}
	return reqs
}

func mustFindJobs(tb testing.TB, db *sqlite.DB, f hooks.JobFilter) []*hooks.Job {
	tb.Helper()
	jobs, err := db.FindJobs(context.Background(), f)
	if err != nil {
		tb.Fatalf("find jobs: %v", err)
	}
	return jobs
}

func mustLookup(tb testing.TB, db *sqlite.DB, key string) *hooks.Entry {
	tb.Helper()
	e, err := db.LookupKey(context.Background(), hooks.SenderBubblehouse, key)
	if err != nil {
		tb.Fatalf("lookup %q: %v", key, err)
	}
	return e
}

// within runs fn and fails the test if it does not return within d, so that
// a hanging store fails the test instead of timing out the whole package.
func within(tb testing.TB, d time.Duration, what string, fn func() error) error {
	tb.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		tb.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// lockWriter takes SQLite's write lock on path from a separate connection,
// as another process would, so that the store's writer blocks in BEGIN and
// the writes queued meanwhile are committed together in one batch. The
// returned function releases the lock.
func lockWriter(tb testing.TB, path string) (unlock func()) {
	tb.Helper()
	ctx := context.Background()
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := other.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
				tb.Error(err)
			}
			conn.Close()
			other.Close()
		})
	}
	tb.Cleanup(unlock)
	return unlock
}

func TestOpen(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db")
		db := sqlitetest.OpenPath(t, path)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("database file: %v", err)
		}
		if err := db.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 0; got != want {
			t.Fatalf("requests in a new store: got %d, want %d", got, want)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 0; got != want {
			t.Fatalf("jobs in a new store: got %d, want %d", got, want)
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		// Data committed before Close is there after reopening, and running
		// the migrations again on a migrated file is harmless.
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "db")
		db := sqlitetest.OpenPath(t, path)
		useClock(db)
		r := newReceipt(t0, "req-1", `{"ok":1}`, "bhid-1")
		if e := mustSave(t, db, r); e != nil {
			t.Fatalf("first commit: got entry %+v, want nil", e)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		for i := 0; i < 2; i++ {
			db = sqlitetest.OpenPath(t, path)
			useClock(db)
			reqs := mustFindRequests(t, db, hooks.RequestFilter{RequestID: "req-1"})
			if got, want := len(reqs), 1+i; got != want {
				t.Fatalf("reopen %d: requests: got %d, want %d", i, got, want)
			}
			if got, want := reqs[len(reqs)-1].ID, r.Request.ID; got != want {
				t.Fatalf("reopen %d: request ID: got %d, want %d", i, got, want)
			}
			if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 1; got != want {
				t.Fatalf("reopen %d: jobs: got %d, want %d", i, got, want)
			}
			for _, k := range []string{"req-1", "bhid-1"} {
				if got, want := string(mustLookup(t, db, k).Response.Body), `{"ok":1}`; got != want {
					t.Fatalf("reopen %d: answer under %q: got %s, want %s", i, k, got, want)
				}
			}
			// The idempotency record survived too: a repeat is a duplicate.
			e, err := db.SaveReceipt(ctx, newReceipt(t0, "req-1", `{"ok":2}`))
			if err != nil {
				t.Fatal(err)
			} else if e == nil || string(e.Response.Body) != `{"ok":1}` {
				t.Fatalf("reopen %d: repeat: got entry %+v, want the first answer", i, e)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})

	// A path that cannot hold a database fails with an error that names
	// the path and says why, not SQLite's "unable to open database file".
	for _, tt := range []struct {
		name string
		path func(dir string) string
		want string
	}{
		{"ErrNoDirectory", func(dir string) string { return filepath.Join(dir, "missing", "db") },
			"directory {dir}/missing does not exist"},
		{"ErrParentIsFile", func(dir string) string { return filepath.Join(mkfile(t, dir, "file"), "db") },
			"{dir}/file is a file, not a directory"},
		{"ErrAncestorIsFile", func(dir string) string { return filepath.Join(mkfile(t, dir, "file"), "data", "db") },
			"directory {dir}/file/data cannot exist: {dir}/file is a file"},
		{"ErrDirectory", func(dir string) string { return dir },
			"{dir} is a directory, not a database file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.path(dir)
			db, err := sqlite.Open(path)
			if err == nil {
				db.Close()
				t.Fatalf("open %s: got nil error, want one", path)
			}
			want := "open store " + path + ": " + strings.ReplaceAll(tt.want, "{dir}", dir)
			if got := err.Error(); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}

	t.Run("ErrNotWritable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes to a read-only directory: ErrParentIsFile covers the message")
		}
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "db")
		db, err := sqlite.Open(path)
		if err == nil {
			db.Close()
			t.Fatalf("open %s: got nil error, want one", path)
		}
		if got, want := err.Error(), "open store "+path+": directory "+dir+" is not writable: permission denied"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// mkfile creates an empty regular file named name in dir and returns its
// path.
func mkfile(tb testing.TB, dir, name string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestOpen_WriterPragmas checks the settings the writer's connection
// depends on: no automatic checkpoint inside a commit, durable commits,
// and savepoint journals kept in memory (see writerPragmas).
func TestOpen_WriterPragmas(t *testing.T) {
	db := sqlitetest.Open(t)
	for name, want := range map[string]string{
		"wal_autocheckpoint": "0",
		"synchronous":        "2", // FULL
		"temp_store":         "2", // MEMORY
		"journal_mode":       "wal",
	} {
		got, err := sqlite.WriterPragma(db, name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
		}
	}
}

// doneCounter counts the calls to its Done.
type doneCounter struct {
	context.Context
	mu sync.Mutex
	n  int
}

func (c *doneCounter) Done() <-chan struct{} {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Context.Done()
}

// A write that runs at once, in its own batch or queued behind one, does
// not ask its context for Done: the handlers' answer deadlines start their
// timers only then.
func TestDB_WriteWithoutDone(t *testing.T) {
	db := sqlitetest.Open(t)
	ctx := &doneCounter{Context: context.Background()}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 { // far fewer than the queue holds
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.SaveReceipt(ctx, newReceipt(t0, fmt.Sprintf("req-%d", i), `{}`))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("save: %v", err)
		}
	}
	if ctx.n != 0 {
		t.Fatalf("Done was asked for %d times by 200 writes with room in the queue, want 0", ctx.n)
	}
}

// Under writes that never pause, with a reader that keeps a read mark in
// the WAL, the checkpointer's request to restart the WAL reaches the
// writer.
func TestDB_WALRestartUnderLoad(t *testing.T) {
	db := sqlitetest.Open(t)
	sqlite.SetMaxWALFrames(db, 16)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := db.SaveReceipt(context.Background(), newReceipt(t0, fmt.Sprintf("w%d-%d", w, i), `{}`)); err != nil {
					t.Errorf("save: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := db.FindRequests(context.Background(), hooks.RequestFilter{Limit: 10}); err != nil {
				t.Errorf("read: %v", err)
				return
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for sqlite.WALRestarts(db) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if sqlite.WALRestarts(db) == 0 {
		t.Fatal("the writer never restarted the WAL within 10 s of sustained writes")
	}
}

func TestDB_Ping(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db := sqlitetest.Open(t)
		if err := db.Ping(context.Background()); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})

	t.Run("ErrClosed", func(t *testing.T) {
		db := sqlitetest.Open(t)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		err := within(t, 5*time.Second, "Ping after Close", func() error { return db.Ping(context.Background()) })
		if err == nil {
			t.Fatalf("ping after close: got nil, want an error")
		}
	})
}

func TestDB_Close(t *testing.T) {
	t.Run("ErrClosed", func(t *testing.T) {
		// Every write after Close fails with ErrClosed instead of hanging;
		// reads fail too.
		ctx := context.Background()
		db := sqlitetest.Open(t)
		useClock(db)
		r := newReceipt(t0, "req-1", `{}`)
		mustSave(t, db, r)
		jobs, err := db.ClaimJobs(ctx, t0, time.Minute, 1, 1)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim: got %d jobs, %v; want 1 job", len(jobs), err)
		}
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
			"CompleteJobs":   func() error { return db.CompleteJobs(ctx, jobs[:1], t0) },
			"RescueJobs":     func() error { _, err := db.RescueJobs(ctx, t0, hooks.RetryPolicy{}); return err },
			"FailJob": func() error {
				return db.FailJob(ctx, jobs[0], t0, t0.Add(time.Minute), false, "boom")
			},
			"ReleaseJobs": func() error { return db.ReleaseJobs(ctx, jobs[:1]) },
			"PurgeIdempotency": func() error {
				_, err := db.PurgeIdempotency(ctx, t0.Add(time.Hour))
				return err
			},
		}
		for name, fn := range writes {
			// write races the closed quit channel against a buffered
			// queue; try a few times so both select arms are exercised.
			for i := 0; i < 20; i++ {
				err := within(t, 5*time.Second, name+" after Close", fn)
				if got, want := err, sqlite.ErrClosed; !errors.Is(got, want) {
					t.Fatalf("%s after close: got %v, want %v", name, got, want)
				}
			}
		}

		reads := map[string]func() error{
			"LookupKey": func() error { _, err := db.LookupKey(ctx, sender, "req-1"); return err },
			"FindRequests": func() error {
				_, err := db.FindRequests(ctx, hooks.RequestFilter{})
				return err
			},
			"FindJobs": func() error { _, err := db.FindJobs(ctx, hooks.JobFilter{}); return err },
		}
		for name, fn := range reads {
			if err := within(t, 5*time.Second, name+" after Close", fn); err == nil {
				t.Fatalf("%s after close: got nil, want an error", name)
			}
		}
	})

	t.Run("CommitsQueuedWrites", func(t *testing.T) {
		// Close racing with writes: every write either succeeded, and is on
		// disk after reopening, or failed with ErrClosed. None hangs.
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "db")
		db := sqlitetest.OpenPath(t, path)
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

		db = sqlitetest.OpenPath(t, path)
		for i, err := range errs {
			rid := fmt.Sprintf("req-%d", i)
			got := len(mustFindRequests(t, db, hooks.RequestFilter{RequestID: rid}))
			switch {
			case err == nil && got != 1:
				t.Errorf("%s: committed, but got %d records after reopen, want 1", rid, got)
			case errors.Is(err, sqlite.ErrClosed) && got != 0:
				t.Errorf("%s: ErrClosed, but got %d records after reopen, want 0", rid, got)
			case err != nil && !errors.Is(err, sqlite.ErrClosed):
				t.Errorf("%s: got %v, want nil or ErrClosed", rid, err)
			}
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{Limit: 1000})), len(mustFindRequests(t, db, hooks.RequestFilter{Limit: 1000})); got != want {
			t.Fatalf("jobs after reopen: got %d, want %d (one per request)", got, want)
		}
	})
}

// TestDB_GroupCommit checks that writes batched into one transaction are
// isolated from each other's failures.
func TestDB_GroupCommit(t *testing.T) {
	// badReceipt fails inside its transaction: its job breaks the CHECK on
	// priority. Before that it has written its request and keys.
	badReceipt := func(rid string) *hooks.Receipt {
		r := newReceipt(t0, rid, `{"bad":true}`)
		r.Job.Priority = 99
		return r
	}

	t.Run("FailureIsolated", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "db")
		db := sqlitetest.OpenPath(t, path)
		useClock(db)

		unlock := lockWriter(t, path)
		type result struct {
			e   *hooks.Entry
			err error
		}
		results := make([]chan result, 6)
		receipts := make([]*hooks.Receipt, 6)
		for i := range receipts {
			if i == 3 {
				receipts[i] = badReceipt("bad")
			} else {
				receipts[i] = newReceipt(t0, fmt.Sprintf("req-%d", i), fmt.Sprintf(`{"n":%d}`, i))
			}
			results[i] = make(chan result, 1)
			go func() {
				e, err := db.SaveReceipt(ctx, receipts[i])
				results[i] <- result{e, err}
			}()
			// Receipt 0 is taken alone and blocks in BEGIN; the others
			// queue behind it, in order, and form the next batch.
			time.Sleep(20 * time.Millisecond)
		}
		unlock()

		for i, ch := range results {
			var res result
			select {
			case res = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatalf("commit %d did not return", i)
			}
			if i == 3 {
				if res.err == nil {
					t.Errorf("bad receipt: got nil error, want the CHECK failure")
				}
				continue
			}
			if res.err != nil || res.e != nil {
				t.Errorf("receipt %d: got %+v, %v; want nil, nil", i, res.e, res.err)
			}
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{})), 5; got != want {
			t.Errorf("requests: got %d, want %d", got, want)
		}
		if got, want := len(mustFindRequests(t, db, hooks.RequestFilter{RequestID: "bad"})), 0; got != want {
			t.Errorf("records of the failed receipt: got %d, want %d", got, want)
		}
		if _, err := db.LookupKey(ctx, hooks.SenderBubblehouse, "bad"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Errorf("key of the failed receipt: got %v, want ENOTFOUND", err)
		}
		if got, want := len(mustFindJobs(t, db, hooks.JobFilter{})), 5; got != want {
			t.Errorf("jobs: got %d, want %d", got, want)
		}
	})

	t.Run("DuplicateRetriedAlone", func(t *testing.T) {
		// A duplicate that shared a failed batch is run again alone. Its
		// record must look the same as if it had been committed once.
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "db")
		db := sqlitetest.OpenPath(t, path)
		useClock(db)
		first := newReceipt(t0, "req-1", `{"n":1}`)
		mustSave(t, db, first)

		unlock := lockWriter(t, path)
		dup := newReceipt(t0, "req-1", `{"n":2}`)
		receipts := []*hooks.Receipt{newReceipt(t0, "req-0", `{}`), dup, badReceipt("bad")}
		errs := make([]chan error, len(receipts))
		for i, r := range receipts {
			errs[i] = make(chan error, 1)
			go func() { _, err := db.SaveReceipt(ctx, r); errs[i] <- err }()
			time.Sleep(20 * time.Millisecond)
		}
		unlock()
		for i, ch := range errs {
			select {
			case err := <-ch:
				if (i == 2) != (err != nil) {
					t.Fatalf("receipt %d: got error %v", i, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("commit %d did not return", i)
			}
		}

		reqs := mustFindRequests(t, db, hooks.RequestFilter{RequestID: "req-1"})
		if got, want := len(reqs), 2; got != want {
			t.Fatalf("records of req-1: got %d, want %d", got, want)
		}
		rec := reqs[0] // newest first: the duplicate
		if got, want := rec.DuplicateOf, first.Request.ID; got != want {
			t.Errorf("DuplicateOf: got %d, want %d", got, want)
		}
		if got, want := len(rec.Notes), 1; got != want {
			t.Errorf("notes on the duplicate's record: got %d %q, want %d", got, rec.Notes, want)
		}
		if got, want := len(dup.Request.Notes), 1; got != want {
			t.Errorf("notes on the duplicate's request: got %d %q, want %d", got, dup.Request.Notes, want)
		}
	})
}

// testOwner is the reservation token the tests' inline requests hold.
const testOwner = 7

// Close releases every file the store opened: SQLite keeps a connection
// (and its database, WAL and shared-memory files) open until all of its
// statements are finalized, including the hot statements prepared on the
// writer's raw connection.
func TestDB_CloseReleasesFiles(t *testing.T) {
	fds := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd on this system")
		}
		return len(entries)
	}
	path := filepath.Join(t.TempDir(), "db")
	cycle := func(i int) {
		db, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if e, err := db.SaveReceipt(t.Context(), newReceipt(time.Now(), fmt.Sprintf("req-%d", i), `{"ok":true}`)); err != nil || e != nil {
			t.Fatalf("commit: %v %v", e, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cycle(0) // first use: whatever the runtime opens once is open now
	before := fds()
	for i := 1; i <= 5; i++ {
		cycle(i)
	}
	if after := fds(); after > before {
		t.Fatalf("open files: %d before five open/commit/close cycles, %d after", before, after)
	}
}

// A database from before 0007_claimed_ahead.sql, with a job running and
// one waiting, keeps both through the migration, and the running one,
// claimed before claims said how, is rescued with its attempt counted, as
// it was before.
func TestOpen_MigratesClaimedAhead(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	for _, id := range []string{"running", "waiting"} {
		mustSave(t, db, newReceipt(t0, id, `{}`))
	}
	claimed, err := db.ClaimJobs(ctx, t0, time.Minute, 1, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d jobs, %v", len(claimed), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the migration.
	raw := rawDB(t, path)
	if _, err := raw.Exec(`ALTER TABLE jobs DROP COLUMN ahead; DELETE FROM migrations WHERE name LIKE '%0007_claimed_ahead%'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db = sqlitetest.OpenPath(t, path)
	useClock(db)
	storetest.CheckMigratedQueue(t, db, t0.Add(2*time.Minute), claimed[0].ID)
}

// TestOpen_MigratesPayloadSpan migrates a database whose batch jobs keep
// their payloads whole to the schema where they may keep their span of
// the request's body: the old jobs deliver their bytes as before, and a
// new batch's jobs keep spans, not copies.
func TestOpen_MigratesPayloadSpan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	mustSave(t, db, storetest.BatchReceipt(t0, "old", false, "a", "b", "c"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the migration.
	raw := rawDB(t, path)
	if _, err := raw.Exec(`ALTER TABLE jobs DROP COLUMN payload_at; ALTER TABLE jobs DROP COLUMN payload_len;
		ALTER TABLE jobs RENAME COLUMN payload_bytes TO payload;
		DELETE FROM migrations WHERE name LIKE '%0008_payload_span%'`); err != nil {
		t.Fatal(err)
	}

	db = sqlitetest.OpenPath(t, path)
	useClock(db)
	storetest.CheckMigratedPayloads(t, db, t0)
	if got := rawInts(t, raw, `SELECT count(payload_at), count(payload_bytes) FROM jobs`); got != [3]int{2, 3} {
		t.Errorf("jobs keeping a span, a whole payload: %d; want 2 (the new batch) and 3 (the old one)", got[:2])
	}
}

// A database that a newer hookbay migrated is refused, naming the
// migration this version does not know, rather than used by statements
// that may no longer mean what they did.
func TestOpen_RefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	if _, err := raw.Exec(`INSERT INTO migrations (name) VALUES ('migrations/9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(path)
	if err == nil {
		db.Close()
		t.Fatal("open: got nil error, want a refusal")
	}
	if !strings.Contains(err.Error(), "newer hookbay") || !strings.Contains(err.Error(), "9999_future") {
		t.Fatalf("open: got %v, want a refusal naming 9999_future and a newer hookbay", err)
	}
}

// Every batch job whose payload is a part of the body keeps its bounds, not
// a copy: on the multi-row path, and on the one-at-a-time path that items
// without a key, and a run that meets a taken key, take.
func TestSaveReceipt_ItemsKeepBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	mustSave(t, db, storetest.BatchReceipt(t0, "keyed", true, "a", "b", "c"))
	mustSave(t, db, storetest.BatchReceipt(t0, "unkeyed", true, "", ""))
	// A retried batch: a and b are taken, so the run goes one at a time.
	mustSave(t, db, storetest.BatchReceipt(t0, "retried", true, "a", "b", "d", "e"))
	raw := rawDB(t, path)
	if got := rawInts(t, raw, `SELECT count(*), count(payload_at), count(payload_bytes) FROM jobs`); got != [3]int{7, 7, 0} {
		t.Errorf("jobs, keeping bounds, keeping a copy: %d; want 7, 7 and 0", got)
	}
	// One row per customer: its job keeps its key.
	if got := rawInts(t, raw, `SELECT (SELECT count(*) FROM idempotency), (SELECT count(item_key) FROM jobs)`); got != [3]int{3, 5} {
		t.Errorf("idempotency rows, jobs keeping a key: %d; want 3 (the request IDs) and 5 (a to e)", got[:2])
	}
}

// A database whose batch customers' keys are in the idempotency table, as
// before migration 0009, goes on finding them there until they are purged.
func TestOpen_MigratesItemKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	mustSave(t, db, storetest.BatchReceipt(t0, "old", true, "a", "b", "c"))
	if sqlite.LegacyItemKeys(db) {
		t.Error("a new database looks for item keys in the idempotency table")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before the migration, the keys where it kept them.
	raw := rawDB(t, path)
	if _, err := raw.Exec(`INSERT INTO idempotency (sender, key, state, status, request_ref, created_at)
			SELECT sender, item_key, 'done', 200, request_ref, created_at FROM jobs WHERE item_key IS NOT NULL;
		DROP VIEW idempotency_keys; DROP TABLE item_key_purge; DROP INDEX jobs_item_key;
		ALTER TABLE jobs DROP COLUMN item_key;
		DELETE FROM migrations WHERE name LIKE '%0009_item_keys%'`); err != nil {
		t.Fatal(err)
	}

	db = sqlitetest.OpenPath(t, path)
	if !sqlite.LegacyItemKeys(db) {
		t.Fatal("the migrated database does not look for item keys in the idempotency table")
	}
	clk := useClock(db)
	clk.Add(time.Minute)
	retried := storetest.BatchReceipt(clk.Now(), "retried", true, "a", "d", "c", "e", "b")
	mustSave(t, db, retried)
	for i, want := range []bool{true, false, true, false, true} {
		if it := retried.Items[i]; it.Duplicate != want {
			t.Errorf("retried batch, %s: duplicate %v, want %v", it.Key, it.Duplicate, want)
		}
	}
	for _, c := range []string{"a", "d"} {
		if en, err := db.LookupKey(t.Context(), hooks.SenderBloomreach, hooks.ItemKey("sms", c)); err != nil || en.State != hooks.EntryDone {
			t.Errorf("key of %s: %+v, %v; want done", c, en, err)
		}
	}
	// Once purged, wherever they were, the customers are taken again.
	if n, err := db.PurgeIdempotency(t.Context(), t0.Add(time.Second)); err != nil || n != 4 {
		t.Fatalf("purge of the old batch: %d, %v; want 4 (three customers, a request ID), nil", n, err)
	}
	if sqlite.LegacyItemKeys(db) {
		t.Error("item keys are still looked for in the idempotency table after they were purged")
	}
	if n, err := db.PurgeIdempotency(t.Context(), clk.Now().Add(time.Second)); err != nil || n != 3 {
		t.Fatalf("purge: %d, %v; want 3 (two customers, a request ID), nil", n, err)
	}
	again := storetest.BatchReceipt(clk.Now(), "again", true, "a", "d", "f", "f")
	mustSave(t, db, again)
	for i, want := range []bool{false, false, false, true} {
		if it := again.Items[i]; it.Duplicate != want {
			t.Errorf("after the purge, %s: duplicate %v, want %v", it.Key, it.Duplicate, want)
		}
	}
}

func TestClaimJobs_PayloadOutsideBody(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := sqlitetest.OpenPath(t, path)
	useClock(db)
	raw := rawDB(t, path)
	storetest.CheckPayloadOutsideBody(t, db, t0, func(past, null int64) {
		if _, err := raw.Exec(`UPDATE jobs SET payload_len = 100000 WHERE id = ?; UPDATE jobs SET payload_len = NULL WHERE id = ?`,
			past, null); err != nil {
			t.Fatal(err)
		}
	})
}

// rawInts runs q, a query of one row of up to three integers, on raw.
func rawInts(t *testing.T, raw *sql.DB, q string) [3]int {
	t.Helper()
	var got [3]int
	rows, err := raw.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || !rows.Next() {
		t.Fatalf("%s: no row (%v)", q, err)
	}
	dst := make([]any, len(cols))
	for i := range dst {
		dst[i] = &got[i]
	}
	if err := rows.Scan(dst...); err != nil {
		t.Fatal(err)
	}
	return got
}

// rawDB opens the SQLite file at path beside the store, for a test to read
// or change what the store's methods do not show.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}
