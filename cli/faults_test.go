package cli

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/store/sqlite"
)

func runCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := Run(context.Background(), args, &out, &out); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// Faults are picked up by a running server within a second, answer as
// told, stop after --count, and every injected answer is recorded as
// injected.
func TestFaults(t *testing.T) {
	m := MustRunMain(t, nil)
	data := m.Config.Server.DataDir
	out := runCmd(t, "faults", "add", "--data", data, "--sender", "bubblehouse", "--name", "CreateDiscount4", "--status", "503", "--count", "2")
	if !strings.Contains(out, "answer 503") {
		t.Fatalf("add: %s", out)
	}
	var statuses []int
	waitUntil(t, 2*time.Second, "the fault to be picked up", func() bool {
		a := send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: "probe-" + time.Now().Format("150405.000000")})
		return a.status == 503
	})
	for i := range 2 {
		a := send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: "f-" + string(rune('a'+i))})
		statuses = append(statuses, a.status)
		a.json(t)
	}
	if statuses[0] != 503 || statuses[1] != 202 {
		t.Fatalf("statuses after the first injected answer: %v, want [503 202] (count 2)", statuses)
	}
	recs := requests(t, m, sqlite.RequestFilter{RequestID: "f-a"})
	if len(recs) != 1 || recs[0].Status != 503 || !strings.Contains(strings.Join(recs[0].Notes, ";"), "fault injected") {
		t.Fatalf("injected answer record: %+v", recs)
	}
	if n := countJobs(t, m, recs); n != 0 {
		t.Fatalf("jobs=%d: injected answers must not be processed", n)
	}
	// Other hooks are untouched by a named fault.
	if a := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"x"}`, urgency: "regular", id: "other"}); a.status != 202 {
		t.Fatalf("other hook: %d", a.status)
	}

	// A delay, then normal processing.
	runCmd(t, "faults", "clear", "--data", data)
	runCmd(t, "faults", "add", "--data", data, "--sender", "bubblehouse", "--delay", "300ms", "--count", "1")
	time.Sleep(700 * time.Millisecond)
	start := time.Now()
	if a := send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: "delayed"}); a.status != 202 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("delay: %d after %s", a.status, time.Since(start))
	}
	if recs := requests(t, m, sqlite.RequestFilter{RequestID: "delayed"}); !strings.Contains(strings.Join(recs[0].Notes, ";"), "delay 300ms") {
		t.Fatalf("delayed record notes: %v", recs[0].Notes)
	}

	// A drop: no answer at all, but a record.
	runCmd(t, "faults", "add", "--data", data, "--sender", "svix", "--name", "user.created", "--drop")
	if out := runCmd(t, "faults", "list", "--data", data); !strings.Contains(out, "drop the connection") || !strings.Contains(out, "user.created") {
		t.Fatalf("list: %s", out)
	}
	m2 := MustRunMain(t, func(c *config.Config) {
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
		c.Server.DataDir = data + "-svix"
	})
	runCmd(t, "faults", "add", "--data", m2.Config.Server.DataDir, "--sender", "svix", "--name", "user.created", "--drop")
	time.Sleep(700 * time.Millisecond)
	req, _ := http.NewRequest("POST", "http://"+m2.Addr()+"/svix/bloom", strings.NewReader(`{"type":"user.created"}`))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request got an answer: %d", resp.StatusCode)
	}
	if a := sendSvix(t, m2, "bloom", signed{id: "msg_kept", body: `{"type":"user.updated"}`}); a.status != 200 {
		t.Fatalf("another event type: %d", a.status)
	}
	if out := runCmd(t, "faults", "clear", "--data", data); !strings.Contains(out, "2 fault(s) cleared") {
		t.Fatalf("clear: %s", out)
	}
}

// An injected answer is never an acceptance: a 2xx (or 1xx) fault is
// refused when it is added, so no request is acknowledged unprocessed.
func TestFaults_NoAcceptance(t *testing.T) {
	data := t.TempDir()
	for _, status := range []string{"100", "200", "202", "299", "600"} {
		var out bytes.Buffer
		err := Run(context.Background(), []string{"faults", "add", "--data", data, "--sender", "bubblehouse", "--status", status}, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "want a 3xx, 4xx or 5xx") {
			t.Fatalf("--status %s: err=%v, want a refusal", status, err)
		}
	}
	if out := runCmd(t, "faults", "list", "--data", data); strings.Contains(out, "answer") {
		t.Fatalf("faults stored after refusals:\n%s", out)
	}
	runCmd(t, "faults", "add", "--data", data, "--sender", "bloomreach", "--status", "301")
}
