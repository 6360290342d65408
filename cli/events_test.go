package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

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
		if len(got.History) != 1 || got.History[0].Attempt != 1 || got.History[0].Outcome != string(hooks.OutcomeOK) {
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
	js := jobs(t, m, hooks.JobFilter{RequestRef: id})
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
		// The replay ran and its job failed: exit status 1, the result
		// printed all the same.
		d.set(func(d *downstream) { d.status, d.answer = 500, `{"error":"db down"}` })
		out, err := runCLI(t, "events", "replay", "--config", cfg, "--json", fmt.Sprint(id))
		if exitStatus(t, err) != 1 || !strings.Contains(err.Error(), "1 of 1 job(s) did not succeed") {
			t.Fatalf("err=%v, want exit status 1 saying the job failed", err)
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if res.OK || !strings.Contains(res.Error, "status 500") {
			t.Fatalf("result=%+v, want a failure with status 500", res)
		}
		// The job stays queued for the server to retry.
		js := jobs(t, m, hooks.JobFilter{RequestRef: id})
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

// Whatever bytes a request record holds, "events show --json" and "events
// list --json" print valid JSON (RFC 8259: UTF-8, within readers' nesting
// limits) from which every stored byte can be had back.
func TestEventsCommand_JSONWhateverTheBytes(t *testing.T) {
	dir := t.TempDir()
	db := sqlitetest.OpenPath(t, filepath.Join(dir, "hookbay.db"))
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for _, tt := range []struct {
		name           string
		body, response []byte
		field          string // where the body must come back
	}{
		{"InvalidUTF8InString", []byte("{\"magic\":\"\xff\xfe\"}"), []byte(`{"magic":"ok"}`), "body_base64"},
		{"InvalidUTF8Response", []byte(`{"magic":"x"}`), []byte("{\"magic\":\"\xc3\x28\"}"), "body"},
		{"Nested10000", []byte(deep), []byte(`{"error":"too deep"}`), "body_text"},
		// As deep as intake accepts: shown as JSON.
		{"NestedMax", []byte(strings.Repeat("[", hooks.MaxJSONDepth) + strings.Repeat("]", hooks.MaxJSONDepth)), []byte(`{}`), "body"},
		{"NotJSON", []byte("a=1&b=2"), []byte(`{}`), "body_text"},
		{"ControlBytes", []byte("\x1b[31mred\x00"), []byte(`{}`), "body_text"},
		{"JSON", []byte(`{"a":[1,{"b":null}]}`), []byte(`{}`), "body"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := &hooks.Request{Sender: hooks.SenderBubblehouse, Name: "Hello1", RequestID: "bytes-" + tt.name, Method: "POST",
				Path: "/bubblehouse/Hello1", Header: http.Header{"X-Odd": {"\xff"}}, Body: tt.body, Status: 400,
				Response: tt.response, ReceivedAt: time.Now()}
			if err := db.Record(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			out := mustCLI(t, "events", "show", "--data", dir, "--json", fmt.Sprint(req.ID))
			if !utf8.ValidString(out) {
				t.Fatalf("output is not UTF-8: %q", out)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("output is not JSON: %v\n%.300s", err, out)
			}
			var got []byte
			switch tt.field {
			case "body":
				got, _ = json.Marshal(v["body"])
				if !sameJSON(t, got, tt.body) {
					t.Fatalf("body=%s, want %s", got, tt.body)
				}
				got = tt.body
			case "body_text":
				s, _ := v["body_text"].(string)
				got = []byte(s)
			case "body_base64":
				s, _ := v["body_base64"].(string)
				var err error
				if got, err = base64.StdEncoding.DecodeString(s); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tt.body) {
				t.Fatalf("%s gives back %q, want the stored %q", tt.field, got, tt.body)
			}
			for _, other := range []string{"body", "body_text", "body_base64"} {
				if _, ok := v[other]; ok != (other == tt.field) {
					t.Errorf("%s present: %v, want only %s", other, ok, tt.field)
				}
			}
			if _, ok := v["response"]; ok && !utf8.Valid(tt.response) {
				t.Errorf("response printed as JSON, want it as response_base64")
			}
			// The text form quotes what is not plain text, so that no
			// control sequence reaches the terminal.
			if text := mustCLI(t, "events", "show", "--data", dir, fmt.Sprint(req.ID)); strings.ContainsAny(text, "\x1b\x00") {
				t.Errorf("text output carries control bytes: %q", text)
			}
		})
	}
	out := mustCLI(t, "events", "list", "--data", dir, "--json")
	var list []map[string]any
	if !utf8.ValidString(out) || json.Unmarshal([]byte(out), &list) != nil || len(list) != 7 {
		t.Fatalf("events list --json: %d events, UTF-8 %v:\n%.500s", len(list), utf8.ValidString(out), out)
	}
}
