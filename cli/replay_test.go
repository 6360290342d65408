package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// Replaying a batch re-delivers each customer's own bytes, not the whole
// batch; a request that was refused is replayed only with --force.
func TestEventsReplay_BatchAndRefused(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"b": {
			Auth:      config.WebhookAuth{Headers: map[string]string{"X-Api-Key": "k"}},
			Batch:     &config.BatchConfig{Items: "/messages"},
			RequestID: config.RequestIDConfig{Header: "X-Request-ID", ItemID: "/id"},
			Action:    forwardTo(d.URL),
		}}
	})
	post := func(id, key, body string) int {
		req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/bloomreach/b", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", id)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	items := []string{`{"id":"1","phone":"a"}`, `{"id":"2","phone":"b"}`, `{"id":"3","phone":"c"}`}
	if s := post("batch-1", "k", `{"messages":[`+strings.Join(items, ",")+`]}`); s != 200 {
		t.Fatalf("batch: %d", s)
	}
	waitUntil(t, 5*time.Second, "3 deliveries", func() bool { return len(d.deliveries()) == 3 })
	ev := requests(t, m, hooks.RequestFilter{RequestID: "batch-1"})[0].ID
	cfg := writeConfigFor(t, m, d.URL)
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"events", "replay", "--config", cfg, fmt.Sprint(ev)}, &out, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	got := d.deliveries()
	if len(got) != 6 {
		t.Fatalf("deliveries after replay=%d, want 6 (each customer once more)", len(got))
	}
	for i, g := range got[3:] {
		if string(g.body) != items[i] {
			t.Fatalf("replayed delivery %d = %q, want the customer's bytes %q", i, g.body, items[i])
		}
	}
	// A refused request is not replayed without --force.
	post("refused", "wrong", `{"messages":[{"id":"9","phone":"z"}]}`)
	refused := requests(t, m, hooks.RequestFilter{RequestID: "refused"})[0].ID
	out.Reset()
	if err := Run(context.Background(), []string{"events", "replay", "--config", cfg, fmt.Sprint(refused)}, &out, &out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("replay of a 401: err=%v, want a refusal naming --force", err)
	}
	if err := Run(context.Background(), []string{"events", "replay", "--config", cfg, "--force", fmt.Sprint(refused)}, &out, &out); err != nil {
		t.Fatalf("replay --force: %v", err)
	}
}

func writeConfigFor(t *testing.T, m *Main, url string) string {
	return replayConfig(t, m, fmt.Sprintf(`bubblehouse: {authorization: "x"}
bloomreach:
  webhooks:
    b:
      auth: {headers: {X-Api-Key: k}}
      batch: {items: /messages}
      request_id: {header: X-Request-ID, item_id: /id}
      action: {forward: {url: %q}}
`, url))
}

// replayConfig writes a plain-HTTP config over m's data directory with the
// given sender blocks, and returns its path.
func replayConfig(t *testing.T, m *Main, senders string) string {
	t.Helper()
	path := t.TempDir() + "/hookbay.yaml"
	if err := writeFile(path, fmt.Sprintf("server: {data_dir: %q, tls: {mode: \"off\"}}\n", m.Config.Server.DataDir)+senders); err != nil {
		t.Fatal(err)
	}
	return path
}

// replay runs "hookbay events replay" for request id and returns what it
// printed.
func replay(t *testing.T, id int64, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := Run(context.Background(), append(append([]string{"events", "replay"}, args...), fmt.Sprint(id)), &out, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	return out.String()
}

// A replay runs the action as the queue does: SendEvent1's outcome failure
// is a failed attempt (Bubblehouse Hooks API, SendEvent1), left queued for a
// running hookbay to retry, not reported delivered.
func TestEventsReplay_SendEventFailure(t *testing.T) {
	d := newDownstream(t)
	d.set(func(d *downstream) { d.answer = `{"outcome":"sent"}` })
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["SendEvent1"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	if a := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"evt-r1"}`, urgency: "regular", id: "replay-ev"}); a.status != 202 {
		t.Fatalf("queued: %d %s", a.status, a.body)
	}
	waitUntil(t, 5*time.Second, "delivery", func() bool { return len(d.deliveries()) == 1 })
	d.set(func(d *downstream) { d.answer = `{"outcome":"failure"}` })
	path := replayConfig(t, m, fmt.Sprintf(`bubblehouse:
  authorization: "x"
  hooks: {SendEvent1: {action: {forward: {url: %q}}}}
`, d.URL))
	ev := requests(t, m, hooks.RequestFilter{RequestID: "replay-ev"})[0].ID
	var out bytes.Buffer
	err := Run(context.Background(), []string{"events", "replay", "--config", path, fmt.Sprint(ev)}, &out, &out)
	if !strings.Contains(out.String(), "failed: the action answered outcome failure") || len(d.deliveries()) != 2 {
		t.Fatalf("replay printed %q after %d deliveries, want a failed attempt naming outcome failure", out.String(), len(d.deliveries()))
	}
	if exitStatus(t, err) != 1 {
		t.Fatalf("replay: err=%v, want exit status 1 for a job that failed", err)
	}
}

// A replay reads an attempt as the queue does: an answer over the output
// cap after the work was done is a delivery, not a failure to retry.
func TestEventsReplay_OversizedAnswer(t *testing.T) {
	chatty := []string{"/bin/sh", "-c", "head -c 3000 /dev/zero | tr '\\0' x"}
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: &config.ActionConfig{Exec: &config.ExecConfig{Command: chatty, MaxOutputBytes: 1024}}}
	})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"X"}`, urgency: "urgent", id: "chatty-1"})
	id := eventOf(t, m, "chatty-1")
	jobOf(t, m, id, hooks.JobDone) // the worker's run already counted as delivered
	path := replayConfig(t, m, `bubblehouse:
  authorization: "x"
  hooks: {CreateDiscount4: {action: {exec: {command: ["/bin/sh", "-c", "head -c 3000 /dev/zero | tr '\\\\0' x"], max_output_bytes: 1024}}}}
`)
	if out := replay(t, id, "--config", path); !strings.Contains(out, "): ok") {
		t.Fatalf("replay printed %q, want the attempt ok", out)
	}
}

// A replay with no action configured for the request (no --config, or a
// hook on the store action) says that nothing was delivered, rather than
// report a delivery.
func TestEventsReplay_StoredOnly(t *testing.T) {
	m := MustRunMain(t, nil)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"S"}`, urgency: "urgent", id: "stored-1"})
	id := eventOf(t, m, "stored-1")
	if out := replay(t, id, "--data", m.Config.Server.DataDir); !strings.Contains(out, "stored only, nothing delivered") {
		t.Fatalf("replay printed %q, want it to say nothing was delivered", out)
	}
}

// A Go action that panics during a replay is recovered as the queue's
// workers recover it: a failed attempt on record, the job queued again,
// never left running.
func TestEventsReplay_PanickingAction(t *testing.T) {
	m := MustRunMain(t, nil)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"P"}`, urgency: "urgent", id: "panic-1"})
	id := eventOf(t, m, "panic-1")
	jobOf(t, m, id, hooks.JobDone)
	actions := hooks.Actions{}
	actions.Set(hooks.SenderBubblehouse, "CreateDiscount4", hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		panic("integrator bug")
	}))
	var out bytes.Buffer
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("the panic escaped the replay: %v", r)
			}
		}()
		p := &Program{Stdout: &out, Stderr: &out, Actions: actions}
		return p.Run(context.Background(), []string{"events", "replay", "--data", m.Config.Server.DataDir, fmt.Sprint(id)})
	}()
	if err != nil && strings.Contains(err.Error(), "escaped") {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "failed: ") || !strings.Contains(out.String(), "action panicked: integrator bug") {
		t.Fatalf("replay printed %q (err %v), want a failed attempt naming the panic", out.String(), err)
	}
	js := jobs(t, m, hooks.JobFilter{RequestRef: id})
	if len(js) != 2 {
		t.Fatalf("jobs of event %d: %d, want the first and the replay", id, len(js))
	}
	replayed := js[1]
	if replayed.State == hooks.JobRunning {
		t.Fatalf("replayed job %d left running after the panic", replayed.ID)
	}
	atts, ferr := m.DB.FindAttempts(context.Background(), replayed.ID)
	if ferr != nil || len(atts) == 0 || atts[0].Outcome != hooks.OutcomeFailed || !strings.Contains(atts[0].Error, "integrator bug") {
		t.Fatalf("attempts of the replayed job: %+v %v, want a failed one naming the panic", atts, ferr)
	}
}
