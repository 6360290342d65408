package cli

// The log, end to end: JSON lines that parse, one per request with what
// an operator needs, background failures with the IDs that events show and
// jobs retry take, never a secret; text in dev mode; --log-format,
// --log-level and log.requests.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// logLines decodes a JSON log: every line must be one JSON object.
func logLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		lines = append(lines, m)
	}
	return lines
}

// findLine returns the first line whose fields have these values.
func findLine(lines []map[string]any, want map[string]any) map[string]any {
	for _, l := range lines {
		ok := true
		for k, v := range want {
			if l[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return l
		}
	}
	return nil
}

func TestLog_JSON(t *testing.T) {
	const adminToken = "admin-token-for-the-log-test-0123"
	d := newDownstream(t)
	d.set(func(d *downstream) { d.status = 500 })
	out := &syncBuffer{}
	m := runObserved(t, nil, func(c *config.Config) {
		c.Queue.MaxAttempts = 1
		c.Admin.Token = adminToken
		c.Bubblehouse.Hooks["AuditLog3"] = config.HookConfig{Action: forwardTo(d.URL)}
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sms": {Auth: brBasic(), RequestID: config.RequestIDConfig{Header: "X-Request-ID"}}}
	}, func(m *Main) { m.Logger = NewLogger(out, config.LogConfig{Format: "json", Level: "info"}) })

	send(t, m, call{hook: "AuditLog3", body: `{"secret_field":"body-must-not-be-logged"}`, id: "bh-log-1"})
	send(t, m, call{hook: "CreateDiscount4", body: `{}`, id: "bh-log-2", auth: "Bearer client-sent-wrong-token"})
	sendSvix(t, m, "bloom", signed{id: "msg_log_1", body: `{"type":"user.created"}`})
	brSend(t, m, brReq{name: "sms", id: "br-log-1", body: `{"phone":"+15550100"}`})
	brSend(t, m, brReq{name: "sms", id: "br-log-2", body: `{}`, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(brUser+":not-"+brPass))})
	waitUntil(t, 10*time.Second, "the dead job's log line", func() bool { return strings.Contains(out.String(), "the job is dead") })

	lines := logLines(t, out.String())
	record := func(sender hooks.Sender, id string) int64 {
		recs := requests(t, m, hooks.RequestFilter{Sender: sender, RequestID: id})
		if len(recs) != 1 {
			t.Fatalf("%d records of %s", len(recs), id)
		}
		return recs[0].ID
	}
	for _, tt := range []struct {
		sender hooks.Sender
		id     string
		want   map[string]any
	}{
		{hooks.SenderBubblehouse, "bh-log-1", map[string]any{"level": "INFO", "name": "AuditLog3", "status": 202.0, "verdict": "delivered", "urgency": "regular"}},
		{hooks.SenderBubblehouse, "bh-log-2", map[string]any{"level": "INFO", "name": "CreateDiscount4", "status": 401.0, "verdict": "retry", "reason": "unauthorized"}},
		// Svix's message ID (svix-id) is the request ID it is found by.
		{hooks.SenderSvix, "msg_log_1", map[string]any{"level": "INFO", "name": "bloom", "status": 200.0, "verdict": "delivered", "verdict_text": "Svix: delivered"}},
		{hooks.SenderBloomreach, "br-log-1", map[string]any{"level": "INFO", "name": "sms", "status": 200.0, "verdict": "delivered"}},
		{hooks.SenderBloomreach, "br-log-2", map[string]any{"level": "INFO", "name": "sms", "status": 401.0, "verdict": "failed", "reason": "unauthorized"}},
	} {
		l := findLine(lines, map[string]any{"msg": "request", "request_id": tt.id})
		if l == nil {
			t.Errorf("no request line with request_id %q:\n%s", tt.id, out)
			continue
		}
		tt.want["sender"] = string(tt.sender)
		tt.want["event"] = float64(record(tt.sender, tt.id))
		for k, v := range tt.want {
			if l[k] != v {
				t.Errorf("%s: %s=%v, want %v", tt.id, k, l[k], v)
			}
		}
		if ms, ok := l["latency_ms"].(float64); !ok || ms <= 0 {
			t.Errorf("%s: latency_ms=%v", tt.id, l["latency_ms"])
		}
	}

	// The dead job: its job, event and attempt, for jobs retry and events show.
	dead := findLine(lines, map[string]any{"level": "ERROR", "name": "AuditLog3"})
	if dead == nil {
		t.Fatalf("no ERROR line for the dead job:\n%s", out)
	}
	js := jobs(t, m, hooks.JobFilter{State: "dead"})
	if len(js) != 1 {
		t.Fatalf("%d dead jobs", len(js))
	}
	if dead["job"] != float64(js[0].ID) || dead["event"] != float64(record(hooks.SenderBubblehouse, "bh-log-1")) || dead["attempt"] != 1.0 {
		t.Errorf("dead job logged as job=%v event=%v attempt=%v, want %d, %d, 1", dead["job"], dead["event"], dead["attempt"],
			js[0].ID, record(hooks.SenderBubblehouse, "bh-log-1"))
	}

	// No configured secret, no credential a client sent, no body.
	basic := base64.StdEncoding.EncodeToString([]byte(brUser + ":" + brPass))
	for _, secret := range []string{strings.TrimPrefix(testAuth, "Bearer "), testJWTSecret, svixSecret, strings.TrimPrefix(svixSecret, "whsec_"),
		brPass, basic, adminToken, "client-sent-wrong-token", "not-" + brPass, "body-must-not-be-logged", "+15550100"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the log carries %q:\n%s", secret, out)
		}
	}
}

// --log-format and --log-level override the config; log.requests: false
// leaves accepted requests to DEBUG.
func TestServe_LogFlags(t *testing.T) {
	yaml := "bubblehouse: {authorization: '" + testAuth + "', hooks: {CreateDiscount4: {}}}\nlog: {requests: false}\n"
	addr, out := serveFile(t, yaml, "--log-format", "text", "--log-level", "debug")
	if got := status(t, addr, "/bubblehouse/CreateDiscount4", `{}`, map[string]string{"Authorization": testAuth, "X-Request-ID": "flags-1"}); got != 202 {
		t.Fatalf("CreateDiscount4: %d", got)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitUntil(t, 5*time.Second, "the request lines", func() bool {
		return strings.Contains(out.String(), "request_id=flags-1") && strings.Contains(out.String(), "path=/healthz")
	})
	log := out.String()
	if !strings.Contains(log, `level=INFO msg="hookbay listening"`) || !strings.Contains(log, "level=DEBUG msg=request sender=bubblehouse") {
		t.Fatalf("not text at DEBUG, or the accepted request not at DEBUG (log.requests: false):\n%s", log)
	}

	// At warn, not even the start-up line: the address is picked here.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "hookbay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--config", path, "--http", "--listen", addr, "--data", dir, "--log-level", "warn"}, out, out)
	}()
	defer func() { cancel(); <-done }()
	waitUntil(t, 10*time.Second, "the server to answer", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if got := status(t, addr, "/bubblehouse/CreateDiscount4", `{}`, map[string]string{"Authorization": testAuth}); got != 202 {
		t.Fatalf("CreateDiscount4: %d", got)
	}
	if got := status(t, addr, "/bubblehouse/CreateDiscount4", `{}`, nil); got != 401 {
		t.Fatalf("CreateDiscount4 without credentials: %d", got)
	}
	if out.String() != "" {
		t.Fatalf("lines below WARN at --log-level warn:\n%s", out)
	}
	if err := Run(context.Background(), []string{"serve", "--log-format", "xml"}, &syncBuffer{}, &syncBuffer{}); err == nil ||
		!strings.Contains(err.Error(), "log.format") {
		t.Fatalf("--log-format xml: %v, want the format refused", err)
	}
}

// Dev mode logs text, for a person.
func TestServe_DevLogText(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--http", "--listen", "127.0.0.1:0", "--data", dir + "/data"}, out, out)
	}()
	defer func() { cancel(); <-done }()
	waitUntil(t, 10*time.Second, "the server to listen", func() bool { return listeningRE.MatchString(out.String()) })
	if !strings.Contains(out.String(), `level=INFO msg="hookbay listening" addr=`) {
		t.Fatalf("dev mode does not log text:\n%s", out)
	}
}

// writeCounter counts the writes that reach it.
type writeCounter struct {
	mu     sync.Mutex
	writes int
	b      strings.Builder
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.b.Write(p)
}

func (w *writeCounter) read() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.b.String()
}

// serve's log writes request lines in batches; a warning goes out at
// once, with the lines before it, in order; a line waits at most
// logFlushEvery; Flush writes what waits.
func TestLog_Buffered(t *testing.T) {
	w := &writeCounter{}
	logger, flush := newBufferedLogger(w, config.LogConfig{Format: "json", Level: "info"})
	for i := range 100 {
		logger.Info("request", "n", i)
	}
	logger.Warn("held queue")
	writes, out := w.read()
	if writes > 2 || strings.Count(out, "\n") != 101 || !strings.HasSuffix(out, "\"msg\":\"held queue\"}\n") {
		t.Fatalf("100 lines and a warning took %d writes, or are not all out in order:\n%s", writes, out)
	}
	logger.Info("later")
	waitUntil(t, 2*time.Second, "the line to be written within logFlushEvery", func() bool {
		_, out := w.read()
		return strings.Contains(out, "later")
	})
	for range 2000 { // over logBufferSize: written without waiting
		logger.Info("request", "pad", strings.Repeat("x", 40))
	}
	if _, out := w.read(); strings.Count(out, "\n") < 102+1000 {
		t.Fatalf("a full buffer was not written: %d lines out", strings.Count(out, "\n"))
	}
	flush()
	_, out = w.read()
	if strings.Count(out, "\n") != 102+2000 {
		t.Fatalf("Flush left lines behind: %d lines out", strings.Count(out, "\n"))
	}
	logLines(t, out) // every line is whole JSON
}
