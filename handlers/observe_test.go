package handlers_test

// What the request log and the metrics are told of each request: its
// record, the verdict of its answer, why it was refused, whether a
// throughput policy refused it, how much body was read; and the log line
// made of it, which never carries a secret.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

// observer collects what Observe tells, as cli wires it: in front of
// every route, with the request log writing JSON lines.
type observer struct {
	mu      sync.Mutex
	started int
	seen    []*handlers.Exchange
	log     bytes.Buffer
}

// watch puts Observe in front of e's routes, logging at level.
func watch(e *echo.Echo, every bool, level slog.Level) *observer {
	o := &observer{}
	logger := slog.New(slog.NewJSONHandler(lockedWriter{o}, &slog.HandlerOptions{Level: level}))
	logLine := handlers.RequestLog(logger, every)
	e.Use(handlers.Observe(func() {
		o.mu.Lock()
		o.started++
		o.mu.Unlock()
	}, func(x *handlers.Exchange) {
		logLine(x)
		o.mu.Lock()
		o.seen = append(o.seen, x)
		o.mu.Unlock()
	}))
	return o
}

type lockedWriter struct{ o *observer }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	return w.o.log.Write(p)
}

// last is the newest exchange told.
func (o *observer) last(t *testing.T) *handlers.Exchange {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		t.Fatal("Observe told of no request")
	}
	return o.seen[len(o.seen)-1]
}

// lines decodes the log: every line must be one JSON object.
func (o *observer) lines(t *testing.T) []map[string]any {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(o.log.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		out = append(out, m)
	}
	return out
}

func TestObserve_Exchange(t *testing.T) {
	g := &Guard{}
	throttled := brHook("sms", brBasic())
	throttled.Throttle = hooks.NewThrottle(0.001, 1, 0, 0) // one request, then throttled
	e, _ := newBloomreach(g, throttled)
	newSvix(t, g).Register(e, "/svix")
	o := watch(e, true, slog.LevelInfo)

	for _, tt := range []struct {
		name      string
		req       *http.Request
		status    int
		record    bool
		requestID string
		verdict   hooks.VerdictKind
		refusal   string
		throttled bool
	}{
		{"SvixDelivered", signed{id: "msg_ok", body: `{"type":"user.created"}`}.request("bloom"), 200, true, "msg_ok", hooks.VerdictDelivered, "", false},
		{"SvixSignatureMismatch", signed{id: "msg_bad", body: `{"type":"user.created"}`, secret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-secret-of-enough-length"))}.request("bloom"),
			401, true, "msg_bad", hooks.VerdictRetry, hooks.ReasonNoMatch, false},
		{"SvixMissingHeaders", signed{id: "msg_nots", body: `{}`, omit: "svix-timestamp"}.request("bloom"), 400, true, "", hooks.VerdictRetry, hooks.ReasonMissingHeaders, false},
		{"BloomreachDelivered", brReq{name: "sms", id: "br-1", body: `{}`}.request(), 200, true, "br-1", hooks.VerdictDelivered, "", false},
		{"BloomreachThrottled", brReq{name: "sms", id: "br-2", body: `{}`}.request(), 429, true, "br-2", hooks.VerdictRetry, hooks.ETHROTTLED, true},
		{"BloomreachWrongPassword", brReq{name: "sms", id: "br-3", body: `{}`, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(brUser+":wrong"))}.request(),
			401, true, "br-3", hooks.VerdictFailed, hooks.EUNAUTHORIZED, false},
		{"BloomreachUnknownWebhook", brReq{name: "nope", id: "br-4", body: `{}`}.request(), 404, true, "br-4", hooks.VerdictStopCampaign, hooks.ENOTFOUND, false},
		{"UnknownPath", httptest.NewRequest(http.MethodGet, "/nowhere/at/all", nil), 404, false, "", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sent int64
			if tt.req.ContentLength > 0 {
				sent = tt.req.ContentLength
			}
			x := serve(e, tt.req)
			got := o.last(t)
			if x.status != tt.status || got.Status != tt.status {
				t.Fatalf("answered %d, told %d; want %d (%s)", x.status, got.Status, tt.status, x.body)
			}
			if (got.Record != nil) != tt.record {
				t.Fatalf("record %v, want one: %v", got.Record, tt.record)
			}
			if got.Verdict.Kind != tt.verdict || got.Refusal != tt.refusal || got.Throttled != tt.throttled {
				t.Errorf("verdict %q, refusal %q, throttled %v; want %q, %q, %v", got.Verdict.Kind, got.Refusal, got.Throttled,
					tt.verdict, tt.refusal, tt.throttled)
			}
			if tt.record && got.Record.RequestID != tt.requestID {
				t.Errorf("request ID %q, want %q", got.Record.RequestID, tt.requestID)
			}
			if tt.refusal != "" && got.Error == "" {
				t.Error("a refusal without the message the client was told")
			}
			if tt.name == "BloomreachUnknownWebhook" {
				sent = 0 // refused before its body is read
			}
			if got.BodyBytes != sent {
				t.Errorf("body bytes %d, want %d", got.BodyBytes, sent)
			}
			if got.Duration <= 0 {
				t.Errorf("duration %v", got.Duration)
			}
		})
	}
	o.mu.Lock()
	started, told := o.started, len(o.seen)
	o.mu.Unlock()
	if started != told {
		t.Errorf("%d requests started, %d told answered", started, told)
	}
}

// The request log: one JSON line per request with what an operator needs
// (sender, name, the sender's ID, the event ID, status, latency, verdict,
// a refusal's reason), Svix's message ID included; no secret, ever.
func TestRequestLog(t *testing.T) {
	g := &Guard{}
	recorded := int64(0)
	g.RecordFn = func(_ context.Context, req *hooks.Request) error { recorded++; req.ID = 1000 + recorded; return nil }
	e, _ := newBloomreach(g, brHook("sms", brBasic()))
	newSvix(t, g).Register(e, "/svix")
	o := watch(e, true, slog.LevelInfo)

	serve(e, signed{id: "msg_logged", body: `{"type":"user.created"}`}.request("bloom"))
	serve(e, brReq{name: "sms", id: "br-logged", body: `{"phone":"+1"}`}.request())
	serve(e, brReq{name: "sms", id: "br-refused", body: `{}`, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(brUser+":"+brPass+"x"))}.request())
	serve(e, brReq{name: "nope", id: "br-stop", body: `{}`}.request())
	serve(e, httptest.NewRequest(http.MethodGet, "/nowhere", nil))

	lines := o.lines(t)
	if len(lines) != 5 {
		t.Fatalf("%d log lines, want one per request:\n%s", len(lines), o.log.String())
	}
	byID := map[string]map[string]any{}
	for _, l := range lines {
		if id, ok := l["request_id"].(string); ok {
			byID[id] = l
		}
	}
	for id, want := range map[string]map[string]any{
		"msg_logged": {"level": "INFO", "sender": "svix", "name": "bloom", "status": 200.0, "verdict": "delivered"},
		"br-logged":  {"level": "INFO", "sender": "bloomreach", "name": "sms", "status": 200.0, "verdict": "delivered"},
		"br-refused": {"level": "INFO", "sender": "bloomreach", "status": 401.0, "verdict": "failed", "reason": "unauthorized", "event": 1001.0},
		"br-stop":    {"level": "WARN", "sender": "bloomreach", "name": "nope", "status": 404.0, "verdict": "stop_campaign", "reason": "not_found"},
	} {
		l, ok := byID[id]
		if !ok {
			t.Errorf("no line carries request_id %q:\n%s", id, o.log.String())
			continue
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s: %s=%v, want %v", id, k, l[k], v)
			}
		}
		for _, k := range []string{"msg", "event", "latency_ms", "verdict_text", "remote"} {
			if _, ok := l[k]; !ok {
				t.Errorf("%s: no %s", id, k)
			}
		}
	}
	if l := lines[len(lines)-1]; l["path"] != "/nowhere" || l["status"] != 404.0 {
		t.Errorf("unrouted request logged as %v", l)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(brUser + ":" + brPass))
	for _, secret := range []string{brPass, basic, svixSecret, strings.TrimPrefix(svixSecret, "whsec_"), "+1"} {
		if strings.Contains(o.log.String(), secret) {
			t.Errorf("the log carries %q (a secret or a body):\n%s", secret, o.log.String())
		}
	}
}

// With requests off, an answer that hurts the sender is still logged, at
// WARN; the others only at DEBUG.
func TestRequestLog_Off(t *testing.T) {
	g := &Guard{}
	e, _ := newBloomreach(g, brHook("sms", brBasic()))
	o := watch(e, false, slog.LevelInfo)
	serve(e, brReq{name: "sms", id: "quiet", body: `{}`}.request())
	serve(e, brReq{name: "nope", id: "loud", body: `{}`}.request())
	lines := o.lines(t)
	if len(lines) != 1 || lines[0]["request_id"] != "loud" || lines[0]["level"] != "WARN" {
		t.Fatalf("log with requests off: %v, want only the stop_campaign answer at WARN", lines)
	}
}
