package hooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// actionBody has the bytes a re-encoder would change: odd whitespace, a CR,
// escaped slashes and a unicode escape.
const actionBody = "{ \"url\" :\t\"https:\\/\\/shop.example\\/x\" ,\r\n  \"n\":[1 , 2],\"s\":\"\\u00e9\"  }\n"

// actionJob returns a job as a worker hands it to an action.
func actionJob() *hooks.Job {
	return &hooks.Job{
		ID:        7,
		Sender:    hooks.SenderBubblehouse,
		Name:      "CreateDiscount4",
		Urgency:   hooks.UrgencyUrgent,
		Attempts:  3,
		RequestID: "req-42",
		Header: http.Header{
			"X-Trace":       {"trace-1"},
			"X-Multi":       {"a", "b"},
			"X-Not-Listed":  {"secret-ish"},
			"Authorization": {"Bearer [redacted]"},
		},
		Body: []byte(actionBody),
	}
}

// received is what a downstream server saw.
type received struct {
	header http.Header
	body   []byte
}

// newDownstream starts a server that records each request and answers with
// handle's status and body.
func newDownstream(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("downstream: read body: %v", err)
		}
		ch <- received{r.Header.Clone(), body}
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func answerWith(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestForward_Run(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		srv, got := newDownstream(t, answerWith(201, `{"accepted":true}`))
		f := &hooks.Forward{URL: srv.URL, Timeout: 5 * time.Second, PassHeaders: []string{"x-trace", "X-Multi"}}
		out, err := f.Run(context.Background(), actionJob())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), `{"accepted":true}`; got != want {
			t.Fatalf("output=%q, want %q", got, want)
		}
		r := <-got
		if got, want := string(r.body), actionBody; got != want {
			t.Fatalf("body=%q, want %q", got, want)
		}
		for name, want := range map[string]string{
			"X-Hookbay-Sender":  "bubblehouse",
			"X-Hookbay-Name":    "CreateDiscount4",
			"X-Hookbay-Urgency": "urgent",
			"X-Hookbay-Attempt": "3",
			"X-Request-Id":      "req-42",
			"Idempotency-Key":   "req-42",
			"X-Trace":           "trace-1",
			"Content-Type":      "application/json",
		} {
			if got := r.header.Get(name); got != want {
				t.Errorf("%s=%q, want %q", name, got, want)
			}
		}
		if got, want := r.header.Values("X-Multi"), []string{"a", "b"}; !reflect.DeepEqual(got, want) {
			t.Errorf("X-Multi=%q, want %q", got, want)
		}
		for _, name := range []string{"X-Not-Listed", "Authorization"} {
			if v := r.header.Values(name); len(v) != 0 {
				t.Errorf("%s=%q passed on, but it is not in pass_headers", name, v)
			}
		}
	})
	t.Run("PassedContentType", func(t *testing.T) {
		srv, got := newDownstream(t, answerWith(200, `{}`))
		j := actionJob()
		j.Header.Set("Content-Type", "application/vnd.shop+json")
		f := &hooks.Forward{URL: srv.URL, PassHeaders: []string{"Content-Type"}}
		if _, err := f.Run(context.Background(), j); err != nil {
			t.Fatal(err)
		}
		if got, want := (<-got).header.Get("Content-Type"), "application/vnd.shop+json"; got != want {
			t.Fatalf("Content-Type=%q, want %q", got, want)
		}
	})
	t.Run("NoRequestID", func(t *testing.T) {
		srv, got := newDownstream(t, answerWith(204, ""))
		j := actionJob()
		j.RequestID = ""
		out, err := (&hooks.Forward{URL: srv.URL}).Run(context.Background(), j)
		if err != nil || len(out) != 0 {
			t.Fatalf("out=%q err=%v, want empty output", out, err)
		}
		r := <-got
		if r.header.Get("X-Request-ID") != "" || r.header.Get("Idempotency-Key") != "" {
			t.Fatalf("X-Request-ID=%q Idempotency-Key=%q, want neither", r.header.Get("X-Request-ID"), r.header.Get("Idempotency-Key"))
		}
	})
	t.Run("OutputAtLimit", func(t *testing.T) {
		srv, _ := newDownstream(t, answerWith(200, strings.Repeat("x", 64)))
		out, err := (&hooks.Forward{URL: srv.URL, MaxOutput: 64}).Run(context.Background(), actionJob())
		if err != nil || len(out) != 64 {
			t.Fatalf("len(out)=%d err=%v, want 64 bytes", len(out), err)
		}
	})
	t.Run("ErrStatus", func(t *testing.T) {
		srv, _ := newDownstream(t, answerWith(500, "  database is down: connection refused\n"))
		out, err := (&hooks.Forward{URL: srv.URL}).Run(context.Background(), actionJob())
		if err == nil || out != nil {
			t.Fatalf("out=%q err=%v, want an error", out, err)
		}
		for _, want := range []string{"status 500", "database is down: connection refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err=%q, want it to contain %q", err, want)
			}
		}
	})
	t.Run("ErrStatusLongBody", func(t *testing.T) {
		srv, _ := newDownstream(t, answerWith(502, strings.Repeat("e", 5000)))
		_, err := (&hooks.Forward{URL: srv.URL}).Run(context.Background(), actionJob())
		if err == nil || !strings.Contains(err.Error(), "status 502") || len(err.Error()) > 1000 {
			t.Fatalf("err=%.200q (%d bytes), want status 502 with a short snippet", err, len(fmt.Sprint(err)))
		}
	})
	t.Run("ErrTimeout", func(t *testing.T) {
		release := make(chan struct{})
		srv, _ := newDownstream(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release) // before srv.Close, which waits for handlers
		start := time.Now()
		_, err := (&hooks.Forward{URL: srv.URL, Timeout: 100 * time.Millisecond}).Run(context.Background(), actionJob())
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err=%v, want a deadline error", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v, want about the 100ms timeout", d)
		}
	})
	t.Run("ErrOutputTooLarge", func(t *testing.T) {
		srv, _ := newDownstream(t, answerWith(200, strings.Repeat("x", 65)))
		out, err := (&hooks.Forward{URL: srv.URL, MaxOutput: 64}).Run(context.Background(), actionJob())
		var tooLarge *hooks.OutputTooLargeError
		if !errors.As(err, &tooLarge) || out != nil || !strings.Contains(err.Error(), "larger than the 64-byte output limit") {
			t.Fatalf("len(out)=%d err=%v, want an output limit error", len(out), err)
		}
	})
	t.Run("ErrUnreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := (&hooks.Forward{URL: url, Timeout: 2 * time.Second}).Run(context.Background(), actionJob())
		if err == nil || !strings.Contains(err.Error(), url) {
			t.Fatalf("err=%v, want an error naming %s", err, url)
		}
	})
}

// writeScript writes an executable /bin/sh script into dir. The file is
// written by a child process, not by this one: while this process holds an
// executable open for writing, a fork by any other goroutine (a parallel
// test's command) inherits the descriptor until its exec, and running the
// script in that window fails with ETXTBSY ("text file busy").
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	cmd := exec.Command("/bin/sh", "-c", `cat > "$1" && chmod 755 "$1"`, "sh", path)
	cmd.Stdin = strings.NewReader("#!/bin/sh\n" + body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s: %v: %s", path, err, out)
	}
	return path
}

func TestExec_Run(t *testing.T) {
	dir := t.TempDir()
	stdin := writeScript(t, dir, "stdin.sh", `cat > "$1"`+"\n")
	env := writeScript(t, dir, "env.sh", `printf '{"sender":"%s","name":"%s","urgency":"%s","attempt":"%s","request_id":"%s"}' \
	"$HOOKBAY_SENDER" "$HOOKBAY_NAME" "$HOOKBAY_URGENCY" "$HOOKBAY_ATTEMPT" "$HOOKBAY_REQUEST_ID"
`)
	fail := writeScript(t, dir, "fail.sh", "echo partial output\necho 'boom: coupon service said no' >&2\nexit 3\n")
	slow := writeScript(t, dir, "slow.sh", "sleep 10\necho late\n") // no exec: sleep keeps stdout open after sh is killed
	big := writeScript(t, dir, "big.sh", "i=0\nwhile [ $i -lt 3000 ]; do echo 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789; i=$((i+1)); done\n")

	t.Run("OK", func(t *testing.T) {
		out := filepath.Join(dir, "stdin.out")
		got, err := hooks.NewExec([]string{stdin, out}, 5*time.Second, 1).Run(context.Background(), actionJob())
		if err != nil || len(got) != 0 {
			t.Fatalf("output=%q err=%v, want no output", got, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), actionBody; got != want {
			t.Fatalf("stdin=%q, want %q", got, want)
		}
	})
	t.Run("Env", func(t *testing.T) {
		out, err := hooks.NewExec([]string{env}, 5*time.Second, 1).Run(context.Background(), actionJob())
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("stdout %q: %v", out, err)
		}
		want := map[string]string{"sender": "bubblehouse", "name": "CreateDiscount4", "urgency": "urgent", "attempt": "3", "request_id": "req-42"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("env=%v, want %v", got, want)
		}
	})
	t.Run("ErrExitStatus", func(t *testing.T) {
		out, err := hooks.NewExec([]string{fail}, 5*time.Second, 1).Run(context.Background(), actionJob())
		if err == nil || out != nil {
			t.Fatalf("out=%q err=%v, want an error", out, err)
		}
		for _, want := range []string{"exit status 3", "boom: coupon service said no"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err=%q, want it to contain %q", err, want)
			}
		}
	})
	t.Run("ErrTimeout", func(t *testing.T) {
		start := time.Now()
		_, err := hooks.NewExec([]string{slow}, 200*time.Millisecond, 1).Run(context.Background(), actionJob())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err=%v, want a deadline error", err)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("took %v, want at most 1.5s (200ms timeout + 1s WaitDelay)", d)
		}
	})
	t.Run("ErrOutputTooLarge", func(t *testing.T) {
		x := hooks.NewExec([]string{big}, 5*time.Second, 1)
		x.MaxOutput = 1000
		out, err := x.Run(context.Background(), actionJob())
		var tooLarge *hooks.OutputTooLargeError
		if !errors.As(err, &tooLarge) || out != nil || !strings.Contains(err.Error(), "larger than the 1000-byte output limit") {
			t.Fatalf("len(out)=%d err=%v, want an output limit error", len(out), err)
		}
	})
	t.Run("ErrMissingProgram", func(t *testing.T) {
		_, err := hooks.NewExec([]string{filepath.Join(dir, "no-such-program")}, 5*time.Second, 1).Run(context.Background(), actionJob())
		if err == nil || !strings.Contains(err.Error(), "no-such-program") {
			t.Fatalf("err=%v, want an error naming the program", err)
		}
	})
	t.Run("ErrWaitingForSlot", func(t *testing.T) {
		x := hooks.NewExec([]string{env}, 5*time.Second, 1)
		x.Slots <- struct{}{} // the only slot is taken
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := x.Run(ctx, actionJob())
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "process slot") {
			t.Fatalf("err=%v, want a deadline error while waiting for a slot", err)
		}
	})
}

// NewExec's procs caps the processes running at once: each process leaves a
// file in a directory while it runs and prints how many it saw at start.
func TestExec_Slots(t *testing.T) {
	dir := t.TempDir()
	running := filepath.Join(dir, "running")
	if err := os.Mkdir(running, 0o755); err != nil {
		t.Fatal(err)
	}
	script := writeScript(t, dir, "slot.sh", `touch "$1/$$"
ls "$1" | wc -l
sleep 0.2
rm "$1/$$"
`)
	x := hooks.NewExec([]string{script, running}, 5*time.Second, 2)
	const n = 6
	seen := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := x.Run(context.Background(), actionJob())
			if err != nil {
				errs[i] = err
				return
			}
			seen[i], errs[i] = strconv.Atoi(strings.TrimSpace(string(out)))
		}()
	}
	wg.Wait()
	most := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		most = max(most, seen[i])
	}
	if most > 2 {
		t.Fatalf("a process saw %d running (itself included), want at most 2: %v", most, seen)
	}
	if most < 2 {
		t.Fatalf("no two processes ran at once (%v): the test proves nothing", seen)
	}
}

func TestActions(t *testing.T) {
	a := hooks.Actions{}
	fwd := &hooks.Forward{URL: "http://127.0.0.1:1/"}
	x := hooks.NewExec([]string{"/bin/true"}, time.Second, 1)
	a.Set(hooks.SenderBubblehouse, "CreateDiscount4", fwd)
	a.Set(hooks.SenderBubblehouse, "SendEvent1", x)
	a.Set(hooks.SenderSvix, "CreateDiscount4", x)

	for _, tt := range []struct {
		sender hooks.Sender
		name   string
		want   hooks.Action
	}{
		{hooks.SenderBubblehouse, "CreateDiscount4", fwd},
		{hooks.SenderBubblehouse, "SendEvent1", x},
		{hooks.SenderSvix, "CreateDiscount4", x},
		{hooks.SenderBubblehouse, "DeliverCustomReward1", nil},
		{hooks.SenderBloomreach, "CreateDiscount4", nil},
	} {
		if got := a.For(tt.sender, tt.name); got != tt.want {
			t.Errorf("For(%s, %s)=%v, want %v", tt.sender, tt.name, got, tt.want)
		}
		if got := a.ForJob(&hooks.Job{Sender: tt.sender, Name: tt.name}); got != tt.want {
			t.Errorf("ForJob(%s, %s)=%v, want %v", tt.sender, tt.name, got, tt.want)
		}
	}
	a.Set(hooks.SenderBubblehouse, "CreateDiscount4", x) // replaces
	if got := a.For(hooks.SenderBubblehouse, "CreateDiscount4"); got != x {
		t.Fatalf("after a second Set: %v, want the exec action", got)
	}
	if got := (hooks.Actions{}).For(hooks.SenderBubblehouse, "CreateDiscount4"); got != nil {
		t.Fatalf("empty Actions: %v, want nil", got)
	}
	var none hooks.Actions // a nil map reads as empty
	if got := none.ForJob(&hooks.Job{Sender: hooks.SenderSvix, Name: "x"}); got != nil {
		t.Fatalf("nil Actions: %v, want nil", got)
	}
}

// A redirect is the downstream's answer, not a place to go: following it
// would turn the POST into a GET without the body and count its 2xx as a
// delivery.
func TestForward_NoRedirect(t *testing.T) {
	target, hit := newDownstream(t, answerWith(200, `{}`))
	srv, _ := newDownstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	_, err := (&hooks.Forward{URL: srv.URL}).Run(context.Background(), actionJob())
	if err == nil || !strings.Contains(err.Error(), "status 302") {
		t.Fatalf("err=%v, want a failed attempt naming status 302", err)
	}
	select {
	case r := <-hit:
		t.Fatalf("the redirect was followed: the target got %q", r.body)
	default:
	}
}

// Workers delivering at once to one downstream keep their connections:
// rounds of concurrent deliveries after the first open next to none (Go's
// default transport keeps only 2 idle connections per host, so it would
// open most of them again).
func TestForward_ReusesConnections(t *testing.T) {
	var opened atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	const workers, rounds = 8, 10
	f := &hooks.Forward{URL: srv.URL}
	for range rounds {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				if _, err := f.Run(context.Background(), actionJob()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// A round may dial before a connection of the last one is back in the
	// pool, so a few more than workers are allowed; 2 kept per host open
	// about 6 a round, 60 in all.
	if n := opened.Load(); n > 2*workers {
		t.Fatalf("%d deliveries in rounds of %d opened %d connections, want at most %d", workers*rounds, workers, n, 2*workers)
	}
}

// Each delivery carries a key the downstream can de-duplicate on: the
// request ID for a whole body; for one customer of a batch, a key of its
// own, the same on every retry.
func TestJob_IdempotencyKey(t *testing.T) {
	whole := actionJob()
	a, b := actionJob(), actionJob()
	a.Payload, b.Payload = []byte(`{"id":"1"}`), []byte(`{"id":"2"}`)
	again := actionJob()
	again.Payload = []byte(`{"id":"1"}`)
	noID := actionJob()
	noID.RequestID, noID.Payload = "", []byte(`{"id":"1"}`)
	switch {
	case whole.IdempotencyKey() != "req-42":
		t.Fatalf("whole body: %q, want the request ID", whole.IdempotencyKey())
	case !strings.HasPrefix(a.IdempotencyKey(), "req-42/") || a.IdempotencyKey() == b.IdempotencyKey():
		t.Fatalf("customers: %q and %q, want distinct keys under the request ID", a.IdempotencyKey(), b.IdempotencyKey())
	case a.IdempotencyKey() != again.IdempotencyKey():
		t.Fatalf("the same customer again: %q, then %q", a.IdempotencyKey(), again.IdempotencyKey())
	case noID.IdempotencyKey() != "":
		t.Fatalf("no request ID: %q, want none", noID.IdempotencyKey())
	}
}

// What a command starts ends with its attempt, whether the attempt timed
// out or the command exited and left a child in the background: nothing
// runs beside the retry.
func TestExec_ProcessGroup(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, script string
		wantErr      bool
	}{
		{"TimedOut", `(sleep 0.5; echo late >> "$1") & sleep 5` + "\n", true},
		{"ExitedLeavingChild", `(sleep 0.5; echo late >> "$1") > /dev/null 2>&1 &` + "\nexit 0\n", false},
		// The child holds the command's stdout open: it is killed once the
		// wait for that output runs out (1 s), and the command's own
		// success still counts.
		{"ExitedChildHoldingStdout", `(sleep 2; echo late >> "$1") &` + "\necho '{\"ok\":true}'\nexit 0\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each waits seconds for a child that must not act
			mark := filepath.Join(dir, tt.name+".mark")
			script := writeScript(t, dir, tt.name+".sh", tt.script)
			timeout := 200 * time.Millisecond
			if !tt.wantErr {
				timeout = 5 * time.Second
			}
			out, err := hooks.NewExec([]string{script, mark}, timeout, 1).Run(context.Background(), actionJob())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err=%v (output %q), want error %v", err, out, tt.wantErr)
			}
			time.Sleep(2500 * time.Millisecond)
			if _, err := os.Stat(mark); err == nil {
				t.Fatal("a child of the command kept running after the attempt")
			}
		})
	}
}

// An attempt that waits for a process slot past its deadline never
// started, and says so.
func TestExec_NoSlot(t *testing.T) {
	x := hooks.NewExec([]string{"true"}, time.Second, 1)
	x.Slots <- struct{}{} // the only slot is taken
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := x.Run(ctx, actionJob()); !errors.Is(err, hooks.ErrNotStarted) {
		t.Fatalf("err=%v, want ErrNotStarted", err)
	}
}

// W3C Trace Context: a sender's well-formed traceparent (and tracestate)
// goes on with the delivery, as headers to forward and as TRACEPARENT and
// TRACESTATE to exec, so that the integrator's traces join the sender's; a
// malformed one is not passed on.
func TestActions_Traceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	job := func(traceparent string) *hooks.Job {
		j := actionJob()
		j.Header.Set("Traceparent", traceparent)
		j.Header.Set("Tracestate", "vendor=opaque")
		return j
	}
	t.Run("Forward", func(t *testing.T) {
		srv, hit := newDownstream(t, answerWith(200, `{}`))
		for _, tt := range []struct{ sent, want, state string }{
			{tp, tp, "vendor=opaque"},
			{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", ""},
			{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", ""},
			{"not a trace", "", ""},
		} {
			if _, err := (&hooks.Forward{URL: srv.URL}).Run(context.Background(), job(tt.sent)); err != nil {
				t.Fatal(err)
			}
			got := <-hit
			if g, s := got.header.Get("Traceparent"), got.header.Get("Tracestate"); g != tt.want || s != tt.state {
				t.Errorf("sent %q: passed on traceparent %q, tracestate %q; want %q, %q", tt.sent, g, s, tt.want, tt.state)
			}
		}
	})
	t.Run("Exec", func(t *testing.T) {
		env := writeScript(t, t.TempDir(), "env.sh", `printf '%s|%s' "$TRACEPARENT" "$TRACESTATE"`+"\n")
		out, err := hooks.NewExec([]string{env}, 5*time.Second, 1).Run(context.Background(), job(tp))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), tp+"|vendor=opaque"; got != want {
			t.Fatalf("environment: %q, want %q", got, want)
		}
	})
}
