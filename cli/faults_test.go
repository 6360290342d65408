package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
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
	recs := requests(t, m, hooks.RequestFilter{RequestID: "f-a"})
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
	runCmd(t, "faults", "clear", "--all", "--data", data)
	runCmd(t, "faults", "add", "--data", data, "--sender", "bubblehouse", "--delay", "300ms", "--count", "1")
	// Requests are answered at once until the server has loaded the fault;
	// the first one it delays is recorded with the fault's note.
	var (
		delayed answer
		took    time.Duration
		n       int
	)
	waitUntil(t, 5*time.Second, `a request recorded with "delay 300ms"`, func() bool {
		n++
		id := fmt.Sprintf("delayed-%d", n)
		start := time.Now()
		delayed = send(t, m, call{hook: "CreateDiscount4", body: `{}`, urgency: "urgent", id: id})
		took = time.Since(start)
		recs := requests(t, m, hooks.RequestFilter{RequestID: id})
		return len(recs) == 1 && strings.Contains(strings.Join(recs[0].Notes, ";"), "delay 300ms")
	})
	if delayed.status != 202 || took < 300*time.Millisecond {
		t.Fatalf("delay: %d after %s", delayed.status, took)
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
	// The fault has no --count: a request answered before the server
	// loaded it leaves it in place for the next.
	waitUntil(t, 5*time.Second, "a user.created request dropped without an answer", func() bool {
		req, _ := http.NewRequest("POST", "http://"+m2.Addr()+"/svix/bloom", strings.NewReader(`{"type":"user.created"}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	if a := sendSvix(t, m2, "bloom", signed{id: "msg_kept", body: `{"type":"user.updated"}`}); a.status != 200 {
		t.Fatalf("another event type: %d", a.status)
	}
	if out := runCmd(t, "faults", "clear", "--all", "--data", data); !strings.Contains(out, "2 fault(s) cleared") {
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

// "faults remove ID" removes that fault alone, and an unknown id is an
// error; clearing every fault takes --all, and "faults clear 5" is an
// error rather than a wipe of every fault.
func TestFaults_RemoveAndClear(t *testing.T) {
	data := t.TempDir()
	add := func(args ...string) int64 {
		t.Helper()
		var f struct {
			ID int64 `json:"id"`
		}
		out := runCmd(t, append([]string{"faults", "add", "--data", data, "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &f); err != nil || f.ID == 0 {
			t.Fatalf("add %v: %v\n%s", args, err, out)
		}
		return f.ID
	}
	ids := func() []int64 {
		t.Helper()
		var list []struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal([]byte(runCmd(t, "faults", "list", "--data", data, "--json")), &list); err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, f := range list {
			out = append(out, f.ID)
		}
		return out
	}
	a := add("--sender", "bubblehouse", "--status", "503")
	b := add("--sender", "svix", "--drop")
	c := add("--sender", "svix", "--status", "500")

	for _, tt := range []struct {
		name string
		args []string
		says string
	}{
		{"ClearWithID", []string{"clear", fmt.Sprint(a)}, fmt.Sprintf(`faults clear takes no id: "hookbay faults remove %d" removes one fault`, a)},
		{"ClearWithoutAll", []string{"clear"}, "faults clear removes every fault: say so with --all"},
		{"ClearUnknownSender", []string{"clear", "--all", "--sender", "foo"}, `--sender "foo": want bubblehouse, bloomreach or svix`},
		{"RemoveNoID", []string{"remove"}, "usage: hookbay faults remove ID"},
		{"RemoveTwoIDs", []string{"remove", "1", "2"}, "usage: hookbay faults remove ID"},
		{"RemoveNotANumber", []string{"remove", "x"}, `fault ID "x" is not a number`},
		{"RemoveUnknown", []string{"remove", "999"}, "no fault 999"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Run(context.Background(), append(append([]string{"faults"}, tt.args...), "--data", data), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.says) || exitStatus(t, err) != 2 {
				t.Fatalf("err=%v, want exit status 2 saying %q", err, tt.says)
			}
			if got := ids(); len(got) != 3 {
				t.Fatalf("faults after a refused command: %v, want all three kept", got)
			}
		})
	}

	if out := runCmd(t, "faults", "remove", fmt.Sprint(b), "--data", data); !strings.Contains(out, fmt.Sprintf("fault %d removed", b)) {
		t.Fatalf("remove: %q", out)
	}
	if got, want := ids(), []int64{a, c}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("faults after removing %d: %v, want %v", b, got, want)
	}
	if out := runCmd(t, "faults", "clear", "--all", "--sender", "svix", "--data", data); !strings.Contains(out, "1 fault(s) cleared") {
		t.Fatalf("clear --all --sender svix: %q", out)
	}
	if got, want := ids(), []int64{a}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("faults after clearing svix: %v, want %v", got, want)
	}
	if out := runCmd(t, "faults", "clear", "--all", "--data", data); !strings.Contains(out, "1 fault(s) cleared") {
		t.Fatalf("clear --all: %q", out)
	}
	if got := ids(); len(got) != 0 {
		t.Fatalf("faults after clear --all: %v, want none", got)
	}
}
