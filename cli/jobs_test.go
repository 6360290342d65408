package cli

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

func TestJobsCommand_List(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Queue.Workers = 1 // a held delivery keeps the next job pending
		c.Queue.Prefetch = 2
		c.Queue.MaxAttempts = 1
		c.Queue.Backoff = config.BackoffConfig{Initial: config.Duration(10 * time.Millisecond), Max: config.Duration(50 * time.Millisecond)}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	dir := m.Config.Server.DataDir

	// done, dead, running (held by the downstream, or next in line), available (no room)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"A"}`, urgency: "urgent", id: "jl-a"})
	a := jobOf(t, m, eventOf(t, m, "jl-a"), hooks.JobDone)
	d.set(func(d *downstream) { d.statuses = []int{500} })
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"B"}`, urgency: "urgent", id: "jl-b"})
	b := jobOf(t, m, eventOf(t, m, "jl-b"), hooks.JobDead)
	gate := make(chan struct{})
	d.set(func(d *downstream) { d.gate = gate })
	t.Cleanup(func() { close(gate) }) // before the server and the downstream close
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"C"}`, urgency: "urgent", id: "jl-c"})
	c := jobOf(t, m, eventOf(t, m, "jl-c"), hooks.JobRunning)
	// D and E are claimed into the worker's line (queue.prefetch: 2),
	// next after C: leased, so running, as --state's help says; F finds
	// the line full and waits, available.
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"D"}`, urgency: "urgent", id: "jl-d"})
	ld := jobOf(t, m, eventOf(t, m, "jl-d"), hooks.JobRunning)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"E"}`, urgency: "urgent", id: "jl-e"})
	le := jobOf(t, m, eventOf(t, m, "jl-e"), hooks.JobRunning)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"F"}`, urgency: "urgent", id: "jl-f"})
	p := jobOf(t, m, eventOf(t, m, "jl-f"), hooks.JobAvailable)

	var all []cliJob
	cliJSON(t, &all, "jobs", "list", "--data", dir, "--json")
	if got, want := jobIDs(all), []int64{a.ID, b.ID, c.ID, ld.ID, le.ID, p.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("jobs=%v, want %v (oldest first)", got, want)
	}
	var states []string
	for _, j := range all {
		states = append(states, j.State)
	}
	if got := strings.Join(states, ","); got != "done,dead,running,running,running,available" {
		t.Fatalf("states=%s", got)
	}
	if j := all[1]; j.Event != eventOf(t, m, "jl-b") || j.Name != "CreateDiscount4" || j.Urgency != "urgent" || j.Attempts != 1 || !strings.Contains(j.LastError, "status 500") {
		t.Fatalf("dead job=%+v", j)
	}
	// The sender and its request ID match a job to what the sender sent.
	for i, rid := range []string{"jl-a", "jl-b", "jl-c", "jl-d", "jl-e", "jl-f"} {
		if j := all[i]; j.Sender != "bubblehouse" || j.RequestID != rid {
			t.Errorf("job %d: sender %q, request ID %q; want bubblehouse, %q", j.ID, j.Sender, j.RequestID, rid)
		}
	}
	if all[0].History != nil {
		t.Fatalf("jobs list shows history: %+v", all[0])
	}

	for _, tt := range []struct {
		name string
		args []string
		want []int64
	}{
		{"Available", []string{"--state", "available"}, []int64{p.ID}},
		{"Running", []string{"--state", "running"}, []int64{c.ID, ld.ID, le.ID}},
		{"Done", []string{"--state", "done"}, []int64{a.ID}},
		{"Dead", []string{"--state", "dead"}, []int64{b.ID}},
		{"NameAndLimit", []string{"--name", "CreateDiscount4", "--limit", "2"}, []int64{a.ID, b.ID}},
		{"NameNone", []string{"--name", "SendEvent1"}, []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var js []cliJob
			cliJSON(t, &js, append([]string{"jobs", "list", "--data", dir, "--json"}, tt.args...)...)
			if got := jobIDs(js); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("jobs=%v, want %v", got, tt.want)
			}
		})
	}
	t.Run("Table", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(mustCLI(t, "jobs", "list", "--data", dir, "--state", "dead")), "\n")
		if got := strings.Fields(lines[0]); len(lines) != 2 || !reflect.DeepEqual(got, []string{"ID", "EVENT", "SENDER", "NAME", "REQUEST", "ID",
			"URGENCY", "STATE", "ATTEMPTS", "NEXT", "RUN", "LAST", "ERROR"}) {
			t.Fatalf("output:\n%s", strings.Join(lines, "\n"))
		}
		for _, want := range []string{fmt.Sprint(b.ID), "bubblehouse", "CreateDiscount4", "jl-b", "dead", "status 500"} {
			if !strings.Contains(lines[1], want) {
				t.Errorf("row %q lacks %q", lines[1], want)
			}
		}
	})
	// One name per state: the one the JSON prints is the one --state
	// takes, and no other.
	for _, state := range []string{"stuck", "pending"} {
		t.Run("ErrState/"+state, func(t *testing.T) {
			_, err := runCLI(t, "jobs", "list", "--data", dir, "--state", state)
			if want := fmt.Sprintf(`--state %q: want available (waiting for a worker: new, or due for a retry), running (leased by a worker pool: being delivered, or claimed and next in its line), done or dead`, state); exitStatus(t, err) != 2 || err.Error() != want {
				t.Fatalf("err=%v, want %q", err, want)
			}
		})
	}
}

func TestJobsCommand_Retry(t *testing.T) {
	d := newDownstream(t)
	d.set(func(d *downstream) { d.status, d.answer = 500, `{"error":"db down"}` })
	m := MustRunMain(t, func(c *config.Config) {
		c.Queue.MaxAttempts = 1
		c.Queue.Backoff = config.BackoffConfig{Initial: config.Duration(10 * time.Millisecond), Max: config.Duration(50 * time.Millisecond)}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	dir := m.Config.Server.DataDir
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"X"}`, urgency: "urgent", id: "rt-x"})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"Y"}`, urgency: "regular", id: "rt-y"})
	send(t, m, call{hook: "SendEvent1", body: `{"bhid":"rt-1"}`, urgency: "regular", id: "rt-s"}) // store action: done at once
	xe, ye := eventOf(t, m, "rt-x"), eventOf(t, m, "rt-y")
	x := jobOf(t, m, xe, hooks.JobDead)
	jobOf(t, m, ye, hooks.JobDead)
	s := jobOf(t, m, eventOf(t, m, "rt-s"), hooks.JobDone)

	// A job that is done, or none at all, is not retried: an error that
	// says so, not "0 job(s) queued again" and exit status 0.
	for _, id := range []int64{s.ID, 999} {
		out, err := runCLI(t, "jobs", "retry", "--data", dir, fmt.Sprint(id))
		if want := fmt.Sprintf("job(s) %d not queued again: no such job, or it is done or running", id); exitStatus(t, err) != 2 || !strings.Contains(err.Error(), want) || out != "" {
			t.Fatalf("retry %d: %q, err=%v; want exit status 2 and %q", id, out, err, want)
		}
	}
	var n struct {
		Retried    int64    `json:"retried"`
		NotRetried []string `json:"not_retried"`
	}
	cliJSON(t, &n, "jobs", "retry", "--data", dir, "--json", "--dead", "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if n.Retried != 0 || n.NotRetried == nil || len(n.NotRetried) != 0 {
		t.Fatalf("retry --dead since a future time: %v, want 0", n)
	}

	d.set(func(d *downstream) { d.status, d.answer = 200, `{}` })
	if out := mustCLI(t, "jobs", "retry", "--data", dir, fmt.Sprint(x.ID)); !strings.HasPrefix(out, "1 job(s) queued again") {
		t.Fatalf("retry %d: %q, want 1", x.ID, out)
	}
	cliJSON(t, &n, "jobs", "retry", "--data", dir, "--json", "--dead", "--since", "1h")
	if n.Retried != 1 {
		t.Fatalf("retry --dead --since 1h: %v, want 1 (the other dead job)", n)
	}
	// The running server finds the retried jobs on its own.
	jobOf(t, m, xe, hooks.JobDone)
	jobOf(t, m, ye, hooks.JobDone)
	count := map[string]int{}
	for _, g := range d.deliveries() {
		count[string(g.body)]++
	}
	if count[`{"code":"X"}`] != 2 || count[`{"code":"Y"}`] != 2 {
		t.Fatalf("deliveries by body=%v, want 2 each", count)
	}

	var e cliEvent
	cliJSON(t, &e, "events", "show", "--data", dir, "--json", fmt.Sprint(xe))
	if len(e.Jobs) != 1 || e.Jobs[0].ID != x.ID || e.Jobs[0].State != "done" {
		t.Fatalf("jobs=%+v", e.Jobs)
	}
	var outcomes []string
	for _, h := range e.Jobs[0].History {
		outcomes = append(outcomes, h.Outcome)
	}
	if got := strings.Join(outcomes, ","); got != "dead,ok" {
		t.Fatalf("history=%s, want dead,ok", got)
	}
	if h := e.Jobs[0].History[0]; !strings.Contains(h.Error, "status 500") {
		t.Fatalf("dead attempt error=%q", h.Error)
	}
}
