package cli

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// writePostgresCLIConfig writes the config file an operator would pass to
// the CLI to read the PostgreSQL store at url: the store and a data
// directory of its own, empty, so that a command that ignored the store
// would find nothing.
func writePostgresCLIConfig(t *testing.T, url string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "hookbay.yaml")
	yaml := fmt.Sprintf("server: {data_dir: %q, tls: {mode: \"off\"}}\nstore: {postgres: {url: %q}}\n", dir, url)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The read commands, pointed at a PostgreSQL store by their config file,
// show what a running hookbay on it recorded and delivered, in text and
// in JSON: every sender's request with its ID, status and done job.
func TestReadCommands_Postgres(t *testing.T) {
	schema := pgtest.New(t)
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		allSenders(d.URL)(c)
		c.Store.Postgres = &config.PostgresConfig{URL: schema.URL()}
	})
	sent := sendAll(t, m, "read")
	waitUntil(t, 10*time.Second, "three jobs done", func() bool {
		return len(jobs(t, m, hooks.JobFilter{State: hooks.JobDone})) == 3
	})
	cfg := writePostgresCLIConfig(t, schema.URL())

	// What was sent, by request ID: its sender and name, the status it
	// was answered, and (from the store) its event and job.
	type want struct {
		sender  hooks.Sender
		name    string // the request's; its job's is jobName when set
		jobName string
		status  int
		event   int64
		job     int64
	}
	wants := map[string]*want{
		"bh-read":  {sender: hooks.SenderBubblehouse, name: "CreateDiscount4"},
		"msg_read": {sender: hooks.SenderSvix, name: "bloom", jobName: "copy.test"}, // endpoint, event type
		"br-read":  {sender: hooks.SenderBloomreach, name: "sms"},
	}
	for rid, w := range wants {
		w.status = sent[rid].status
		w.event = eventOf(t, m, rid)
		js := jobs(t, m, hooks.JobFilter{RequestRef: w.event})
		if len(js) != 1 {
			t.Fatalf("%s: %d jobs, want 1", rid, len(js))
		}
		w.job = js[0].ID
	}

	t.Run("EventsList", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(mustCLI(t, "events", "list", "--config", cfg)), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
			t.Fatalf("events list: got\n%s\nwant a header and 3 rows", strings.Join(lines, "\n"))
		}
		seen := map[string]bool{}
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			w := wants[f[4]]
			if w == nil || f[0] != fmt.Sprint(w.event) || f[2] != string(w.sender) || f[3] != w.name ||
				!slices.Contains(f, fmt.Sprint(w.status)) {
				t.Errorf("row %q: want one of %v with its event, sender, name and status", line, slices.Sorted(maps.Keys(wants)))
				continue
			}
			seen[f[4]] = true
		}
		if len(seen) != len(wants) {
			t.Errorf("rows for %v, want all of %d", seen, len(wants))
		}

		var evs []cliEvent
		cliJSON(t, &evs, "events", "list", "--config", cfg, "--json")
		if len(evs) != len(wants) {
			t.Fatalf("events list --json: got %d events, want %d", len(evs), len(wants))
		}
		for _, e := range evs {
			w := wants[e.RequestID]
			if w == nil || e.ID != w.event || e.Sender != string(w.sender) || e.Name != w.name || e.Status != w.status {
				t.Errorf("event %+v: want one of what was sent", e)
			}
		}
	})

	t.Run("EventsShow", func(t *testing.T) {
		for rid, w := range wants {
			out := mustCLI(t, "events", "show", "--config", cfg, fmt.Sprint(w.event))
			for _, s := range []string{
				fmt.Sprintf("event %d  %s %s", w.event, w.sender, w.name),
				fmt.Sprintf("request ID %q", rid),
				fmt.Sprintf("answered %d", w.status),
				fmt.Sprintf("job %d: done, 1 attempt(s)", w.job),
			} {
				if !strings.Contains(out, s) {
					t.Errorf("events show %d lacks %q:\n%s", w.event, s, out)
				}
			}
			var e cliEvent
			cliJSON(t, &e, "events", "show", "--config", cfg, "--json", fmt.Sprint(w.event))
			if e.ID != w.event || e.RequestID != rid || e.Sender != string(w.sender) || e.Status != w.status {
				t.Errorf("events show --json %d: got %+v, want %s as sent", w.event, e, rid)
			}
			if len(e.Jobs) != 1 || e.Jobs[0].ID != w.job || e.Jobs[0].State != "done" || len(e.Jobs[0].History) != 1 ||
				e.Jobs[0].History[0].Outcome != string(hooks.OutcomeOK) {
				t.Errorf("events show --json %d: jobs %+v, want job %d done after one ok attempt", w.event, e.Jobs, w.job)
			}
		}
		if _, err := runCLI(t, "events", "show", "--config", cfg, "999999"); err == nil || !strings.Contains(err.Error(), "no event 999999") {
			t.Errorf("events show of no event: got %v, want no event", err)
		}
	})

	t.Run("JobsList", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(mustCLI(t, "jobs", "list", "--config", cfg)), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
			t.Fatalf("jobs list: got\n%s\nwant a header and 3 rows", strings.Join(lines, "\n"))
		}
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			w := wants[f[4]]
			if w == nil || f[0] != fmt.Sprint(w.job) || f[1] != fmt.Sprint(w.event) || f[2] != string(w.sender) ||
				f[3] != cmp.Or(w.jobName, w.name) || !slices.Contains(f, "done") {
				t.Errorf("row %q: want a done job of what was sent", line)
			}
		}

		var js []cliJob
		cliJSON(t, &js, "jobs", "list", "--config", cfg, "--json")
		if len(js) != len(wants) {
			t.Fatalf("jobs list --json: got %d jobs, want %d", len(js), len(wants))
		}
		for _, j := range js {
			w := wants[j.RequestID]
			if w == nil || j.ID != w.job || j.Event != w.event || j.Sender != string(w.sender) || j.Name != cmp.Or(w.jobName, w.name) ||
				j.State != "done" || j.Attempts != 1 {
				t.Errorf("job %+v: want a done job of what was sent", j)
			}
		}
		cliJSON(t, &js, "jobs", "list", "--config", cfg, "--json", "--state", "available")
		if len(js) != 0 {
			t.Errorf("jobs list --state available: got %v, want none", jobIDs(js))
		}
	})

	t.Run("Report", func(t *testing.T) {
		out := mustCLI(t, "report", "--config", cfg)
		for _, w := range wants {
			if s := fmt.Sprintf("%s: 1 requests, 1 request IDs, 0 with findings", w.sender); !strings.Contains(out, s) {
				t.Errorf("report lacks %q:\n%s", s, out)
			}
		}
		var b struct {
			Senders map[string]struct {
				Requests int         `json:"requests"`
				Statuses map[int]int `json:"statuses"`
			} `json:"senders"`
		}
		cliJSON(t, &b, "report", "--config", cfg, "--json")
		for _, w := range wants {
			if s := b.Senders[string(w.sender)]; s.Requests != 1 || s.Statuses[w.status] != 1 {
				t.Errorf("report --json, %s: got %+v, want 1 request answered %d", w.sender, s, w.status)
			}
		}
	})
}

// A notification is only a hint: a job that reaches the table without one
// (here a row written with SQL, as a replica whose NOTIFY was lost would
// leave it) is still delivered by a running hookbay on PostgreSQL, by its
// queue's polling, within a poll interval or two.
func TestQueue_PostgresPollsWithoutNotify(t *testing.T) {
	schema := pgtest.New(t)
	ctx := context.Background()
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Store.Postgres = &config.PostgresConfig{URL: schema.URL()}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	// A listener on the channel hookbay announces new jobs on: it hears
	// every wake-up the running hookbay could have had.
	listener := schema.Conn(t)
	channel := "hookbay_jobs_" + schema.Name
	if _, err := listener.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	writer := schema.Conn(t)
	// sentinel sends a notification of the test's own on the channel and
	// returns the payloads of the ones received before it: they were sent
	// by transactions that committed first.
	var sentinels int
	sentinel := func() []string {
		t.Helper()
		sentinels++
		mark := fmt.Sprintf("sentinel-%d", sentinels)
		if _, err := writer.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, mark); err != nil {
			t.Fatal(err)
		}
		var before []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("waiting for %s: %v", mark, err)
			}
			if n.Payload == mark {
				return before
			}
			before = append(before, n.Payload)
		}
	}

	// A job queued by another replica's store handle is announced on the
	// channel, and delivered: the listener hears what hookbay hears, and
	// the queue has run and is idle.
	if _, err := schema.Open(t).SaveReceipt(ctx, storeReceipt("heard")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the announced job delivered", func() bool { return len(d.deliveries()) == 1 })
	if heard := sentinel(); len(heard) == 0 {
		t.Fatalf("nothing heard on %s for a job queued by a store handle: the listener is not on its channel", channel)
	}

	// A job written with SQL: no notification.
	urgent := hooks.UrgencyUrgent
	var event, job int64
	if err := writer.QueryRow(ctx, `INSERT INTO requests (sender, name, request_id, urgency, method, path, body, status, response, received_at)
		VALUES ($1, 'CreateDiscount4', 'silent', $2, 'POST', '/bubblehouse/CreateDiscount4', $3, 202, '{}', now()) RETURNING id`,
		string(hooks.SenderBubblehouse), string(urgent), []byte(`{"code":"silent"}`)).Scan(&event); err != nil {
		t.Fatal(err)
	}
	if err := writer.QueryRow(ctx, `INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at)
		VALUES ($1, $2, 'CreateDiscount4', $3, $4, 'available', now(), now()) RETURNING id`,
		event, string(hooks.SenderBubblehouse), string(urgent), urgent.Priority()).Scan(&job); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	poll := m.Queue.PollInterval
	bound := 2*poll + time.Second
	waitUntil(t, bound, fmt.Sprintf("job %d, written without a notification, delivered within %v (poll interval %v)", job, bound, poll),
		func() bool {
			got := d.deliveries()
			return len(got) == 2 && string(got[1].body) == `{"code":"silent"}`
		})
	t.Logf("delivered %v after the write, polling every %v", time.Since(written).Round(time.Millisecond), poll)
	if heard := sentinel(); len(heard) != 0 {
		t.Fatalf("heard %q on %s after the SQL write: the job could have been announced", heard, channel)
	}
	if j := jobOf(t, m, event, hooks.JobDone); j.ID != job || j.Attempts != 1 {
		t.Fatalf("job: got %+v, want job %d done after one attempt", j, job)
	}
}
