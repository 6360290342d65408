package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// ids returns the records' ids, in order.
func ids(reqs []*hooks.Request) string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = fmt.Sprint(r.ID)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// TestDB_FindRequests_Inspector covers the filters the inspector adds:
// status and status class, text in the body or the headers, a time range
// and paging by id.
func TestDB_FindRequests_Inspector(t *testing.T) {
	db := sqlitetest.Open(t)
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	type rec struct {
		status int
		body   string
		header string
	}
	recs := []rec{
		{200, `{"customer":"alice"}`, "curl/8"},
		{503, `{"customer":"bob"}`, "Bubblehouse/1.0"},
		{404, "\xff\xfebinary alice\x00", "curl/8"},
		{200, `{"customer":"carol"}`, "Agent-Alice"},
		{502, `{"customer":"dave"}`, "curl/8"},
	}
	var id []int64
	for i, r := range recs {
		req := newReceipt(base.Add(time.Duration(i)*time.Minute), fmt.Sprintf("req-%d", i), `{}`).Request
		req.Status, req.Body = r.status, []byte(r.body)
		req.Header.Set("User-Agent", r.header)
		if err := db.Record(ctx, req); err != nil {
			t.Fatal(err)
		}
		id = append(id, req.ID)
	}
	for _, tt := range []struct {
		name string
		f    hooks.RequestFilter
		want []int64
	}{
		{"Status", hooks.RequestFilter{Status: 200}, []int64{id[3], id[0]}},
		{"StatusClass5", hooks.RequestFilter{StatusClass: 5}, []int64{id[4], id[1]}},
		{"StatusClass4", hooks.RequestFilter{StatusClass: 4}, []int64{id[2]}},
		{"StatusWinsOverClass", hooks.RequestFilter{Status: 503, StatusClass: 2}, []int64{id[1]}},
		{"SearchBody", hooks.RequestFilter{Search: "bob"}, []int64{id[1]}},
		{"SearchBinaryBody", hooks.RequestFilter{Search: "binary alice"}, []int64{id[2]}},
		{"SearchHeaders", hooks.RequestFilter{Search: "Bubblehouse/1.0"}, []int64{id[1]}},
		{"SearchBodyOrHeaders", hooks.RequestFilter{Search: "lice"}, []int64{id[3], id[2], id[0]}},
		{"SearchIsCaseSensitive", hooks.RequestFilter{Search: "BOB"}, []int64{}},
		{"SearchLikeWildcardsAreText", hooks.RequestFilter{Search: "%"}, []int64{}},
		{"Since", hooks.RequestFilter{Since: base.Add(3 * time.Minute)}, []int64{id[4], id[3]}},
		{"Until", hooks.RequestFilter{Until: base.Add(1 * time.Minute)}, []int64{id[0]}},
		{"SinceUntil", hooks.RequestFilter{Since: base.Add(time.Minute), Until: base.Add(3 * time.Minute)}, []int64{id[2], id[1]}},
		{"BeforeID", hooks.RequestFilter{BeforeID: id[3], Limit: 2}, []int64{id[2], id[1]}},
		{"BeforeIDSearch", hooks.RequestFilter{BeforeID: id[3], Search: "alice"}, []int64{id[2], id[0]}},
		{"AfterID", hooks.RequestFilter{AfterID: id[2]}, []int64{id[4], id[3]}},
		{"AfterBeforeID", hooks.RequestFilter{AfterID: id[0], BeforeID: id[3]}, []int64{id[2], id[1]}},
		{"Combined", hooks.RequestFilter{Sender: hooks.SenderBubblehouse, StatusClass: 5, Search: "dave"}, []int64{id[4]}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := make([]*hooks.Request, len(tt.want))
			for i, w := range tt.want {
				want[i] = &hooks.Request{ID: w}
			}
			if got, want := ids(mustFindRequests(t, db, tt.f)), ids(want); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

// TestDB_FindRequests_SearchWindow: a search reads at most the window of
// records below its start; the next window, from start - window, finds the
// older matches.
func TestDB_FindRequests_SearchWindow(t *testing.T) {
	defer sqlite.SetSearchWindow(3)()
	db := sqlitetest.Open(t)
	var id []int64
	for i := range 8 {
		r := newReceipt(time.Now(), fmt.Sprintf("w-%d", i), `{}`)
		if i == 0 || i == 6 {
			r.Request.Body = []byte(`{"needle":true}`)
		}
		mustSave(t, db, r)
		id = append(id, r.Request.ID)
	}
	if got, want := db.SearchWindow(), int64(3); got != want {
		t.Fatalf("SearchWindow: got %d, want %d", got, want)
	}
	// The newest three (id[5..7]) hold one match.
	got := mustFindRequests(t, db, hooks.RequestFilter{Search: "needle", Limit: 10})
	if len(got) != 1 || got[0].ID != id[6] {
		t.Fatalf("first window: got %s, want [%d]", ids(got), id[6])
	}
	// Below id[5]: id[2..4], none; below id[2]: id[0..1], the other.
	if got := mustFindRequests(t, db, hooks.RequestFilter{Search: "needle", BeforeID: id[5], Limit: 10}); len(got) != 0 {
		t.Fatalf("second window: got %s, want none", ids(got))
	}
	got = mustFindRequests(t, db, hooks.RequestFilter{Search: "needle", BeforeID: id[2], Limit: 10})
	if len(got) != 1 || got[0].ID != id[0] {
		t.Fatalf("third window: got %s, want [%d]", ids(got), id[0])
	}
}

// TestDB_FindJobs_Inspector covers the sender filter, paging by id and the
// time a job finished.
func TestDB_FindJobs_Inspector(t *testing.T) {
	db := sqlitetest.Open(t)
	now := time.Now().Truncate(time.Microsecond)
	var jobs []*hooks.Job
	for i, s := range []hooks.Sender{hooks.SenderBubblehouse, hooks.SenderSvix, hooks.SenderBubblehouse} {
		r := newReceipt(now, fmt.Sprintf("j-%d", i), `{}`)
		r.Request.Sender, r.Job.Sender = s, s
		if i == 2 {
			r.Job.Stored(now)
		}
		mustSave(t, db, r)
		jobs = append(jobs, r.Job)
	}
	got := mustFindJobs(t, db, hooks.JobFilter{Sender: hooks.SenderBubblehouse})
	if len(got) != 2 || got[0].ID != jobs[0].ID || got[1].ID != jobs[2].ID {
		t.Fatalf("by sender: got %d jobs, want jobs %d and %d", len(got), jobs[0].ID, jobs[2].ID)
	}
	if got := mustFindJobs(t, db, hooks.JobFilter{AfterID: jobs[0].ID, Limit: 1}); len(got) != 1 || got[0].ID != jobs[1].ID {
		t.Fatalf("after %d: got %v, want job %d", jobs[0].ID, got, jobs[1].ID)
	}
	done := mustFindJobs(t, db, hooks.JobFilter{State: hooks.JobDone})
	if len(done) != 1 || !done[0].FinishedAt.Equal(now) {
		t.Fatalf("done jobs: got %+v, want job %d finished at %v", done, jobs[2].ID, now)
	}
	if got := mustFindJobs(t, db, hooks.JobFilter{State: "lost"}); len(got) != 0 {
		t.Fatalf("an unknown state: got %d jobs, want none", len(got))
	}
}

// TestDB_FindRequests_Plans checks that the inspector's filters are
// served by indexes: no filter reads the whole table to find a few rows.
func TestDB_FindRequests_Plans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	sqlitetest.OpenPath(t, path)
	raw, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, tt := range []struct {
		f     hooks.RequestFilter
		index string
		// sorted: the rows come from several ranges of the index (a status
		// class) and are sorted; they are the few error answers.
		sorted bool
	}{
		{hooks.RequestFilter{Sender: hooks.SenderSvix}, "requests_sender", false},
		{hooks.RequestFilter{Name: "SendEvent1"}, "requests_name", false},
		{hooks.RequestFilter{Status: 503}, "requests_error_status", false},
		{hooks.RequestFilter{StatusClass: 5}, "requests_error_status", true},
		{hooks.RequestFilter{Sender: hooks.SenderSvix, BeforeID: 1000}, "requests_sender", false},
		{hooks.RequestFilter{BeforeID: 1000}, "INTEGER PRIMARY KEY", false},
		// The inspector's lookup of a request ID near a record: a range of
		// the table, however many records there are.
		{hooks.RequestFilter{RequestID: "req-1", AfterID: 1000, BeforeID: 2000}, "INTEGER PRIMARY KEY (rowid>? AND rowid<?)", false},
	} {
		q, args := sqlite.RequestsQuery(tt.f)
		plan := queryPlan(t, raw, q, args...)
		if !strings.Contains(plan, tt.index) || strings.Contains(plan, "TEMP B-TREE") != tt.sorted {
			t.Errorf("%+v: plan %q does not read %s (sorted: %v)", tt.f, plan, tt.index, tt.sorted)
		}
	}
	if plan := queryPlan(t, raw, "SELECT id FROM jobs WHERE state = 'dead' ORDER BY id LIMIT 50"); !strings.Contains(plan, "jobs_dead") {
		t.Errorf("dead jobs: plan %q does not use jobs_dead", plan)
	}
}

func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, detail)
	}
	return strings.Join(steps, "; ")
}

// BenchmarkFindRequests_Million builds a store of a million requests and
// times the inspector's queries on it: the figures README quotes
// (go test -run '^$' -bench FindRequests_Million ./store/sqlite/). That the
// filters use their indexes is TestDB_FindRequests_Plans's to check.
func BenchmarkFindRequests_Million(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "db")
	db, err := sqlite.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fillRequests(b, path, n)
	b.Logf("built %d requests in %s", n, time.Since(start).Round(time.Millisecond))
	db = sqlitetest.OpenPath(b, path)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		f    hooks.RequestFilter
	}{
		{"newest_page", hooks.RequestFilter{Limit: 50}},
		{"page_before_id_500000", hooks.RequestFilter{BeforeID: n / 2, Limit: 50}},
		{"rare_sender_1pct", hooks.RequestFilter{Sender: hooks.SenderBloomreach, Limit: 50}},
		{"rare_name_0.1pct", hooks.RequestFilter{Name: "Hello1", Limit: 50}},
		{"request_id", hooks.RequestFilter{RequestID: "req-123456"}},
		{"request_id_one_window", hooks.RequestFilter{RequestID: "req-123456", AfterID: n/2 - 50_000, BeforeID: n/2 + 50_000}},
		{"status_class_5xx_0.5pct", hooks.RequestFilter{StatusClass: 5, Limit: 50}},
		{"status_200", hooks.RequestFilter{Status: 200, Limit: 50}},
		{"search_common_word", hooks.RequestFilter{Search: "order.paid", Limit: 50}},
		{"search_rare_text_one_window", hooks.RequestFilter{Search: "cust-999999", Limit: 50}},
		{"search_no_match_one_window", hooks.RequestFilter{Search: "no such text", Limit: 50}},
		{"last_hour", hooks.RequestFilter{Since: time.Now().Add(-time.Hour), Limit: 50}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.FindRequests(ctx, tt.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillRequests inserts n request records straight into the database at
// path, in one transaction: SendEvent1-sized bodies, 1% Bloomreach, 0.1%
// Hello1, 0.5% answered 503, one a second back from now.
func fillRequests(tb testing.TB, path string, n int) {
	tb.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=OFF")
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	tx, err := raw.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := tx.Prepare(`INSERT INTO requests (id, sender, name, request_id, urgency, method, path, remote_addr, headers, body,
		status, response, latency_us, notes, received_at) VALUES (?, ?, ?, ?, 'regular', 'POST', ?, '192.0.2.1', ?, ?, ?, '{}', 900, '[]', ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	pad := strings.Repeat("x", 480)
	for i := 1; i <= n; i++ {
		sender, name, status := "bubblehouse", "SendEvent1", http.StatusOK
		switch {
		case i%100 == 7:
			sender, name = "bloomreach", "sample"
		case i%1000 == 3:
			name = "Hello1"
		}
		if i%200 == 11 {
			status = http.StatusServiceUnavailable
		}
		rid := fmt.Sprintf("req-%d", i)
		headers := `{"Content-Type":["application/json"],"User-Agent":["Bubblehouse/1.0"],"X-Request-Id":["` + rid + `"]}`
		body := fmt.Sprintf(`{"event":"order.paid","customer":"cust-%d","data":"%s"}`, i, pad)
		if _, err := st.Exec(i, sender, name, rid, "/"+sender+"/"+name, headers, []byte(body), status,
			now.Add(-time.Duration(n-i)*time.Second).UnixMicro()); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}
