package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// downstream is the integrator's code as a real HTTP server: it records
// what it receives and answers what the test says.
type downstream struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivered
	status   int
	answer   string
	gate     chan struct{} // when set, each delivery waits for a token
	statuses []int         // per-call statuses, then status
}

type delivered struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newDownstream(t *testing.T) *downstream {
	d := &downstream{status: 200, answer: `{"ok":true}`}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		gate := d.gate
		d.mu.Unlock()
		if gate != nil {
			<-gate
		}
		d.mu.Lock()
		d.got = append(d.got, delivered{r.Header.Clone(), body, time.Now()})
		status := d.status
		if len(d.statuses) > 0 {
			status, d.statuses = d.statuses[0], d.statuses[1:]
		}
		answer := d.answer
		d.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *downstream) deliveries() []delivered {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]delivered(nil), d.got...)
}

func (d *downstream) set(f func(d *downstream)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func forwardTo(url string, pass ...string) *config.ActionConfig {
	return &config.ActionConfig{Forward: &config.ForwardConfig{URL: url, Timeout: config.Duration(2 * time.Second), PassHeaders: pass}}
}

// A queued hook reaches the integrator's code byte for byte, with the
// metadata it needs to de-duplicate, exactly once when nothing fails.
func TestDelivery_Forward(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL+"/discounts", "Content-Type", "X-Custom")}
	})
	body := "{ \"code\" : \"A\\/B\",\n  \"title\":\"10%\" }"
	a := send(t, m, call{hook: "CreateDiscount4", body: body, urgency: "urgent", id: "fwd-1",
		header: map[string]string{"X-Custom": "kept", "X-Other": "dropped"}})
	if a.status != 202 {
		t.Fatalf("status=%d %s", a.status, a.body)
	}
	waitUntil(t, 5*time.Second, "delivery", func() bool { return len(d.deliveries()) == 1 })
	got := d.deliveries()[0]
	if string(got.body) != body {
		t.Fatalf("body=%q, want %q byte for byte", got.body, body)
	}
	for k, want := range map[string]string{
		"X-Hookbay-Sender": "bubblehouse", "X-Hookbay-Name": "CreateDiscount4", "X-Hookbay-Urgency": "urgent",
		"X-Hookbay-Attempt": "1", "X-Request-Id": "fwd-1", "Idempotency-Key": "fwd-1", "X-Custom": "kept",
		"Content-Type": "application/json", "X-Other": "", "Authorization": "",
	} {
		if got := got.header.Get(k); got != want {
			t.Errorf("header %s=%q, want %q", k, got, want)
		}
	}
	waitUntil(t, 5*time.Second, "job done", func() bool { return len(jobs(t, m, hooks.JobFilter{State: hooks.JobDone})) == 1 })
	j := jobs(t, m, hooks.JobFilter{State: hooks.JobDone})[0]
	atts, err := m.DB.FindAttempts(context.Background(), j.ID)
	if err != nil || len(atts) != 1 || atts[0].Outcome != "ok" {
		t.Fatalf("attempts=%+v %v, want one ok", atts, err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(d.deliveries()); n != 1 {
		t.Fatalf("deliveries=%d, want exactly 1", n)
	}
}

// bubblehouse-hooks-api.txt: "arrange for urgent hooks to take priority".
// With one worker busy, a backlog of regular hooks and then urgent ones:
// every urgent one is delivered before any waiting regular one.
func TestDelivery_UrgentFirst(t *testing.T) {
	d := newDownstream(t)
	gate := make(chan struct{})
	d.set(func(d *downstream) { d.gate = gate })
	m := MustRunMain(t, func(c *config.Config) {
		c.Queue.Workers = 1
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"first"}`, urgency: "regular", id: "blocker"})
	// The one worker is now held by "blocker"; build the backlog.
	waitUntil(t, 5*time.Second, "worker busy", func() bool { return len(jobs(t, m, hooks.JobFilter{State: hooks.JobRunning})) == 1 })
	for i := range 5 {
		send(t, m, call{hook: "CreateDiscount4", body: fmt.Sprintf(`{"code":"r%d"}`, i), urgency: "regular", id: fmt.Sprintf("reg-%d", i)})
	}
	for i := range 5 {
		send(t, m, call{hook: "CreateDiscount4", body: fmt.Sprintf(`{"code":"u%d"}`, i), urgency: "urgent", id: fmt.Sprintf("urg-%d", i)})
	}
	close(gate)
	waitUntil(t, 10*time.Second, "11 deliveries", func() bool { return len(d.deliveries()) == 11 })
	var order []string
	for _, g := range d.deliveries()[1:] {
		order = append(order, g.header.Get("X-Hookbay-Urgency"))
	}
	if got, want := strings.Join(order, ","), "urgent,urgent,urgent,urgent,urgent,regular,regular,regular,regular,regular"; got != want {
		t.Fatalf("order after the blocker: %s\nwant %s", got, want)
	}
}

// Failures are retried with exponential backoff until max_attempts, then
// the job is dead, never deleted; "jobs retry" brings it back.
func TestDelivery_RetriesAndDead(t *testing.T) {
	d := newDownstream(t)
	d.set(func(d *downstream) { d.status, d.answer = 500, `{"error":"db down"}` })
	m := MustRunMain(t, func(c *config.Config) {
		c.Queue.MaxAttempts = 4
		c.Queue.Backoff = config.BackoffConfig{Initial: config.Duration(50 * time.Millisecond), Max: config.Duration(150 * time.Millisecond)}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"X"}`, urgency: "urgent", id: "retry-1"})
	waitUntil(t, 10*time.Second, "job dead", func() bool { return len(jobs(t, m, hooks.JobFilter{State: hooks.JobDead})) == 1 })
	j := jobs(t, m, hooks.JobFilter{State: hooks.JobDead})[0]
	if j.Attempts != 4 || !strings.Contains(j.LastError, "status 500") {
		t.Fatalf("dead job attempts=%d last_error=%q", j.Attempts, j.LastError)
	}
	got := d.deliveries()
	if len(got) != 4 {
		t.Fatalf("deliveries=%d, want 4", len(got))
	}
	// The delays double from backoff.initial and stop at backoff.max
	// (±10% jitter, plus the time to claim and deliver).
	for i, want := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond} {
		gap := got[i+1].at.Sub(got[i].at)
		if gap < want*9/10 || gap > want*11/10+100*time.Millisecond {
			t.Errorf("delay before attempt %d = %s, want about %s", i+2, gap, want)
		}
		if a := got[i+1].header.Get("X-Hookbay-Attempt"); a != fmt.Sprint(i+2) {
			t.Errorf("X-Hookbay-Attempt=%s, want %d", a, i+2)
		}
	}
	atts, _ := m.DB.FindAttempts(context.Background(), j.ID)
	var outcomes []string
	for _, a := range atts {
		outcomes = append(outcomes, string(a.Outcome))
	}
	if got := strings.Join(outcomes, ","); got != "failed,failed,failed,dead" {
		t.Fatalf("attempt outcomes=%s", got)
	}

	// Retry from dead, once the downstream is back.
	d.set(func(d *downstream) { d.status, d.answer = 200, `{}` })
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"jobs", "retry", "--data", m.Config.Server.DataDir, fmt.Sprint(j.ID)}, &out, &out); err != nil {
		t.Fatalf("jobs retry: %v %s", err, out.String())
	}
	m.Queue.Notify()
	waitUntil(t, 5*time.Second, "retried job done", func() bool { return len(jobs(t, m, hooks.JobFilter{State: hooks.JobDone})) == 1 })
}

// A queued SendEvent1 was answered "sent" when it was queued; the
// integrator's outcome failure is a temporary failure
// (bubblehouse-hooks-catalog.md), so the job is retried until an outcome
// settles it.
func TestDelivery_QueuedOutcomeFailure(t *testing.T) {
	d := newDownstream(t)
	d.set(func(d *downstream) { d.answer = `{"outcome":"failure"}` })
	m := MustRunMain(t, func(c *config.Config) {
		c.Queue.Backoff = config.BackoffConfig{Initial: config.Duration(50 * time.Millisecond), Max: config.Duration(100 * time.Millisecond)}
		c.Bubblehouse.Hooks["SendEvent1"] = config.HookConfig{Action: forwardTo(d.URL)}
	})
	if a := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"evt-q1"}`, urgency: "regular", id: "queued-ev"}); a.status != 202 {
		t.Fatalf("queued: %d %s", a.status, a.body)
	}
	waitUntil(t, 5*time.Second, "two deliveries", func() bool { return len(d.deliveries()) >= 2 })
	d.set(func(d *downstream) { d.answer = `{"outcome":"sent"}` })
	waitUntil(t, 5*time.Second, "job done", func() bool { return len(jobs(t, m, hooks.JobFilter{State: hooks.JobDone})) == 1 })
	j := jobs(t, m, hooks.JobFilter{State: hooks.JobDone})[0]
	atts, err := m.DB.FindAttempts(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) < 3 || atts[0].Outcome != "failed" || !strings.Contains(atts[0].Error, "outcome failure") || atts[len(atts)-1].Outcome != "ok" {
		t.Fatalf("attempts %+v, want failed ones naming outcome failure, then ok", atts)
	}
}

// Inline hooks answer with the action's output; a failure, a timeout or an
// output of the wrong shape is answered 503 (Bubblehouse retries), never a
// fake success, and the retry executes again.
func TestDelivery_Inline(t *testing.T) {
	d := newDownstream(t)
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["DeliverCustomReward1"] = config.HookConfig{Action: forwardTo(d.URL)}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL)}
		c.Bubblehouse.Hooks["SendEvent1"] = config.HookConfig{Action: forwardTo(d.URL)}
		slow := forwardTo(d.URL)
		slow.Forward.Timeout = config.Duration(300 * time.Millisecond)
		c.Bubblehouse.Hooks["PrivatePromo2"] = config.HookConfig{Inline: true, Action: slow}
	})
	reward := `{"reward_identifier":"mug","reward_title":"Mug","unlock_time":"2026-11-23T10:00:00Z"}`
	for _, tt := range []struct {
		name, hook, urgency, answer string
		status                      int
		want                        int
		wantBody                    string
	}{
		{"RewardDelivered", "DeliverCustomReward1", "regular", `{"delivered":true,"message":"on its way"}`, 200, 200, `{"delivered":true,"message":"on its way"}`},
		{"RewardNotDelivered", "DeliverCustomReward1", "urgent", `{"delivered":false}`, 200, 200, `{"delivered":false}`},
		{"RewardDownstreamFails", "DeliverCustomReward1", "regular", `oops`, 500, 503, ""},
		{"RewardWrongShape", "DeliverCustomReward1", "regular", `{"ok":true}`, 200, 503, ""},
		{"RewardNotJSON", "DeliverCustomReward1", "regular", `yes`, 200, 503, ""},
		{"RealtimeDiscount", "CreateDiscount4", "real-time", `{"created":"C-9"}`, 200, 200, `{"created":"C-9"}`},
		{"RealtimeDiscountEmpty", "CreateDiscount4", "real-time", ``, 204, 200, `{"ok":true,"code":"C-9"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d.set(func(d *downstream) { d.status, d.answer = tt.status, tt.answer })
			body := reward
			if tt.hook == "CreateDiscount4" {
				body = `{"code":"C-9","title":"t"}`
			}
			a := send(t, m, call{hook: tt.hook, body: body, urgency: tt.urgency, id: "inline-" + tt.name})
			if a.status != tt.want || (tt.wantBody != "" && string(a.body) != tt.wantBody) {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.want, tt.wantBody)
			}
			a.json(t)
		})
	}
	// After a 503 the same request ID executes again and can succeed.
	d.set(func(d *downstream) { d.status, d.answer = 200, `{"delivered":true}` })
	a := send(t, m, call{hook: "DeliverCustomReward1", body: reward, urgency: "regular", id: "inline-RewardDownstreamFails"})
	if a.status != 200 || string(a.body) != `{"delivered":true}` {
		t.Fatalf("retry after failure: %d %s", a.status, a.body)
	}
	// SendEvent1's outcome failure is a temporary failure that Bubblehouse
	// retries (bubblehouse-hooks-catalog.md): it is answered as it is, but
	// it settles neither the request ID nor the bhid, so each retry runs
	// the action again until an outcome settles it.
	d.set(func(d *downstream) { d.status, d.answer = 200, `{"outcome":"failure"}` })
	event := `{"bhid":"evt-fail-1","type":"points"}`
	for i, id := range []string{"inline-ev-1", "inline-ev-1", "inline-ev-2"} {
		a := send(t, m, call{hook: "SendEvent1", body: event, urgency: "real-time", id: id})
		if a.status != 200 || string(a.body) != `{"outcome":"failure"}` {
			t.Fatalf("attempt %d: %d %s, want 200 failure", i+1, a.status, a.body)
		}
	}
	calls := func() int {
		n := 0
		for _, g := range d.deliveries() {
			if bytes.Equal(g.body, []byte(event)) {
				n++
			}
		}
		return n
	}
	if n := calls(); n != 3 {
		t.Fatalf("action ran %d times for 3 unsettled attempts, want 3", n)
	}
	d.set(func(d *downstream) { d.answer = `{"outcome":"sent"}` })
	for i, id := range []string{"inline-ev-2", "inline-ev-2", "inline-ev-3"} {
		a := send(t, m, call{hook: "SendEvent1", body: event, urgency: "real-time", id: id})
		if a.status != 200 || string(a.body) != `{"outcome":"sent"}` {
			t.Fatalf("after success, attempt %d: %d %s, want the settled sent", i+1, a.status, a.body)
		}
	}
	if n := calls(); n != 4 {
		t.Fatalf("action ran %d times, want 4: once more, then settled by request ID and bhid", n)
	}
	recs := requests(t, m, hooks.RequestFilter{RequestID: "inline-ev-1"})
	if len(recs) != 2 || recs[0].Status != 200 || !strings.Contains(strings.Join(recs[0].Notes, ";"), "not settled") {
		t.Fatalf("records of inline-ev-1: %+v, want 2 answered 200 with a note", recs)
	}
	// A slow action is cut off inside Bubblehouse's limit and answered 503.
	gate := make(chan struct{})
	d.set(func(d *downstream) { d.gate = gate })
	defer close(gate)
	start := time.Now()
	a = send(t, m, call{hook: "PrivatePromo2", body: `{"promo":"S"}`, urgency: "regular", id: "inline-slow"})
	if a.status != 503 || time.Since(start) > 3*time.Second {
		t.Fatalf("slow inline action: %d after %s", a.status, time.Since(start))
	}
}

// post sends one urgent CreateDiscount4 and reports whether it was
// acknowledged with a 2xx.
func (p *hookbayProcess) post(client *http.Client, id string) bool {
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/bubblehouse/CreateDiscount4", strings.NewReader(`{"code":"`+id+`"}`))
	req.Header.Set("Authorization", "Bearer crash-test")
	req.Header.Set("X-BH-Urgency", "urgent")
	req.Header.Set("X-Request-ID", id)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// The delivery promise across crashes: every hook answered 2xx reaches the
// integrator's code at least once even when hookbay is killed with SIGKILL
// mid-stream and restarted; without a crash, each arrives exactly once.
// The kill comes only once hooks have been acknowledged and some of them
// are still undelivered, so that the restart has something to prove.
func TestDelivery_SIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	var mu sync.Mutex
	count := map[string]int{}
	delay := 5 * time.Millisecond // jobs are in flight when the kill comes
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		d := delay
		mu.Unlock()
		time.Sleep(d)
		mu.Lock()
		count[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		io.WriteString(w, `{}`)
	}))
	defer down.Close()
	delivered := func(id string) int { mu.Lock(); defer mu.Unlock(); return count[id] }

	dir := t.TempDir()
	bin := buildBinary(t)
	cfgPath := filepath.Join(dir, "hookbay.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
server: {listen: "127.0.0.1:0", data_dir: %q, tls: {mode: "off"}}
queue: {workers: 4, lease: 2s}
bubblehouse:
  authorization: "Bearer crash-test"
  hooks:
    CreateDiscount4:
      action: {forward: {url: %q, timeout: 1s}}
`, filepath.Join(dir, "data"), down.URL)), 0o600)
	client := &http.Client{Timeout: 5 * time.Second}

	// No crash: 40 hooks, each delivered exactly once.
	p := startBinary(t, bin, "serve", "--config", cfgPath)
	for i := range 40 {
		if id := fmt.Sprintf("calm-%d", i); !p.post(client, id) {
			t.Fatalf("%s not acknowledged", id)
		}
	}
	waitUntil(t, 10*time.Second, "40 deliveries", func() bool {
		for i := range 40 {
			if delivered(fmt.Sprintf("calm-%d", i)) == 0 {
				return false
			}
		}
		return true
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
	for i := range 40 {
		if n := delivered(fmt.Sprintf("calm-%d", i)); n != 1 {
			t.Fatalf("calm-%d delivered %d times without a crash, want 1", i, n)
		}
	}

	// A crash: SIGKILL while 8 clients send, then a restart. Deliveries
	// are slower than acknowledgements, so a backlog builds up.
	mu.Lock()
	delay = 50 * time.Millisecond
	mu.Unlock()
	p = startBinary(t, bin, "serve", "--config", cfgPath)
	var acked []string
	var amu sync.Mutex
	ackedNow := func() []string { amu.Lock(); defer amu.Unlock(); return append([]string(nil), acked...) }
	undelivered := func(ids []string) int {
		n := 0
		for _, id := range ids {
			if delivered(id) == 0 {
				n++
			}
		}
		return n
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d", w, i)
				if !p.post(client, id) {
					return
				}
				amu.Lock()
				acked = append(acked, id)
				amu.Unlock()
			}
		}()
	}
	waitUntil(t, 10*time.Second, "acknowledged hooks with some not yet delivered", func() bool {
		ids := ackedNow()
		return len(ids) >= 40 && undelivered(ids) >= 20
	})
	p.cmd.Process.Kill()
	p.cmd.Wait()
	close(stop)
	wg.Wait()
	left := undelivered(acked)
	t.Logf("%d acknowledged before SIGKILL, %d not yet delivered", len(acked), left)
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged before the kill: the test proves nothing")
	}
	if left == 0 {
		t.Fatal("nothing acknowledged was left to deliver at the kill: the test proves nothing")
	}
	mu.Lock()
	delay = 0
	mu.Unlock()
	startBinary(t, bin, "serve", "--config", cfgPath)
	waitUntil(t, 20*time.Second, "every acknowledged hook delivered after the restart", func() bool {
		return undelivered(acked) == 0
	})
}

// An exec command inherits hookbay's environment but not the variables the
// config's secret keys refer to (authorization, secrets, passwords, …).
func TestDelivery_ExecHidesConfigSecrets(t *testing.T) {
	t.Setenv("HOOKBAY_TEST_BH_AUTH", "Bearer s3cret-from-env")
	t.Setenv("HOOKBAY_TEST_OTHER", "visible")
	t.Setenv("HOOKBAY_TEST_DIR", t.TempDir())
	cfg, err := config.Parse([]byte(`
server: {tls: {mode: off}, data_dir: "${HOOKBAY_TEST_DIR}/data"}
bubblehouse:
  authorization: ${HOOKBAY_TEST_BH_AUTH}
  hooks:
    CreateDiscount4: {action: {exec: {command: [/usr/bin/env]}}}
`), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cfg.Dispatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	j := &hooks.Job{Sender: hooks.SenderBubblehouse, Name: "CreateDiscount4", RequestID: "env-1", Body: []byte(`{}`)}
	out, err := d.For(j).Run(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	env := string(out)
	if strings.Contains(env, "s3cret-from-env") || strings.Contains(env, "HOOKBAY_TEST_BH_AUTH") {
		t.Fatalf("the command saw a secret the config refers to:\n%s", env)
	}
	// A variable the config uses for something else (a path) stays.
	for _, want := range []string{"HOOKBAY_TEST_OTHER=visible", "HOOKBAY_TEST_DIR=", "HOOKBAY_REQUEST_ID=env-1", "PATH="} {
		if !strings.Contains(env, want) {
			t.Fatalf("environment lacks %s:\n%s", want, env)
		}
	}
}
