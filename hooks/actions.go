package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Headers a forward action sets on every delivery.
const (
	HeaderSender         = "X-Hookbay-Sender"
	HeaderName           = "X-Hookbay-Name"
	HeaderUrgencyOut     = "X-Hookbay-Urgency"
	HeaderAttempt        = "X-Hookbay-Attempt"
	HeaderRequestIDOut   = "X-Request-ID"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// DefaultMaxOutput caps what an action may answer: an inline hook cannot
// answer with more, and no more is kept in memory.
const DefaultMaxOutput = 1 << 20

// Forward POSTs the original body, byte for byte, to an internal URL. A 2xx
// answer is success and its body is the output.
type Forward struct {
	URL         string
	Timeout     time.Duration
	PassHeaders []string // original request headers to pass on (secrets are redacted at ingest)
	Client      *http.Client
	MaxOutput   int64
}

// Run delivers the job.
func (f *Forward) Run(ctx context.Context, j *Job) ([]byte, error) {
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(j.Body))
	if err != nil {
		return nil, fmt.Errorf("forward: build request: %w", err)
	}
	for _, name := range f.PassHeaders {
		for _, v := range j.Header.Values(name) {
			req.Header.Add(name, v)
		}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(HeaderSender, string(j.Sender))
	req.Header.Set(HeaderName, j.Name)
	req.Header.Set(HeaderUrgencyOut, string(j.Urgency))
	req.Header.Set(HeaderAttempt, strconv.Itoa(j.Attempts))
	if j.RequestID != "" {
		req.Header.Set(HeaderRequestIDOut, j.RequestID)
	}
	if key := j.IdempotencyKey(); key != "" {
		req.Header.Set(HeaderIdempotencyKey, key)
	}
	if tp, ts := j.Trace(); tp != "" {
		req.Header.Set(HeaderTraceparent, tp)
		if ts != "" {
			req.Header.Set(HeaderTracestate, ts)
		}
	}
	client := f.Client
	if client == nil {
		client = NoRedirectClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, secrets included
		}
		return nil, fmt.Errorf("forward to %s: %w", f.safeURL(), err)
	}
	defer resp.Body.Close()
	out, err := readCapped(resp.Body, f.maxOutput())
	var tooLarge *OutputTooLargeError
	switch {
	case resp.StatusCode/100 != 2:
		// A redirect is not followed: it would turn the POST into a GET
		// without the body, and its 2xx into a delivery that never was.
		return nil, fmt.Errorf("forward to %s: status %d: %s", f.safeURL(), resp.StatusCode, snippet(out))
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("forward to %s: %w", f.safeURL(), err)
	case err != nil:
		return nil, fmt.Errorf("forward to %s: read answer: %w", f.safeURL(), err)
	}
	return out, nil
}

// NoRedirectClient is the forward action's default client: a 3xx is the
// downstream's answer, which fails the attempt, not a place to go. Its
// transport keeps up to ForwardIdleConns connections open to each
// downstream: Go's default keeps 2, so with more workers than that most
// deliveries would pay for a new TCP (and TLS) connection.
var NoRedirectClient = &http.Client{
	Transport:     forwardTransport(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ForwardIdleConns is how many idle connections the forward action keeps
// to each downstream host: more than any sensible worker count.
const ForwardIdleConns = 256

func forwardTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * ForwardIdleConns
	t.MaxIdleConnsPerHost = ForwardIdleConns
	return t
}

// OutputTooLargeError is an action whose work succeeded but whose answer is
// over the output cap. A queued job counts it a success (its output goes
// nowhere); an inline hook cannot answer with it and asks for a retry.
type OutputTooLargeError struct{ Max int64 }

func (e *OutputTooLargeError) Error() string {
	return fmt.Sprintf("the answer is larger than the %d-byte output limit", e.Max)
}

// ErrNotStarted is an attempt that never began: no process slot came free
// before its deadline. The queue returns such a job without counting it
// and claims it again at once, so an action returns it only after waiting
// until its context's deadline.
var ErrNotStarted = errors.New("the action did not start")

// AttemptNotStarted is Classify's outcome for an attempt that never began;
// unlike the Outcome values, it is never recorded: the job goes back as it
// was.
const AttemptNotStarted Outcome = "not_started"

// Classify reads what an action's error makes of a queued attempt:
// OutcomeOK for a delivery (also an answer over the output cap after the
// work was done: a queued job's answer goes nowhere), AttemptNotStarted
// for a wait that never started the action, and OutcomeFailed for any
// other error.
func Classify(err error) Outcome {
	var tooLarge *OutputTooLargeError
	switch {
	case err == nil, errors.As(err, &tooLarge):
		return OutcomeOK
	case errors.Is(err, ErrNotStarted):
		return AttemptNotStarted
	}
	return OutcomeFailed
}

// safeURL is the URL for messages, logs and stored errors: without a
// password or query string, which may carry secrets.
func (f *Forward) safeURL() string {
	u, err := url.Parse(f.URL)
	if err != nil {
		return "the configured URL"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}

func (f *Forward) maxOutput() int64 {
	if f.MaxOutput > 0 {
		return f.MaxOutput
	}
	return DefaultMaxOutput
}

// Exec runs a command (no shell) with the body on stdin and the job's
// metadata in HOOKBAY_* environment variables. Exit status 0 is success
// and stdout is the output.
type Exec struct {
	Command   []string
	Timeout   time.Duration
	MaxOutput int64
	// Slots caps concurrent processes of this action; nil means no cap.
	Slots chan struct{}
	// HideEnv names variables of hookbay's environment the command does not
	// inherit: those the config file refers to, hookbay's own secrets.
	HideEnv []string
}

// NewExec returns an Exec action that runs at most procs processes at once.
func NewExec(command []string, timeout time.Duration, procs int) *Exec {
	if procs <= 0 {
		procs = 4
	}
	return &Exec{Command: command, Timeout: timeout, Slots: make(chan struct{}, procs)}
}

// Run delivers the job.
func (e *Exec) Run(ctx context.Context, j *Job) ([]byte, error) {
	if e.Slots != nil {
		select {
		case e.Slots <- struct{}{}:
			defer func() { <-e.Slots }()
		case <-ctx.Done():
			return nil, fmt.Errorf("exec %s: no process slot came free (%w): %w", e.Command[0], ctx.Err(), ErrNotStarted)
		}
	}
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.WaitDelay = time.Second // a child that keeps stdout open cannot hold the worker
	// The command and everything it starts form one process group, ended
	// with the attempt: a timed-out attempt leaves nothing running beside
	// its retry.
	ownProcessGroup(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.Stdin = bytes.NewReader(j.Body)
	cmd.Env = append(e.environ(),
		"HOOKBAY_SENDER="+string(j.Sender),
		"HOOKBAY_NAME="+j.Name,
		"HOOKBAY_URGENCY="+string(j.Urgency),
		"HOOKBAY_ATTEMPT="+strconv.Itoa(j.Attempts),
		"HOOKBAY_REQUEST_ID="+j.RequestID,
		"HOOKBAY_IDEMPOTENCY_KEY="+j.IdempotencyKey(),
	)
	if tp, ts := j.Trace(); tp != "" {
		// The names OpenTelemetry's environment carrier reads.
		cmd.Env = append(cmd.Env, "TRACEPARENT="+tp)
		if ts != "" {
			cmd.Env = append(cmd.Env, "TRACESTATE="+ts)
		}
	}
	max := e.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	stdout := &cappedBuffer{max: max}
	stderr := &cappedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if cmd.Process != nil {
		killGroup(cmd) // what it left running in the background ends too
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success() {
		// The command succeeded; a child it left behind held its output
		// open, and was just killed with the group. Its answer is in.
		err = nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("exec %s: %w (stderr: %s)", e.Command[0], ctx.Err(), snippet(stderr.Bytes()))
	case err != nil:
		return nil, fmt.Errorf("exec %s: %w (stderr: %s)", e.Command[0], err, snippet(stderr.Bytes()))
	case stdout.over:
		return nil, fmt.Errorf("exec %s: %w", e.Command[0], &OutputTooLargeError{Max: max})
	}
	return stdout.Bytes(), nil
}

// environ is hookbay's environment without the hidden variables.
func (e *Exec) environ() []string {
	env := os.Environ()
	if len(e.HideEnv) == 0 {
		return env
	}
	return slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(e.HideEnv, name)
	})
}

// cappedBuffer keeps the first max bytes written and notes any excess,
// without failing the writer (which would kill the child with SIGPIPE).
// The buffer is a field, not embedded: an embedded bytes.Buffer's ReadFrom
// would let io.Copy bypass Write and the cap.
type cappedBuffer struct {
	buf  bytes.Buffer
	max  int64
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - int64(b.buf.Len()); int64(len(p)) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns what was kept.
func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }

func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return b[:max], &OutputTooLargeError{Max: max}
	}
	return b, nil
}

// snippet shortens text for an error message.
func snippet(b []byte) string {
	const n = 300
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Actions maps (sender, name) to the action that delivers its jobs. Names
// without an entry use StoreAction.
type Actions map[Sender]map[string]Action

// Set registers the action for a sender's hook, webhook or event type.
func (a Actions) Set(s Sender, name string, act Action) {
	if a[s] == nil {
		a[s] = map[string]Action{}
	}
	a[s][name] = act
}

// For returns the action for a job, nil for the store action.
func (a Actions) For(s Sender, name string) Action { return a[s][name] }

// ForJob is Queue.ActionFor.
func (a Actions) ForJob(j *Job) Action { return a.For(j.Sender, j.Name) }
