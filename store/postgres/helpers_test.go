package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// schema is a schema of its own for one test: the test's handles share it,
// other tests never see it, and it is dropped when the test ends.
type schema struct {
	url, name string
}

// newSchema names a fresh schema on the test database and drops it when
// the test ends (after the handles opened on it are closed: cleanups run
// last first). Open creates it.
func newSchema(tb testing.TB) *schema {
	tb.Helper()
	url := pgtest.DatabaseURL(tb)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	s := &schema{url: url, name: "hookbay_test_" + hex.EncodeToString(b[:])}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema %s: %v", s.name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{s.name}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", s.name, err)
		}
	})
	return s
}

// open opens a handle on the schema, closed when the test ends.
func (s *schema) open(tb testing.TB, opts ...postgres.Option) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, s.url, append([]postgres.Option{postgres.WithSchema(s.name)}, opts...)...)
	if err != nil {
		tb.Fatalf("open schema %s: %v", s.name, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

// exec runs a statement on the schema from a connection of its own, as
// another client would.
func (s *schema) exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	ctx := context.Background()
	conn := s.conn(tb)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// conn opens a connection of its own to the schema; the caller closes it.
func (s *schema) conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{s.name}.Sanitize()
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return conn
}

// reopenAfter closes db, runs q on the schema over a connection of its
// own (a schema set back to an older version, or changed behind the
// store's back), and returns that connection for the test to use further;
// the test closes it.
func (s *schema) reopenAfter(tb testing.TB, db *postgres.DB, q string) *pgx.Conn {
	tb.Helper()
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	conn := s.conn(tb)
	if _, err := conn.Exec(context.Background(), q); err != nil {
		conn.Close(context.Background())
		tb.Fatal(err)
	}
	return conn
}

// openDB opens a store on a fresh schema.
func openDB(tb testing.TB, opts ...postgres.Option) *postgres.DB {
	tb.Helper()
	return newSchema(tb).open(tb, opts...)
}

// t0 is the start of every test clock, a whole number of microseconds (the
// store's resolution) so that times compare equal after a round trip.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock, safe to read from the store's writers while a
// test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// useClock makes a clock starting at t0 the store's Now. Call it before the
// first write.
func useClock(db *postgres.DB) *clock {
	c := &clock{t: t0}
	db.Now = c.Now
	return c
}

// testOwner is the reservation token the tests' inline requests hold.
const testOwner = 7

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

// mustCommit commits r and returns the entry Commit found, if any.
func mustCommit(tb testing.TB, db *postgres.DB, r *hooks.Receipt) *hooks.Entry {
	tb.Helper()
	e, err := db.SaveReceipt(context.Background(), r)
	if err != nil {
		tb.Fatalf("commit %v: %v", r.Keys, err)
	}
	return e
}

func mustFindRequests(tb testing.TB, db *postgres.DB, f hooks.RequestFilter) []*hooks.Request {
	tb.Helper()
	reqs, err := db.FindRequests(context.Background(), f)
	if err != nil {
		tb.Fatalf("find requests: %v", err)
	}
	return reqs
}

func mustFindJobs(tb testing.TB, db *postgres.DB, f hooks.JobFilter) []*hooks.Job {
	tb.Helper()
	jobs, err := db.FindJobs(context.Background(), f)
	if err != nil {
		tb.Fatalf("find jobs: %v", err)
	}
	return jobs
}

func mustLookup(tb testing.TB, db *postgres.DB, key string) *hooks.Entry {
	tb.Helper()
	e, err := db.LookupKey(context.Background(), hooks.SenderBubblehouse, key)
	if err != nil {
		tb.Fatalf("lookup %q: %v", key, err)
	}
	return e
}

// within runs fn and fails the test if it does not return within d.
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

// hasNote reports whether any note contains s.
func hasNote(notes []string, s string) bool {
	for _, n := range notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// leaseExpires reads the lease_expires of the row of table that where
// selects: a lease's end by the database's clock.
func (s *schema) leaseExpires(tb testing.TB, table, where string, args ...any) time.Time {
	tb.Helper()
	conn := s.conn(tb)
	defer conn.Close(context.Background())
	var t time.Time
	if err := conn.QueryRow(context.Background(), `SELECT lease_expires FROM `+table+` WHERE `+where, args...).Scan(&t); err != nil {
		tb.Fatalf("read lease_expires of %s where %s: %v", table, where, err)
	}
	return t
}

// expireJobs ends the lease of every running job, by the database's clock,
// as if the lease had run out: the deterministic stand-in for waiting.
func (s *schema) expireJobs(tb testing.TB) {
	tb.Helper()
	s.exec(tb, `UPDATE jobs SET lease_expires = now() - interval '1 microsecond' WHERE state = 'running'`)
}

// expireKeys ends the lease of every pending idempotency key.
func (s *schema) expireKeys(tb testing.TB) {
	tb.Helper()
	s.exec(tb, `UPDATE idempotency SET lease_expires = now() - interval '1 microsecond' WHERE state = 'pending'`)
}

// mustQueue saves a receipt for request ID rid with the given urgency and
// returns its job.
func mustQueue(tb testing.TB, db *postgres.DB, rid string, u hooks.Urgency, scheduled time.Time) *hooks.Job {
	tb.Helper()
	r := newReceipt(t0, rid, `{}`)
	r.Request.Urgency = u
	r.Request.Body = []byte(fmt.Sprintf(`{"event":%q}`, rid))
	r.Job = hooks.NewJob(r.Request, t0)
	r.Job.ScheduledAt = scheduled
	if e := mustCommit(tb, db, r); e != nil {
		tb.Fatalf("queue %s: got entry %+v, want nil", rid, e)
	}
	return r.Job
}

func mustClaim(tb testing.TB, db *postgres.DB, now time.Time, lease time.Duration, limit int) []*hooks.Job {
	tb.Helper()
	jobs, err := db.ClaimJobs(context.Background(), now, lease, limit, limit)
	if err != nil {
		tb.Fatalf("claim jobs: %v", err)
	}
	return jobs
}

// mustJob returns the stored state of job id.
func mustJob(tb testing.TB, db *postgres.DB, id int64) *hooks.Job {
	tb.Helper()
	for _, j := range mustFindJobs(tb, db, hooks.JobFilter{Limit: 10000}) {
		if j.ID == id {
			return j
		}
	}
	tb.Fatalf("job %d not found", id)
	return nil
}

// mustRescue takes back the jobs whose lease expired.
func mustRescue(tb testing.TB, db *postgres.DB, now time.Time) int64 {
	tb.Helper()
	n, err := db.RescueJobs(context.Background(), now, hooks.RetryPolicy{})
	if err != nil {
		tb.Fatalf("rescue jobs: %v", err)
	}
	return n
}

func jobIDs(jobs []*hooks.Job) []int64 {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}
