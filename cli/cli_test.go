package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

// The CLI tests run the commands through Run against the SQLite file of a
// server that is running, as an operator would from a second shell.

// runCLI runs one command line and returns what it printed on stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

// mustCLI runs a command line that must succeed.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("hookbay %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cliJSON runs a command line that must succeed and decodes its output.
func cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("hookbay %s: output is not the JSON expected: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliEvent and cliJob are the --json shapes, spelled out here so that a
// renamed key fails the test.
type cliEvent struct {
	ID        int64               `json:"id"`
	Sender    string              `json:"sender"`
	Name      string              `json:"name"`
	RequestID string              `json:"request_id"`
	Urgency   string              `json:"urgency"`
	Headers   map[string][]string `json:"headers"`
	Body      json.RawMessage     `json:"body"`
	Status    int                 `json:"status"`
	Response  json.RawMessage     `json:"response"`
	Notes     []string            `json:"notes"`
	Jobs      []cliJob            `json:"jobs"`
}

type cliJob struct {
	ID        int64  `json:"id"`
	Event     int64  `json:"event"`
	Name      string `json:"name"`
	Urgency   string `json:"urgency"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	History   []struct {
		Attempt int    `json:"attempt"`
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	} `json:"history"`
}

func eventRequestIDs(evs []cliEvent) []string {
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		ids = append(ids, e.RequestID)
	}
	return ids
}

func jobIDs(js []cliJob) []int64 {
	ids := make([]int64, 0, len(js))
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}

// sameJSON reports whether a and b encode the same value: the CLI indents
// what it prints.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// eventOf returns the ID of the request record with the given request ID.
func eventOf(t *testing.T, m *Main, requestID string) int64 {
	t.Helper()
	recs := requests(t, m, sqlite.RequestFilter{RequestID: requestID})
	if len(recs) != 1 {
		t.Fatalf("records for %s=%d, want 1", requestID, len(recs))
	}
	return recs[0].ID
}

// jobOf waits until the event's only job is in state s and returns it.
func jobOf(t *testing.T, m *Main, event int64, s hooks.JobState) *hooks.Job {
	t.Helper()
	var j *hooks.Job
	waitUntil(t, 5*time.Second, fmt.Sprintf("job of event %d %s", event, s), func() bool {
		js := jobs(t, m, sqlite.JobFilter{RequestRef: event})
		if len(js) == 1 && js[0].State == s {
			j = js[0]
		}
		return j != nil
	})
	return j
}

// writeCLIConfig writes the config file an operator would pass to the CLI:
// the server's data directory and the same forward action.
func writeCLIConfig(t *testing.T, m *Main, url string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hookbay.yaml")
	yaml := fmt.Sprintf(`server:
  data_dir: %q
  tls: {mode: "off"}
bubblehouse:
  authorization: %q
  hooks:
    CreateDiscount4:
      action:
        forward: {url: %q, timeout: 2s, pass_headers: [X-Trace]}
`, m.Config.Server.DataDir, testAuth, url)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEventsCommand_List(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	dir := m.Config.Server.DataDir
	for _, c := range []call{
		{hook: "CreateDiscount4", body: `{"code":"L1"}`, urgency: "urgent", id: "list-1"},
		{hook: "CreateDiscount4", body: `{"code":"L2"}`, id: "list-2"}, // no urgency: noted
		{hook: "Hello1", body: `{"magic":"m"}`, urgency: "real-time", id: "list-3"},
	} {
		if a := send(t, m, c); a.status/100 != 2 {
			t.Fatalf("%s: status=%d %s", c.id, a.status, a.body)
		}
	}

	t.Run("Table", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(mustCLI(t, "events", "list", "--data", dir)), "\n")
		if len(lines) != 4 {
			t.Fatalf("lines=%d, want a header and 3 rows:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, []string{"ID", "RECEIVED", "SENDER", "NAME", "REQUEST", "ID", "URGENCY", "STATUS", "NOTE"}) {
			t.Fatalf("header=%q", lines[0])
		}
		for i, want := range [][]string{
			{"list-3", "Hello1", "bubblehouse", "real-time", "200"},
			{"list-2", "CreateDiscount4", "regular", "202", "X-BH-Urgency missing: handled as regular"},
			{"list-1", "CreateDiscount4", "urgent", "202"},
		} {
			for _, w := range want {
				if !strings.Contains(lines[i+1], w) {
					t.Errorf("row %d %q lacks %q (newest first)", i+1, lines[i+1], w)
				}
			}
		}
	})
	t.Run("JSON", func(t *testing.T) {
		var evs []cliEvent
		cliJSON(t, &evs, "events", "list", "--data", dir, "--json")
		if got, want := eventRequestIDs(evs), []string{"list-3", "list-2", "list-1"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("events=%q, want %q", got, want)
		}
		e := evs[2]
		if e.ID != eventOf(t, m, "list-1") || e.Sender != "bubblehouse" || e.Name != "CreateDiscount4" || e.Urgency != "urgent" || e.Status != 202 {
			t.Fatalf("event=%+v", e)
		}
		if !sameJSON(t, e.Response, []byte(`{"ok":true,"code":"L1"}`)) {
			t.Fatalf("response=%s", e.Response)
		}
		if got := evs[1].Notes; !contains(got, "X-BH-Urgency missing: handled as regular") {
			t.Fatalf("notes=%q", got)
		}
		if e.Headers != nil || e.Body != nil {
			t.Fatalf("list shows headers or body: %+v", e)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"Name", []string{"--name", "CreateDiscount4"}, []string{"list-2", "list-1"}},
		{"NameHello1", []string{"--name", "Hello1"}, []string{"list-3"}},
		{"NameNone", []string{"--name", "SendEvent1"}, []string{}},
		{"Sender", []string{"--sender", "bubblehouse"}, []string{"list-3", "list-2", "list-1"}},
		{"SenderNone", []string{"--sender", "svix"}, []string{}},
		{"SinceDuration", []string{"--since", "1h"}, []string{"list-3", "list-2", "list-1"}},
		{"SinceRFC3339", []string{"--since", time.Now().Add(-time.Hour).Format(time.RFC3339)}, []string{"list-3", "list-2", "list-1"}},
		{"SinceFuture", []string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, []string{}},
		{"Limit", []string{"--limit", "2"}, []string{"list-3", "list-2"}},
		{"NameAndLimit", []string{"--name", "CreateDiscount4", "--limit", "1"}, []string{"list-2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var evs []cliEvent
			cliJSON(t, &evs, append([]string{"events", "list", "--data", dir, "--json"}, tt.args...)...)
			if got := eventRequestIDs(evs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("events=%q, want %q", got, tt.want)
			}
		})
	}
	t.Run("ErrSince", func(t *testing.T) {
		if _, err := runCLI(t, "events", "list", "--data", dir, "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), `--since "yesterday"`) {
			t.Fatalf("err=%v, want a --since error", err)
		}
	})
}

func TestEventsCommand_Show(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL, "X-Trace")}
	})
	dir := m.Config.Server.DataDir
	body := "{ \"code\" : \"S-1\",\n\t\"url\":\"https:\\/\\/shop.example\\/s\" }"
	a := send(t, m, call{hook: "CreateDiscount4", body: body, id: "show-1", header: map[string]string{"X-Trace": "t-1"}})
	if a.status != 202 {
		t.Fatalf("status=%d %s", a.status, a.body)
	}
	id := eventOf(t, m, "show-1")
	j := jobOf(t, m, id, hooks.JobDone)

	t.Run("JSON", func(t *testing.T) {
		out := mustCLI(t, "events", "show", "--data", dir, "--json", fmt.Sprint(id))
		if strings.Contains(out, "test-secret-value") {
			t.Fatalf("show prints the Authorization secret:\n%s", out)
		}
		var e cliEvent
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if e.ID != id || e.RequestID != "show-1" || e.Name != "CreateDiscount4" || e.Urgency != "regular" || e.Status != 202 {
			t.Fatalf("event=%+v", e)
		}
		if got, want := e.Headers["Authorization"], []string{"Bearer [redacted]"}; !reflect.DeepEqual(got, want) {
			t.Errorf("Authorization=%q, want %q", got, want)
		}
		if got, want := e.Headers["X-Trace"], []string{"t-1"}; !reflect.DeepEqual(got, want) {
			t.Errorf("X-Trace=%q, want %q", got, want)
		}
		if !sameJSON(t, e.Body, []byte(body)) {
			t.Errorf("body=%s, want %s", e.Body, body)
		}
		if !sameJSON(t, e.Response, a.body) {
			t.Errorf("response=%s, want what was answered: %s", e.Response, a.body)
		}
		if !contains(e.Notes, "X-BH-Urgency missing: handled as regular") {
			t.Errorf("notes=%q", e.Notes)
		}
		if len(e.Jobs) != 1 {
			t.Fatalf("jobs=%d, want 1", len(e.Jobs))
		}
		got := e.Jobs[0]
		if got.ID != j.ID || got.Event != id || got.State != "done" || got.Attempts != 1 || got.Urgency != "regular" {
			t.Fatalf("job=%+v", got)
		}
		if len(got.History) != 1 || got.History[0].Attempt != 1 || got.History[0].Outcome != hooks.OutcomeOK {
			t.Fatalf("history=%+v, want one ok attempt", got.History)
		}
	})
	t.Run("Text", func(t *testing.T) {
		out := mustCLI(t, "events", "show", "--data", dir, fmt.Sprint(id))
		for _, want := range []string{
			fmt.Sprintf("event %d  bubblehouse CreateDiscount4", id),
			`request ID "show-1"  urgency regular`,
			"Authorization: Bearer [redacted]",
			body,
			"answered 202",
			"- X-BH-Urgency missing: handled as regular",
			fmt.Sprintf("job %d: done, 1 attempt(s)", j.ID),
			"attempt 1 at ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "test-secret-value") {
			t.Fatalf("show prints the Authorization secret")
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := runCLI(t, "events", "show", "--data", dir, fmt.Sprint(id+1000)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no event %d", id+1000)) {
			t.Fatalf("err=%v, want no event", err)
		}
	})
}

func TestEventsCommand_Replay(t *testing.T) {
	d := newDownstream(t)
	d.set(func(d *downstream) { d.answer = `{"forwarded":true}` })
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL, "X-Trace")}
	})
	cfg := writeCLIConfig(t, m, d.URL)
	body := "{\"code\":\"R-1\" ,  \"url\":\"https:\\/\\/x.example\\/\"}\n"
	send(t, m, call{hook: "CreateDiscount4", body: body, urgency: "urgent", id: "replay-1", header: map[string]string{"X-Trace": "t-r"}})
	id := eventOf(t, m, "replay-1")
	first := jobOf(t, m, id, hooks.JobDone)
	if n := len(d.deliveries()); n != 1 {
		t.Fatalf("deliveries=%d, want 1 before the replay", n)
	}

	var res struct {
		Event  int64           `json:"event"`
		Job    int64           `json:"job"`
		OK     bool            `json:"ok"`
		Error  string          `json:"error"`
		Output json.RawMessage `json:"output"`
	}
	cliJSON(t, &res, "events", "replay", "--config", cfg, "--json", fmt.Sprint(id))
	if res.Event != id || !res.OK || res.Error != "" || res.Job == first.ID || res.Job == 0 {
		t.Fatalf("result=%+v, want ok on a new job", res)
	}
	if !sameJSON(t, res.Output, []byte(`{"forwarded":true}`)) {
		t.Fatalf("output=%s, want the downstream's answer", res.Output)
	}
	got := d.deliveries()
	if len(got) != 2 {
		t.Fatalf("deliveries=%d, want 2", len(got))
	}
	if string(got[1].body) != body {
		t.Fatalf("replayed body=%q, want %q byte for byte", got[1].body, body)
	}
	for k, want := range map[string]string{
		"X-Request-Id": "replay-1", "Idempotency-Key": "replay-1", "X-Hookbay-Name": "CreateDiscount4",
		"X-Hookbay-Urgency": "urgent", "X-Hookbay-Attempt": "1", "X-Trace": "t-r",
	} {
		if v := got[1].header.Get(k); v != want {
			t.Errorf("replay header %s=%q, want %q", k, v, want)
		}
	}
	js := jobs(t, m, sqlite.JobFilter{RequestRef: id})
	if len(js) != 2 || js[1].ID != res.Job || js[1].State != hooks.JobDone || js[0].State != hooks.JobDone {
		t.Fatalf("jobs of event %d: %+v, want the first and the replay, done", id, js)
	}
	atts, err := m.DB.FindAttempts(context.Background(), res.Job)
	if err != nil || len(atts) != 1 || atts[0].Outcome != hooks.OutcomeOK {
		t.Fatalf("replay attempts=%+v err=%v, want one ok", atts, err)
	}

	t.Run("Text", func(t *testing.T) {
		out := mustCLI(t, "events", "replay", "--config", cfg, fmt.Sprint(id))
		if !strings.Contains(out, fmt.Sprintf("event %d replayed as job ", id)) || !strings.Contains(out, `: ok {"forwarded":true}`) {
			t.Fatalf("output=%q", out)
		}
		if n := len(d.deliveries()); n != 3 {
			t.Fatalf("deliveries=%d, want 3", n)
		}
	})
	t.Run("Failed", func(t *testing.T) {
		d.set(func(d *downstream) { d.status, d.answer = 500, `{"error":"db down"}` })
		cliJSON(t, &res, "events", "replay", "--config", cfg, "--json", fmt.Sprint(id))
		if res.OK || !strings.Contains(res.Error, "status 500") {
			t.Fatalf("result=%+v, want a failure with status 500", res)
		}
		// The job stays queued for the server to retry.
		js := jobs(t, m, sqlite.JobFilter{RequestRef: id})
		j := js[len(js)-1]
		if j.ID != res.Job || j.State == hooks.JobDone || j.State == hooks.JobDead || !strings.Contains(j.LastError, "status 500") {
			t.Fatalf("replayed job=%+v, want it queued again with its error", j)
		}
		atts, err := m.DB.FindAttempts(context.Background(), res.Job)
		if err != nil || len(atts) == 0 || atts[0].Outcome != hooks.OutcomeFailed {
			t.Fatalf("attempts=%+v err=%v, want a failed attempt", atts, err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := runCLI(t, "events", "replay", "--config", cfg, fmt.Sprint(id+1000)); err == nil || !strings.Contains(err.Error(), "no request") {
			t.Fatalf("err=%v, want no request", err)
		}
	})
}

// README, "Your own action": a Go action takes precedence over the config's
// action for its hook, and "events replay" runs "the action" again, with
// the lease and deadline of the default config when only --data is given.
func TestEventsCommand_ReplayCustomAction(t *testing.T) {
	var calls atomic.Int32
	actions := hooks.Actions{}
	actions.Set(hooks.SenderBubblehouse, "CreateDiscount4", hooks.ActionFunc(func(ctx context.Context, j *hooks.Job) ([]byte, error) {
		calls.Add(1)
		select { // an action that honours its context
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []byte(`{"custom":true}`), nil
	}))
	m := mustRunMainActions(t, actions, nil)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"C"}`, urgency: "urgent", id: "custom-1"})
	id := eventOf(t, m, "custom-1")
	jobOf(t, m, id, hooks.JobDone)
	if n := calls.Load(); n != 1 {
		t.Fatalf("custom action calls=%d, want 1", n)
	}
	var res struct {
		OK     bool            `json:"ok"`
		Output json.RawMessage `json:"output"`
	}
	var out, errOut bytes.Buffer
	p := &Program{Stdout: &out, Stderr: &errOut, Actions: actions}
	if err := p.Run(context.Background(), []string{"events", "replay", "--data", m.Config.Server.DataDir, "--json", fmt.Sprint(id)}); err != nil {
		t.Fatalf("events replay: %v\n%s", err, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("events replay: %v\n%s", err, out.String())
	}
	var compact bytes.Buffer
	json.Compact(&compact, res.Output)
	if n := calls.Load(); n != 2 || !res.OK || compact.String() != `{"custom":true}` {
		t.Fatalf("after replay: custom action calls=%d, result ok=%v output=%s; want the custom action run again", n, res.OK, res.Output)
	}
}

func TestJobsCommand_List(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Queue.Workers = 1 // a held delivery keeps the next job pending
		c.Queue.MaxAttempts = 1
		c.Queue.Backoff = config.BackoffConfig{Initial: config.Duration(10 * time.Millisecond), Max: config.Duration(50 * time.Millisecond)}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	dir := m.Config.Server.DataDir

	// done, dead, running (held by the downstream), pending (no free worker)
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
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"D"}`, urgency: "urgent", id: "jl-d"})
	p := jobOf(t, m, eventOf(t, m, "jl-d"), hooks.JobAvailable)

	var all []cliJob
	cliJSON(t, &all, "jobs", "list", "--data", dir, "--json")
	if got, want := jobIDs(all), []int64{a.ID, b.ID, c.ID, p.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("jobs=%v, want %v (oldest first)", got, want)
	}
	var states []string
	for _, j := range all {
		states = append(states, j.State)
	}
	if got := strings.Join(states, ","); got != "done,dead,running,available" {
		t.Fatalf("states=%s", got)
	}
	if j := all[1]; j.Event != eventOf(t, m, "jl-b") || j.Name != "CreateDiscount4" || j.Urgency != "urgent" || j.Attempts != 1 || !strings.Contains(j.LastError, "status 500") {
		t.Fatalf("dead job=%+v", j)
	}
	if all[0].History != nil {
		t.Fatalf("jobs list shows history: %+v", all[0])
	}

	for _, tt := range []struct {
		name string
		args []string
		want []int64
	}{
		{"Pending", []string{"--state", "pending"}, []int64{p.ID}},
		{"Available", []string{"--state", "available"}, []int64{p.ID}},
		{"Running", []string{"--state", "running"}, []int64{c.ID}},
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
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "LAST ERROR") {
			t.Fatalf("output:\n%s", strings.Join(lines, "\n"))
		}
		for _, want := range []string{fmt.Sprint(b.ID), "CreateDiscount4", "dead", "status 500"} {
			if !strings.Contains(lines[1], want) {
				t.Errorf("row %q lacks %q", lines[1], want)
			}
		}
	})
	t.Run("ErrState", func(t *testing.T) {
		if _, err := runCLI(t, "jobs", "list", "--data", dir, "--state", "stuck"); err == nil || !strings.Contains(err.Error(), `--state "stuck": want pending, running, done or dead`) {
			t.Fatalf("err=%v, want a --state error", err)
		}
	})
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

	if out := mustCLI(t, "jobs", "retry", "--data", dir, fmt.Sprint(s.ID)); !strings.HasPrefix(out, "0 job(s) queued again") {
		t.Fatalf("retry of a done job: %q, want 0", out)
	}
	var n map[string]int64
	cliJSON(t, &n, "jobs", "retry", "--data", dir, "--json", "--dead", "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if n["retried"] != 0 {
		t.Fatalf("retry --dead since a future time: %v, want 0", n)
	}

	d.set(func(d *downstream) { d.status, d.answer = 200, `{}` })
	if out := mustCLI(t, "jobs", "retry", "--data", dir, fmt.Sprint(x.ID)); !strings.HasPrefix(out, "1 job(s) queued again") {
		t.Fatalf("retry %d: %q, want 1", x.ID, out)
	}
	cliJSON(t, &n, "jobs", "retry", "--data", dir, "--json", "--dead", "--since", "1h")
	if n["retried"] != 1 {
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

func TestCLI_UsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		says string
	}{
		{"EventsNoCommand", []string{"events"}, "usage: hookbay events"},
		{"EventsUnknown", []string{"events", "tail"}, `unknown events command "tail"`},
		{"ShowNoID", []string{"events", "show", "--data", dir}, "usage: hookbay events show ID"},
		{"ShowTwoIDs", []string{"events", "show", "--data", dir, "1", "2"}, "usage: hookbay events show ID"},
		{"ShowNotANumber", []string{"events", "show", "--data", dir, "abc"}, `event ID "abc" is not a number`},
		{"ShowUnknownEvent", []string{"events", "show", "--data", dir, "999"}, "no event 999"},
		{"ReplayNoID", []string{"events", "replay", "--data", dir}, "usage: hookbay events replay ID"},
		{"ReplayNotANumber", []string{"events", "replay", "--data", dir, "1x"}, `event ID "1x" is not a number`},
		{"ReplayUnknownEvent", []string{"events", "replay", "--data", dir, "999"}, "no request 999"},
		{"ListUnknownFlag", []string{"events", "list", "--data", dir, "--bogus"}, "flag provided but not defined: -bogus"},
		{"ListMissingConfig", []string{"events", "list", "--config", filepath.Join(dir, "missing.yaml")}, "read config"},
		{"JobsNoCommand", []string{"jobs"}, "usage: hookbay jobs"},
		{"JobsUnknown", []string{"jobs", "purge"}, `unknown jobs command "purge"`},
		{"RetryNothing", []string{"jobs", "retry", "--data", dir}, "usage: hookbay jobs retry"},
		{"RetryDeadAndID", []string{"jobs", "retry", "--data", dir, "--dead", "5"}, "usage: hookbay jobs retry"},
		{"RetryNotANumber", []string{"jobs", "retry", "--data", dir, "x1"}, `job ID "x1" is not a number`},
		{"RetryBadSince", []string{"jobs", "retry", "--data", dir, "--dead", "--since", "soon"}, `--since "soon"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err=%v, want %q", err, tt.says)
			}
		})
	}
}

// README, "Running": "hookbay events show ID [--json]" and the --data and
// --config flags every events and jobs command takes: flags may follow the
// ID, as documented.
func TestCLI_FlagsAfterID(t *testing.T) {
	m := MustRunMain(t, nil)
	dir := m.Config.Server.DataDir
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"F"}`, urgency: "urgent", id: "flags-1"})
	id := fmt.Sprint(eventOf(t, m, "flags-1"))
	for _, args := range [][]string{
		{"events", "show", id, "--json", "--data", dir},
		{"events", "replay", id, "--json", "--data", dir},
		{"jobs", "retry", "1", "--data", dir},
	} {
		if out, err := runCLI(t, args...); err != nil {
			t.Errorf("hookbay %s: %v (%q)", strings.Join(args, " "), err, out)
		}
	}
}

// -h, --help and help on a subcommand group print its usage, not
// "unknown command".
func TestCLI_SubcommandHelp(t *testing.T) {
	for _, group := range []string{"events", "jobs", "faults"} {
		for _, h := range []string{"-h", "--help", "help"} {
			var out bytes.Buffer
			err := Run(context.Background(), []string{group, h}, &out, &out)
			if err == nil || !strings.HasPrefix(err.Error(), "usage: hookbay "+group) {
				t.Errorf("%s %s: %v, want its usage", group, h, err)
			}
		}
	}
}
