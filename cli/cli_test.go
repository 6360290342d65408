package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
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
	Sender    string `json:"sender"`
	Name      string `json:"name"`
	RequestID string `json:"request_id"`
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
	recs := requests(t, m, hooks.RequestFilter{RequestID: requestID})
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
		js := jobs(t, m, hooks.JobFilter{RequestRef: event})
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
		{"RetrySinceWithoutDead", []string{"jobs", "retry", "--data", dir, "--since", "1h", "5"}, "--since goes with --dead"},
		// Unknown values and extra arguments are errors that say what is
		// accepted, never silently ignored.
		{"ListExtraArg", []string{"events", "list", "--data", dir, "extra"}, `events list: unexpected argument "extra"`},
		{"ListUnknownSender", []string{"events", "list", "--data", dir, "--sender", "foo"}, `--sender "foo": want bubblehouse, bloomreach or svix`},
		{"ReportUnknownSender", []string{"report", "--data", dir, "--sender", "foo"}, `--sender "foo": want bubblehouse, bloomreach or svix`},
		{"ReportExtraArg", []string{"report", "--data", dir, "bubblehouse"}, `report: unexpected argument "bubblehouse"`},
		{"JobsListExtraArg", []string{"jobs", "list", "--data", dir, "dead"}, `jobs list: unexpected argument "dead"`},
		{"FaultsListExtraArg", []string{"faults", "list", "--data", dir, "5"}, `faults list: unexpected argument "5"`},
		{"FaultsAddUnknownSender", []string{"faults", "add", "--data", dir, "--sender", "foo", "--status", "503"}, `--sender "foo": want bubblehouse, bloomreach or svix`},
		{"ConformUnknownSender", []string{"conform", "--sender", "foo", "--url", "http://127.0.0.1:1/"}, `--sender "foo": want bubblehouse, bloomreach or svix`},
		{"SendUnknownSender", []string{"send", "foo"}, `unknown sender "foo"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err=%v, want %q", err, tt.says)
			}
			if got := exitStatus(t, err); got != 2 {
				t.Fatalf("exit status %d, want 2", got)
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
		{"faults", "add", "--data", dir, "--sender", "svix", "--drop"},
		{"faults", "remove", "1", "--data", dir},
	} {
		if out, err := runCLI(t, args...); err != nil {
			t.Errorf("hookbay %s: %v (%q)", strings.Join(args, " "), err, out)
		}
	}
	// Job 1 is done: the error says the store behind --data was read.
	if _, err := runCLI(t, "jobs", "retry", "1", "--data", dir); err == nil || !strings.Contains(err.Error(), "job(s) 1 not queued again") {
		t.Errorf("jobs retry 1 --data: %v, want job 1 found done", err)
	}
}

// -h, --help and help on every command, subcommand and group print its
// usage with its flags to stdout, and exit 0; help that was not asked for
// (no command) exits 2.
func TestCLI_Help(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		flags []string // what the usage must list
	}{
		{[]string{"events"}, []string{"usage: hookbay events list|show|replay", "hookbay events list", "-since", "hookbay events replay ID", "-force", "-config", "-data", "-json"}},
		{[]string{"events", "list"}, []string{"-sender", "-name", "-since", "-limit", "-config", "-data", "-json"}},
		{[]string{"events", "show"}, []string{"hookbay events show ID", "-data", "body_base64"}},
		{[]string{"events", "replay"}, []string{"-force", "-config", "Exit status: 0 when every job succeeded"}},
		{[]string{"jobs"}, []string{"hookbay jobs list", "-state", "hookbay jobs retry", "-dead"}},
		{[]string{"jobs", "list"}, []string{"-state", "available (waiting for a worker", "-name", "-limit", "-data"}},
		{[]string{"jobs", "retry"}, []string{"-dead", "-since", "-data"}},
		{[]string{"faults"}, []string{"hookbay faults add", "-status", "hookbay faults remove ID", "hookbay faults clear", "-all"}},
		{[]string{"faults", "add"}, []string{"-sender", "-status", "-delay", "-drop", "-count", "-percent", "-for"}},
		{[]string{"faults", "list"}, []string{"-data", "-json"}},
		{[]string{"faults", "remove"}, []string{"hookbay faults remove ID", "-data"}},
		{[]string{"faults", "clear"}, []string{"-all", "-sender", "-data"}},
		{[]string{"report"}, []string{"-sender", "-since", "-junit", "-limit", "-data", "Exit status: 0 when there are no findings"}},
		{[]string{"certs"}, []string{"hookbay certs init", "hookbay certs show"}},
		{[]string{"certs", "init"}, []string{"-dir", "-hosts", "-force"}},
		{[]string{"certs", "client"}, []string{"-dir", "-cn", "-days"}},
		{[]string{"certs", "show"}, []string{"-json"}},
		{[]string{"send"}, []string{"hookbay send bubblehouse", "hookbay send svix", "-secret", "-hook", "-oauth2"}},
		{[]string{"send", "bubblehouse"}, []string{"-url", "-hook", "-authorization", "-jwt-secret", "Exit status: 0 when the sender would count"}},
		{[]string{"send", "bloomreach"}, []string{"-url", "-basic", "-oauth2", "-batch", "Exit status: 0 when the sender would count"}},
		{[]string{"send", "svix"}, []string{"-url", "-secret", "-type", "-headers", "Exit status: 0 when the sender would count"}},
		{[]string{"conform"}, []string{"--sender bubblehouse", "--sender bloomreach", "--sender svix", "-url", "-realtime-limit", "-bad-data", "-hookbay-data", "-json", "-junit"}},
		{[]string{"conform", "--sender", "bubblehouse"}, []string{"-url", "-authorization", "-realtime-limit", "Exit status: 0 when every check passed"}},
		{[]string{"conform", "--sender", "bloomreach"}, []string{"-url", "-data", "-bad-data", "-concurrency"}},
		{[]string{"conform", "--sender", "svix"}, []string{"-url", "-secret", "-hookbay-data"}},
		{[]string{"serve"}, []string{"-config", "-data", "-listen"}},
	} {
		helps := []string{"-h", "--help"}
		if len(tt.args) == 1 && tt.args[0] != "conform" && tt.args[0] != "serve" && tt.args[0] != "report" {
			helps = append(helps, "help") // a group's first argument
		}
		for _, h := range helps {
			args := append(append([]string(nil), tt.args...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errOut bytes.Buffer
				err := Run(context.Background(), args, &out, &errOut)
				if got := exitStatus(t, err); got != 0 {
					t.Fatalf("exit status %d (err=%v), want 0", got, err)
				}
				usage := out.String() + errOut.String()
				if args[0] != "serve" { // serve's own flag set writes its usage to stderr
					usage = out.String()
				}
				for _, want := range tt.flags {
					if !strings.Contains(usage, want) {
						t.Errorf("usage lacks %q:\n%s", want, usage)
					}
				}
			})
		}
	}
	t.Run("NoCommand", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := Run(context.Background(), nil, &out, &errOut)
		if got := exitStatus(t, err); got != 2 || !strings.Contains(errOut.String(), "usage: hookbay <command>") {
			t.Fatalf("exit status %d, stderr %q; want 2 and the usage", got, errOut.String())
		}
	})
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out bytes.Buffer
		if err := Run(context.Background(), args, &out, io.Discard); exitStatus(t, err) != 0 || !strings.Contains(out.String(), "Exit status: 0 when the command worked") {
			t.Errorf("hookbay %v: err=%v, out %q; want the usage on stdout, exit 0", args, err, out.String())
		}
	}
}
