package postgres_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// rowsSource is a Source of rows given by table, as an SQLite file's
// reader gives them (times as time.Time, text as []byte or string).
type rowsSource map[string][][]any

func (s rowsSource) Rows(ctx context.Context, t postgres.ImportTable, each func([]any) error) error {
	for _, row := range s[t.Name] {
		if err := each(row); err != nil {
			return err
		}
	}
	return nil
}

// sampleRows is a small store's worth of rows: two requests, a done key,
// a pending key with a minute left and one whose lease ran out, a running
// job with a minute left, an available one and a dead one with its
// attempt, a token and a fault.
func sampleRows(now time.Time) rowsSource {
	at := now.Add(-time.Hour).Truncate(time.Microsecond)
	lease := now.Add(time.Minute).Truncate(time.Microsecond)
	return rowsSource{
		"requests": {
			{int64(7), "bubblehouse", "CreateDiscount4", "req-7", "urgent", "POST", "/bubblehouse/CreateDiscount4", "192.0.2.1:1",
				[]byte(`{"X-Request-Id":["req-7"]}`), []byte(`{"code":"A"}`), int64(200), []byte(`{"ok":true}`), int64(1500),
				[]byte(`[]`), nil, at},
			{int64(9), "svix", "bloom", "msg_9", "", "POST", "/svix/bloom", "192.0.2.2:2", "{}", []byte(`{}`), int64(204), nil,
				int64(800), `["a note"]`, int64(7), at.Add(time.Second)},
		},
		"idempotency": {
			{"bubblehouse", "req-7", "done", int64(200), []byte(`{"ok":true}`), int64(7), nil, nil, at},
			{"bubblehouse", "req-8", "pending", int64(0), nil, nil, lease, int64(42), at},
			{"svix", "msg_old", "pending", int64(0), nil, nil, now.Add(-time.Minute), int64(43), at},
		},
		"jobs": {
			{int64(3), int64(7), "bubblehouse", "CreateDiscount4", "urgent", int64(1), "running", int64(1), at, lease, "",
				at, nil, nil},
			{int64(4), int64(9), "svix", "bloom", "regular", int64(5), "available", int64(0), at, nil, "", at, nil, nil},
			{int64(5), int64(9), "svix", "bloom", "regular", int64(5), "dead", int64(1), at, nil, []byte("HTTP 500 \xff"),
				at, at.Add(time.Second), []byte(`{"item":1}`)},
		},
		"job_attempts": {
			{int64(11), int64(5), int64(1), at, int64(2500), "dead", "HTTP 500"},
		},
		"oauth_tokens": {
			{[]byte{1, 2, 3}, "client", "send", now.Add(time.Hour).Truncate(time.Microsecond)},
		},
		"faults": {
			{int64(6), "svix", "", "status", int64(503), int64(0), int64(-1), int64(100), nil, at},
		},
	}
}

func TestDB_Import(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s := pgtest.New(t)
		db := s.Open(t)
		woken := make(chan struct{}, 10)
		if err := db.Listen(ctx, func(int) { woken <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		counts, err := db.Import(ctx, sampleRows(now), false)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"requests": 2, "idempotency": 3, "jobs": 3, "job_attempts": 1, "oauth_tokens": 1, "faults": 1}
		for table, n := range want {
			if counts[table] != n {
				t.Errorf("%s: copied %d, want %d", table, counts[table], n)
			}
		}
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Error("no replica was told that jobs are waiting")
		}

		reqs := mustFindRequests(t, db, hooks.RequestFilter{Limit: 10})
		if len(reqs) != 2 || reqs[0].ID != 9 || reqs[1].ID != 7 {
			t.Fatalf("requests: got %+v, want ids 9 and 7", reqs)
		}
		if r := reqs[1]; r.RequestID != "req-7" || r.Header.Get("X-Request-Id") != "req-7" || string(r.Body) != `{"code":"A"}` ||
			r.Latency != 1500*time.Microsecond || !r.ReceivedAt.Equal(now.Add(-time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("request 7: got %+v", r)
		}
		if r := reqs[0]; r.DuplicateOf != 7 || len(r.Notes) != 1 || r.Notes[0] != "a note" {
			t.Errorf("request 9: got %+v, want a duplicate of 7 with its note", r)
		}
		if e := mustLookup(t, db, "req-7"); e.State != hooks.EntryDone || string(e.Response.Body) != `{"ok":true}` || e.RequestRef != 7 {
			t.Errorf("key req-7: got %+v, want done with its answer", e)
		}
		// The pending key keeps its minute on the database's clock; the
		// expired one can be taken over at once.
		var got time.Time
		if err := s.Conn(t).QueryRow(ctx, `SELECT lease_expires FROM idempotency WHERE key = 'req-8'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got.Sub(time.Now()) < 50*time.Second || got.Sub(time.Now()) > time.Minute {
			t.Errorf("pending key's lease ends in %v, want about a minute", time.Until(got))
		}
		if found, err := db.ReserveKeys(ctx, hooks.SenderSvix, []string{"msg_old"}, 99, time.Now().Add(time.Minute)); err != nil || found != nil {
			t.Errorf("take over the expired key: got %+v, %v; want it taken", found, err)
		}
		if found, err := db.ReserveKeys(ctx, hooks.SenderBubblehouse, []string{"req-8"}, 99, time.Now().Add(time.Minute)); err != nil || found == nil {
			t.Errorf("take over the live key: got %+v, %v; want it still pending", found, err)
		}
		// The running job is nobody's to finish: a rescue takes it back
		// once its minute has passed (made to pass here).
		jobs := mustFindJobs(t, db, hooks.JobFilter{Limit: 10})
		if len(jobs) != 3 || jobs[0].State != hooks.JobRunning || jobs[1].State != hooks.JobAvailable || jobs[2].State != hooks.JobDead ||
			jobs[2].LastError != "HTTP 500 \uFFFD" {
			for _, j := range jobs {
				t.Logf("job %+v", *j)
			}
			t.Fatal("jobs: want running, available, dead as copied")
		}
		var payload []byte
		if err := s.Conn(t).QueryRow(ctx, `SELECT payload_bytes FROM jobs WHERE id = 5`).Scan(&payload); err != nil || string(payload) != `{"item":1}` {
			t.Errorf("payload of job 5: got %q, %v", payload, err)
		}
		if got := mustRescue(t, db, time.Now()); got != 0 {
			t.Errorf("rescued %d jobs with a minute left, want 0", got)
		}
		s.Exec(t, `UPDATE jobs SET lease_expires = now() - interval '1 microsecond' WHERE state = 'running'`)
		if got := mustRescue(t, db, time.Now()); got != 1 {
			t.Errorf("rescued %d jobs after the lease, want 1", got)
		}
		if atts, _ := db.FindAttempts(ctx, 5); len(atts) != 1 || atts[0].Outcome != hooks.OutcomeDead || atts[0].Duration != 2500*time.Microsecond {
			t.Errorf("attempts of job 5: got %+v", atts)
		}
		if client, scopes, err := db.TokenClient(ctx, []byte{1, 2, 3}, now); err != nil || client != "client" || len(scopes) != 1 {
			t.Errorf("token: got %q %v %v", client, scopes, err)
		}
		faults, err := db.Faults(ctx, now)
		if err != nil || len(faults) != 1 || faults[0].ID != 6 || faults[0].Status != 503 {
			t.Errorf("faults: got %+v, %v", faults, err)
		}
		// New rows continue after the largest ids copied.
		r := newReceipt(time.Now(), "after", `{}`)
		mustCommit(t, db, r)
		if r.Request.ID <= 9 || r.Job.ID <= 5 {
			t.Errorf("new request %d, job %d: want ids after 9 and 5", r.Request.ID, r.Job.ID)
		}
		f := &hooks.Fault{Sender: hooks.SenderSvix, Kind: hooks.FaultStatus, Status: http.StatusBadGateway, Remaining: -1, Percent: 100, CreatedAt: now}
		if err := db.AddFault(ctx, f); err != nil || f.ID <= 6 {
			t.Errorf("new fault %d, %v: want an id after 6", f.ID, err)
		}
	})

	t.Run("ErrNotEmpty", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t).Open(t)
		mustCommit(t, db, newReceipt(time.Now(), "already", `{}`))
		_, err := db.Import(ctx, sampleRows(time.Now()), false)
		if !errors.Is(err, postgres.ErrNotEmpty) {
			t.Fatalf("import into a store with a request: got %v, want ErrNotEmpty", err)
		}
		if reqs := mustFindRequests(t, db, hooks.RequestFilter{Limit: 10}); len(reqs) != 1 || reqs[0].RequestID != "already" {
			t.Fatalf("after the refusal: got %+v, want the one request", reqs)
		}
		// Told to replace, it does: only the copied rows are left.
		if _, err := db.Import(ctx, sampleRows(time.Now()), true); err != nil {
			t.Fatal(err)
		}
		if reqs := mustFindRequests(t, db, hooks.RequestFilter{Limit: 10}); len(reqs) != 2 || reqs[1].ID != 7 {
			t.Fatalf("after replacing: got %+v, want requests 9 and 7", reqs)
		}
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t).Open(t)
		rows := sampleRows(time.Now())
		rows["faults"] = append(rows["faults"], []any{"not an id"})
		if _, err := db.Import(ctx, rows, false); err == nil {
			t.Fatal("import of a malformed row: got no error")
		}
		if reqs := mustFindRequests(t, db, hooks.RequestFilter{Limit: 10}); len(reqs) != 0 {
			t.Fatalf("after a failed import: got %d requests, want none", len(reqs))
		}
	})
}
