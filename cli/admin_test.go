package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres/pgtest"
)

// TestMain keeps every server this package's tests start off the fixed
// admin port (config.DefaultAdminListen): their admin listeners take a
// free loopback port instead, so that tests neither collide with each
// other nor with a hookbay a developer keeps running.
func TestMain(m *testing.M) {
	adminListenOverride = "127.0.0.1:0"
	os.Exit(m.Run())
}

// adminGet reads the admin API of m, with the token when it is not "".
func adminGet(t *testing.T, m *Main, path, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, m.AdminURL()+"api/v1/"+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// sseReader collects a stream's events.
type sseReader struct {
	mu     sync.Mutex
	events []string // "kind data"
}

func (s *sseReader) find(kind, substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if strings.HasPrefix(e, kind+" ") && strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

// stream opens m's live stream until the test ends.
func stream(t *testing.T, m *Main) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.AdminURL()+"api/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &sseReader{}
	hello := make(chan struct{})
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var kind string
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				kind = k
			} else if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				if kind == "hello" {
					close(hello)
				}
				s.mu.Lock()
				s.events = append(s.events, kind+" "+d)
				s.mu.Unlock()
			}
		}
	}()
	select {
	case <-hello:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not open")
	}
	return s
}

// TestAdmin_Inspector runs hookbay with its admin listener on loopback
// (open, as with no token configured): what senders send shows in the API
// and on the live stream, fed by Main's request and attempt observers; a
// replay runs through the queue's attempt executor; a dead job retried
// from the API is delivered by the workers.
func TestAdmin_Inspector(t *testing.T) {
	d := newDownstream(t)
	d.status = http.StatusInternalServerError
	m := MustRunMain(t, func(c *config.Config) {
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL + "/discounts")}
		c.Queue.MaxAttempts = 1
	})
	if m.AdminAddr() == "" || !strings.HasPrefix(m.AdminURL(), "http://127.0.0.1:") {
		t.Fatalf("admin listener: %q", m.AdminURL())
	}
	live := stream(t, m)
	if a := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"X"}`, urgency: "urgent", id: "insp-1"}); a.status != http.StatusAccepted && a.status != http.StatusOK {
		t.Fatalf("hook: %d %s", a.status, a.body)
	}
	waitUntil(t, 5*time.Second, "the request on the stream", func() bool { return live.find("request", `"request_id":"insp-1"`) })
	waitUntil(t, 5*time.Second, "the job's death on the stream", func() bool { return live.find("job", `"state":"dead"`) })

	var page struct {
		Requests []struct {
			ID       int64
			Verdict  struct{ Text string }
			Delivery struct{ State string }
		}
	}
	if st := adminGet(t, m, "requests?request_id=insp-1", "", &page); st != http.StatusOK || len(page.Requests) != 1 {
		t.Fatalf("requests: %d %+v", st, page)
	}
	r := page.Requests[0]
	if r.Verdict.Text != "Bubblehouse: delivered (202)" && r.Verdict.Text != "Bubblehouse: delivered (200)" || r.Delivery.State != "dead" {
		t.Fatalf("record: got %+v, want delivered to Bubblehouse, dead downstream", r)
	}

	// Retry the dead job once the integrator is back: the workers deliver it.
	d.mu.Lock()
	d.status = http.StatusOK
	d.mu.Unlock()
	var jobs struct{ Jobs []struct{ ID int64 } }
	adminGet(t, m, "jobs?state=dead", "", &jobs)
	if len(jobs.Jobs) != 1 {
		t.Fatalf("dead jobs: %+v", jobs)
	}
	resp, err := http.Post(m.AdminURL()+fmt.Sprintf("api/v1/jobs/%d/retry", jobs.Jobs[0].ID), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
	waitUntil(t, 5*time.Second, "the retried job done", func() bool { return live.find("job", `"state":"done"`) })
	if n := len(d.deliveries()); n != 2 {
		t.Fatalf("deliveries: got %d, want 2 (the failed one and the retry)", n)
	}

	// Replay through the API: the configured action runs again, now.
	resp, err = http.Post(m.AdminURL()+fmt.Sprintf("api/v1/requests/%d/replay", r.ID), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		OK   bool
		Jobs []struct{ Outcome string }
	}
	json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if !rep.OK || len(rep.Jobs) != 1 || rep.Jobs[0].Outcome != string(hooks.OutcomeOK) {
		t.Fatalf("replay: %+v", rep)
	}
	if n := len(d.deliveries()); n != 3 {
		t.Fatalf("deliveries after the replay: got %d, want 3", n)
	}

	// An open stream does not hold shutdown up: it ends with the server.
	start := time.Now()
	stopMain(t, m)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Close with a stream open took %s", took)
	}
}

// TestAdmin_Token: off loopback the admin listener needs a token, at
// start-up and on every request; /metrics, mounted by HandleAdmin, sits
// behind it too.
func TestAdmin_Token(t *testing.T) {
	const token = "adm-0123456789abcdef"
	t.Run("RefusedWithoutToken", func(t *testing.T) {
		cfg := config.Config{}
		cfg.Server.Listen, cfg.Server.DataDir, cfg.Server.TLS.Mode = "127.0.0.1:0", t.TempDir(), "off"
		cfg.Bubblehouse.Authorization = testAuth
		cfg.Bubblehouse.Hooks = map[string]config.HookConfig{"CreateDiscount4": {}}
		cfg.Admin.Listen = "0.0.0.0:0"
		if err := cfg.Finish(); err == nil || !strings.Contains(err.Error(), "admin.token") {
			t.Fatalf("config: got %v, want admin.token required", err)
		}
		// Main refuses it too, should a config skip the checks.
		m := NewMain(cfg)
		m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		err := m.Run(context.Background())
		m.Close(context.Background())
		if err == nil || !strings.Contains(err.Error(), "admin.token") {
			t.Fatalf("Run: got %v, want admin.token required", err)
		}
	})
	t.Run("Required", func(t *testing.T) {
		cfg := config.Config{}
		cfg.Server.Listen, cfg.Server.DataDir, cfg.Server.TLS.Mode = "127.0.0.1:0", t.TempDir(), "off"
		cfg.Bubblehouse.Authorization = testAuth
		cfg.Bubblehouse.Hooks = map[string]config.HookConfig{"CreateDiscount4": {}}
		cfg.Admin.Listen, cfg.Admin.Token = "0.0.0.0:0", token
		if err := cfg.Finish(); err != nil {
			t.Fatal(err)
		}
		m := NewMain(cfg)
		m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		m.HandleAdmin("/metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") }))
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer m.Close(context.Background())
		if !strings.HasPrefix(m.AdminURL(), "http://localhost:") {
			t.Fatalf("URL of a listener on every interface: %q", m.AdminURL())
		}
		if st := adminGet(t, m, "requests", "", nil); st != http.StatusUnauthorized {
			t.Fatalf("without the token: %d, want 401", st)
		}
		if st := adminGet(t, m, "requests", token, nil); st != http.StatusOK {
			t.Fatalf("with the token: %d, want 200", st)
		}
		get := func(auth string) int {
			req, _ := http.NewRequest(http.MethodGet, m.AdminURL()+"metrics", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if get("") != http.StatusUnauthorized || get("Bearer "+token) != http.StatusOK {
			t.Fatal("/metrics is not behind the token")
		}
		defer func() {
			if recover() == nil {
				t.Error("HandleAdmin after Run did not panic")
			}
		}()
		m.HandleAdmin("/late", http.NotFoundHandler())
	})
	t.Run("Off", func(t *testing.T) {
		m := MustRunMain(t, func(c *config.Config) { c.Admin.Listen = "off" })
		if m.AdminAddr() != "" || m.AdminURL() != "" {
			t.Fatalf("admin.listen off: listening on %q", m.AdminAddr())
		}
	})
}

// TestAdmin_DevBanner: dev mode generates an admin token, keeps it with
// the other credentials, requires it, and prints the inspector's URL.
func TestAdmin_DevBanner(t *testing.T) {
	dir := t.TempDir()
	out, stop := startServe(t, "--http", "--listen", "127.0.0.1:0", "--data", dir)
	defer stop()
	m := regexp.MustCompile(`Inspector:\s+(http://127\.0\.0\.1:\d+/) \(admin token (hba_\S+)\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("banner lacks the inspector:\n%s", out)
	}
	if !strings.Contains(out.String(), m[1]+"login#token="+m[2]) {
		t.Fatalf("banner lacks the login link:\n%s", out)
	}
	creds := readFile(t, dir+"/credentials.json")
	if !strings.Contains(creds, `"admin_token": "`+m[2]+`"`) {
		t.Fatalf("credentials.json lacks the admin token:\n%s", creds)
	}
	for token, want := range map[string]int{"": http.StatusUnauthorized, m[2]: http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, m[1]+"api/v1/requests", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: got %d, want %d", token, resp.StatusCode, want)
		}
	}
}

// TestEventsList_Follow: "events list --follow" prints the recent records,
// then each new one as it is recorded, with what its answer means to the
// sender, until its context ends.
func TestEventsList_Follow(t *testing.T) {
	old := followInterval
	followInterval = 20 * time.Millisecond
	defer func() { followInterval = old }()
	m := MustRunMain(t, nil)
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"A"}`, urgency: "urgent", id: "fol-1"})
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"events", "list", "--follow", "--sender", "bubblehouse", "--data", m.Config.Server.DataDir}, out, out)
	}()
	waitUntil(t, 5*time.Second, "the recent record", func() bool { return strings.Contains(out.String(), "fol-1") })
	for i := 2; i <= 4; i++ {
		send(t, m, call{hook: "CreateDiscount4", body: `{"code":"A"}`, urgency: "urgent", id: fmt.Sprintf("fol-%d", i)})
	}
	send(t, m, call{hook: "CreateDiscount4", body: `{}`, auth: "Bearer wrong", id: "fol-5"})
	waitUntil(t, 5*time.Second, "the new records", func() bool { return strings.Contains(out.String(), "fol-5") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its context")
	}
	text := out.String()
	last := -1
	for i := 1; i <= 5; i++ {
		at := strings.Index(text, fmt.Sprintf("fol-%d ", i))
		if at < last {
			t.Fatalf("fol-%d out of order (oldest first):\n%s", i, text)
		}
		last = at
	}
	if strings.Count(text, "fol-4 ") != 1 {
		t.Fatalf("a record printed twice:\n%s", text)
	}
	if !strings.Contains(text, "Bubblehouse retries (401)") || !strings.Contains(text, "Bubblehouse: delivered (") {
		t.Fatalf("follow lacks the verdicts:\n%s", text)
	}

	// With --json: one object a line.
	out = &syncBuffer{}
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		done <- Run(ctx, []string{"events", "list", "--follow", "--json", "--limit", "2", "--data", m.Config.Server.DataDir}, out, out)
	}()
	waitUntil(t, 5*time.Second, "two JSON lines", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	cancel()
	<-done
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var v struct {
			RequestID string        `json:"request_id"`
			Verdict   hooks.Verdict `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Verdict.Kind == "" {
			t.Fatalf("line %q: %v", line, err)
		}
	}
}

// TestAdmin_StreamAcrossReplicas: with PostgreSQL, the inspector of one
// replica shows the requests every replica records, fed by the store's
// notifications, each once.
func TestAdmin_StreamAcrossReplicas(t *testing.T) {
	// Two replicas on one PostgreSQL: A's stream shows both replicas'
	// requests and the jobs either replica ran, once each, and a retry
	// asked of B's API.
	schema := pgtest.New(t)
	d := newDownstream(t)
	d.status = http.StatusInternalServerError
	pg := func(c *config.Config) {
		c.Store.Postgres = &config.PostgresConfig{URL: schema.URL()}
		c.Bubblehouse.Hooks["CreateDiscount4"] = config.HookConfig{Action: forwardTo(d.URL + "/discounts")}
		c.Queue.MaxAttempts = 1
	}
	a, b := MustRunMain(t, pg), MustRunMain(t, pg)
	live := stream(t, a)
	send(t, b, call{hook: "CreateDiscount4", body: `{"code":"B"}`, urgency: "urgent", id: "replica-b"})
	send(t, a, call{hook: "CreateDiscount4", body: `{"code":"A"}`, urgency: "urgent", id: "replica-a"})
	waitUntil(t, 10*time.Second, "both replicas' requests on A's stream", func() bool {
		return live.find("request", `"request_id":"replica-b"`) && live.find("request", `"request_id":"replica-a"`)
	})
	var page struct{ Requests []struct{ ID int64 } }
	if st := adminGet(t, b, "requests?request_id=replica-b", "", &page); st != http.StatusOK || len(page.Requests) != 1 {
		t.Fatalf("B's request: %d %+v", st, page)
	}
	ref := fmt.Sprintf(`"event":%d,`, page.Requests[0].ID)
	waitUntil(t, 10*time.Second, "B's request's job dead on A's stream", func() bool {
		return live.find("job", ref) && live.find("job", `"state":"dead"`)
	})
	time.Sleep(200 * time.Millisecond)
	count := func(kind string, substr ...string) int {
		live.mu.Lock()
		defer live.mu.Unlock()
		n := 0
	events:
		for _, e := range live.events {
			if !strings.HasPrefix(e, kind+" ") {
				continue
			}
			for _, s := range substr {
				if !strings.Contains(e, s) {
					continue events
				}
			}
			n++
		}
		return n
	}
	if requests, jobs := count("request", `"request_id":"replica-a"`), count("job", ref); requests != 1 || jobs != 1 {
		t.Fatalf("on A's stream: A's own request %d times and B's request's job %d times, want once each", requests, jobs)
	}
	resp, err := http.Post(b.AdminURL()+"api/v1/jobs/retry", "application/json", strings.NewReader(`{"dead":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry all dead on B: %d", resp.StatusCode)
	}
	waitUntil(t, 10*time.Second, "B's retry on A's stream", func() bool { return count("jobs") > 0 })
}

// A dead urgent job retried from the admin API is claimed ahead of a line
// of regular jobs, as a new urgent job is, instead of waiting for half the
// line to drain: the API wakes the queue for jobs of any priority.
func TestAdmin_RetryOvertakesLine(t *testing.T) {
	var mu sync.Mutex
	var order []string
	run := func(what string) {
		mu.Lock()
		order = append(order, what)
		mu.Unlock()
	}
	var failing sync.Once
	failed := make(chan struct{})
	actions := hooks.Actions{}
	actions.Set(hooks.SenderBubblehouse, "CreateDiscount4", hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		run("urgent")
		first := false
		failing.Do(func() { first = true; close(failed) })
		if first {
			return nil, fmt.Errorf("downstream down")
		}
		return nil, nil
	}))
	actions.Set(hooks.SenderBubblehouse, "SendEvent1", hooks.ActionFunc(func(context.Context, *hooks.Job) ([]byte, error) {
		run("regular")
		time.Sleep(50 * time.Millisecond)
		return nil, nil
	}))
	m := mustRunMainActions(t, actions, func(c *config.Config) {
		c.Queue.Workers, c.Queue.Prefetch, c.Queue.MaxAttempts = 1, 16, 1
	})
	send(t, m, call{hook: "CreateDiscount4", body: `{"code":"R"}`, urgency: "urgent", id: "retry-urgent"})
	<-failed
	dead := jobOf(t, m, eventOf(t, m, "retry-urgent"), hooks.JobDead)
	for i := range 30 {
		send(t, m, call{hook: "SendEvent1", body: fmt.Sprintf(`{"bhid":"retry-ev-%d"}`, i), urgency: "regular", id: fmt.Sprintf("retry-regular-%d", i)})
	}
	waitUntil(t, 5*time.Second, "the line to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= 3
	})
	resp, err := http.Post(m.AdminURL()+fmt.Sprintf("api/v1/jobs/%d/retry", dead.ID), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry: %s", resp.Status)
	}
	mu.Lock()
	before := len(order)
	mu.Unlock()
	jobOf(t, m, dead.RequestRef, hooks.JobDone)
	mu.Lock()
	defer mu.Unlock()
	// The regular delivery running at the retry finishes first, and one
	// more is allowed for a slow machine; behind the line it is eight.
	if after := order[before:]; len(after) == 0 || slices.Index(after, "urgent") > 2 {
		t.Fatalf("the retried urgent job ran after %d regular deliveries: %v", slices.Index(after, "urgent"), after)
	}
}
