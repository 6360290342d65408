package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// EventsCommand is "hookbay events": the recorded requests.
type EventsCommand struct {
	Stdout, Stderr io.Writer
	// Actions are Go actions, which replay runs as serve would.
	Actions hooks.Actions
}

// Run dispatches list, show and replay.
func (cmd *EventsCommand) Run(ctx context.Context, args []string) error {
	subs := []string{"list", "show", "replay"}
	if len(args) == 0 {
		return errors.New("usage: hookbay events list|show ID|replay ID [flags] (hookbay events -h lists their flags)")
	}
	if isHelp(args[0]) {
		return groupHelp(cmd.Stdout, "events", subs, func(a []string) error { return cmd.Run(ctx, a) })
	}
	switch args[0] {
	case "list":
		return cmd.list(ctx, args[1:])
	case "show", "replay":
		return cmd.showOrReplay(ctx, args[0], args[1:])
	}
	return fmt.Errorf("unknown events command %q (list, show, replay)", args[0])
}

func (cmd *EventsCommand) list(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("events list", "[flags]", `The recorded requests, newest first: every request, accepted or refused, with
the answer it got. With --follow, the last ones oldest first, then each new
one as it is recorded, with what its answer means to the sender, until
Ctrl-C (with --json: one JSON object a line).`)
	sender := fs.String("sender", "", "only this sender: "+sendersText)
	name := fs.String("name", "", "only this hook, webhook or event name")
	since := fs.String("since", "", "only since this time (RFC 3339) or this long ago (2h)")
	limit := fs.Int("limit", 50, "at most this many, newest first")
	follow := fs.Bool("follow", false, "keep printing new requests as they are recorded, until Ctrl-C")
	if err := parseOnlyFlags(fs, args, cmd.Stdout, cmd.Stderr); err != nil {
		return err
	}
	s, err := parseSender(*sender)
	if err != nil {
		return err
	}
	t, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	db, err := sf.open()
	if err != nil {
		return err
	}
	defer db.Close()
	f := hooks.RequestFilter{Sender: s, Name: *name, Since: t, Limit: *limit}
	reqs, err := db.FindRequests(ctx, f)
	if err != nil {
		return err
	}
	if *follow {
		return cmd.follow(ctx, db, f, reqs, *sf.json)
	}
	if *sf.json {
		return printJSON(cmd.Stdout, eventViews(reqs))
	}
	tw := tabwriter.NewWriter(cmd.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tSENDER\tNAME\tREQUEST ID\tURGENCY\tSTATUS\tNOTE")
	for _, r := range reqs {
		note := ""
		if len(r.Notes) > 0 {
			note = r.Notes[len(r.Notes)-1]
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.ReceivedAt.Format(time.RFC3339), r.Sender, r.Name,
			r.RequestID, r.Urgency, r.Status, note)
	}
	return tw.Flush()
}

// followInterval is how often "events list --follow" looks for new
// records.
var followInterval = 500 * time.Millisecond

// followPage is how many new records one look reads at a time.
const followPage = 500

// follow prints recent (newest first, as read) oldest first, then every
// record newer than the last printed, every followInterval, until ctx
// ends (Ctrl-C), which is not an error. It reads the store by id, so that
// it works whichever process records, and costs the writers nothing.
func (cmd *EventsCommand) follow(ctx context.Context, db Store, f hooks.RequestFilter, recent []*hooks.Request, asJSON bool) error {
	show := func(reqs []*hooks.Request) error {
		for i := len(reqs) - 1; i >= 0; i-- { // oldest first
			r := reqs[i]
			if asJSON {
				v := followView{eventView: eventViews([]*hooks.Request{r})[0], Verdict: hooks.Judge(r.Sender, r.Name, r.Status, r.Response)}
				buf, err := json.Marshal(v)
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintf(cmd.Stdout, "%s\n", buf); err != nil {
					return err
				}
				continue
			}
			_, err := fmt.Fprintf(cmd.Stdout, "%-7d %s  %-11s %-22s %-26s %-9s %3d  %s\n", r.ID, r.ReceivedAt.Format("15:04:05.000"),
				r.Sender, printable([]byte(r.Name)), printable([]byte(r.RequestID)), r.Urgency, r.Status,
				hooks.Judge(r.Sender, r.Name, r.Status, r.Response).Text)
			if err != nil {
				return err
			}
		}
		return nil
	}
	if !asJSON {
		fmt.Fprintf(cmd.Stdout, "%-7s %-12s  %-11s %-22s %-26s %-9s %3s  %s\n", "ID", "RECEIVED", "SENDER", "NAME", "REQUEST ID", "URGENCY", "ST.", "WHAT THE ANSWER MEANS TO THE SENDER")
	}
	if err := show(recent); err != nil {
		return err
	}
	var cursor int64
	if len(recent) > 0 {
		cursor = recent[0].ID
	} else {
		// Nothing matched: start after the newest record of all.
		newest, err := db.FindRequests(ctx, hooks.RequestFilter{Limit: 1})
		if err != nil {
			return err
		}
		if len(newest) > 0 {
			cursor = newest[0].ID
		}
	}
	f.Since = time.Time{} // the cursor bounds what is new
	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// Newest first, page after page, down to the cursor.
		var fresh []*hooks.Request
		page := f
		page.Limit, page.BeforeID = followPage, 0
		for {
			reqs, err := db.FindRequests(ctx, page)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			done := len(reqs) < followPage
			for _, r := range reqs {
				if r.ID <= cursor {
					done = true
					break
				}
				fresh = append(fresh, r)
			}
			if done {
				break
			}
			page.BeforeID = reqs[len(reqs)-1].ID
		}
		if len(fresh) == 0 {
			continue
		}
		cursor = fresh[0].ID
		if err := show(fresh); err != nil {
			return err
		}
	}
}

// followView is a followed record with --json: the event, and what its
// answer means to the sender.
type followView struct {
	eventView
	Verdict hooks.Verdict `json:"verdict"`
}

var eventsShowAbout = fmt.Sprintf(`One recorded request: its headers (secrets redacted), body, answer, notes,
and its jobs with every attempt. With --json, a body that is not JSON is
"body_text" (UTF-8 text) or "body_base64" (other bytes) instead of "body";
so is a body nested deeper than intake accepts (%d levels).`, hooks.MaxJSONDepth)

const (
	eventsReplayAbout = `Runs the action configured for a recorded request again now, without its
sender, as the queue's workers run it: new jobs (one per customer of a batch),
their attempts recorded like any other. A job that fails stays queued for a
running hookbay to retry. Pass --config with the file serve uses, so that the
same actions run.

Exit status: 0 when every job succeeded, 1 when one did not, 2 when the
replay could not run (no such event, a refused request without --force).`
)

func (cmd *EventsCommand) showOrReplay(ctx context.Context, sub string, args []string) error {
	about := eventsShowAbout
	if sub == "replay" {
		about = eventsReplayAbout
	}
	fs, sf := storeFlagSet("events "+sub, "ID [flags]", about)
	var force *bool
	if sub == "replay" {
		force = fs.Bool("force", false, "also a request that was refused or was a duplicate")
	}
	pos, err := parseFlags(fs, args, cmd.Stdout, cmd.Stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: hookbay events %s ID [flags]", sub)
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("event ID %q is not a number", pos[0])
	}
	cfg, db, err := sf.load()
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "replay" {
		return cmd.replay(ctx, cfg, db, id, *sf.json, *force)
	}
	return cmd.show(ctx, db, id, *sf.json)
}

// eventView is an event as printed with --json. Stored bodies are bytes:
// each is printed as JSON ("body") when it is JSON that any reader can
// take, else as text ("body_text") or base64 ("body_base64"); see
// encodeBody.
type eventView struct {
	ID             int64               `json:"id"`
	ReceivedAt     time.Time           `json:"received_at"`
	Sender         hooks.Sender        `json:"sender"`
	Name           string              `json:"name"`
	RequestID      string              `json:"request_id"`
	Urgency        hooks.Urgency       `json:"urgency"`
	Method         string              `json:"method"`
	Path           string              `json:"path"`
	RemoteAddr     string              `json:"remote_addr"`
	Header         map[string][]string `json:"headers,omitempty"`
	Body           json.RawMessage     `json:"body,omitempty"`
	BodyText       string              `json:"body_text,omitempty"`
	BodyBase64     string              `json:"body_base64,omitempty"`
	Status         int                 `json:"status"`
	Response       json.RawMessage     `json:"response,omitempty"`
	ResponseText   string              `json:"response_text,omitempty"`
	ResponseBase64 string              `json:"response_base64,omitempty"`
	LatencyMS      float64             `json:"latency_ms"`
	Notes          []string            `json:"notes"`
	DuplicateOf    int64               `json:"duplicate_of,omitempty"`
	Jobs           []jobView           `json:"jobs,omitempty"`
}

// encodeBody returns stored bytes as the CLI prints them in JSON: as raw
// JSON when they are JSON that intake would accept (UTF-8, nested at most
// hooks.MaxJSONDepth deep, so well within any reader's limits once
// embedded); else as text when they are valid UTF-8; else as base64. Every
// byte survives, and the output is always valid JSON, whatever a refused
// request left on record.
func encodeBody(b []byte) (raw json.RawMessage, text, b64 string) {
	switch {
	case len(b) == 0:
		return nil, "", ""
	case hooks.CheckText(b) == nil && hooks.CheckDepth(b) == nil && json.Valid(b):
		return json.RawMessage(b), "", ""
	case utf8.Valid(b):
		return nil, string(b), ""
	}
	return nil, "", base64.StdEncoding.EncodeToString(b)
}

// printable returns stored bytes for a terminal: as they are when they are
// UTF-8 text, else quoted, so that no control sequence a sender sent
// reaches the terminal.
func printable(b []byte) string {
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r'
	}) {
		return string(b)
	}
	return strconv.Quote(string(b))
}

func eventViews(reqs []*hooks.Request) []eventView {
	out := make([]eventView, 0, len(reqs))
	for _, r := range reqs {
		v := eventView{ID: r.ID, ReceivedAt: r.ReceivedAt, Sender: r.Sender, Name: r.Name, RequestID: r.RequestID,
			Urgency: r.Urgency, Method: r.Method, Path: r.Path, RemoteAddr: r.RemoteAddr, Status: r.Status,
			LatencyMS: float64(r.Latency.Microseconds()) / 1000, Notes: r.Notes, DuplicateOf: r.DuplicateOf}
		v.Response, v.ResponseText, v.ResponseBase64 = encodeBody(r.Response)
		out = append(out, v)
	}
	return out
}

func (cmd *EventsCommand) show(ctx context.Context, db Store, id int64, asJSON bool) error {
	reqs, err := db.FindRequests(ctx, hooks.RequestFilter{ID: id, Limit: 1})
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return fmt.Errorf("no event %d", id)
	}
	r := reqs[0]
	v := eventViews(reqs)[0]
	v.Header = r.Header
	v.Body, v.BodyText, v.BodyBase64 = encodeBody(r.Body)
	jobs, err := db.FindJobs(ctx, hooks.JobFilter{RequestRef: id})
	if err != nil {
		return err
	}
	if v.Jobs, err = jobViews(ctx, db, jobs, true, r); err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.Stdout, v)
	}
	w := cmd.Stdout
	fmt.Fprintf(w, "event %d  %s %s  received %s from %s\n", r.ID, r.Sender, r.Name, r.ReceivedAt.Format(time.RFC3339Nano), r.RemoteAddr)
	fmt.Fprintf(w, "request ID %q  urgency %s  %s %s\n", r.RequestID, r.Urgency, r.Method, r.Path)
	if r.DuplicateOf != 0 {
		fmt.Fprintf(w, "duplicate of event %d\n", r.DuplicateOf)
	}
	fmt.Fprintln(w, "\nheaders:")
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		fmt.Fprintf(w, "  %s: %s\n", printable([]byte(k)), printable([]byte(strings.Join(r.Header[k], ", "))))
	}
	fmt.Fprintf(w, "\nbody (%d bytes):\n  %s\n", len(r.Body), printable(r.Body))
	fmt.Fprintf(w, "\nanswered %d in %s:\n  %s\n", r.Status, r.Latency, printable(r.Response))
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	for _, j := range v.Jobs {
		fmt.Fprintf(w, "\njob %d: %s, %d attempt(s)", j.ID, j.State, j.Attempts)
		if j.LastError != "" {
			fmt.Fprintf(w, ", last error: %s", j.LastError)
		}
		fmt.Fprintln(w)
		for _, a := range j.History {
			fmt.Fprintf(w, "  attempt %d at %s took %s: %s %s\n", a.Attempt, a.StartedAt.Format(time.RFC3339), a.Duration, a.Outcome, a.Error)
		}
	}
	return nil
}

// replayResult is one replayed job's outcome.
type replayResult struct {
	Job  int64  `json:"job"`
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Outcome is the attempt's recorded outcome (ok, failed, dead,
	// interrupted), not_started, or taken when a running hookbay took the
	// job first.
	Outcome hooks.Outcome `json:"outcome"`
	// StoredOnly says no action is configured for the job: the store
	// action ran, and nothing was delivered.
	StoredOnly   bool            `json:"stored_only,omitempty"`
	Error        string          `json:"error,omitempty"`
	RetryAt      *time.Time      `json:"retry_at,omitempty"`
	Output       json.RawMessage `json:"output,omitempty"`
	OutputText   string          `json:"output_text,omitempty"`
	OutputBase64 string          `json:"output_base64,omitempty"`
}

// replay runs the action for a recorded request now, without the sender,
// through the executor the queue's workers use: new jobs whose attempts
// are recorded like any other, one per customer of a batch, else one. It
// returns a negativeError (exit 1) unless every job succeeded.
func (cmd *EventsCommand) replay(ctx context.Context, cfg config.Config, db Store, id int64, asJSON, force bool) error {
	dispatch, err := cfg.Dispatch(cmd.Actions)
	if err != nil {
		return err
	}
	x := &hooks.Executor{Store: db, Policy: cfg.Queue.Policy(), Lease: time.Duration(cfg.Queue.Lease)}
	replayed, err := x.Replay(ctx, id, force, dispatch.Queued)
	if err != nil && len(replayed) == 0 {
		return err
	}
	results := make([]replayResult, 0, len(replayed))
	failed := 0
	for _, r := range replayed {
		v := replayResult{Job: r.Job.ID, Name: r.Job.Name, OK: r.OK(), Outcome: r.Outcome, StoredOnly: r.StoredOnly}
		if r.Taken {
			v.Outcome, v.Error = "taken", "taken by a running hookbay before its turn came"
		} else if r.Err != nil {
			v.Error = r.Err.Error()
		}
		if !r.RetryAt.IsZero() {
			v.RetryAt = &r.RetryAt
		}
		v.Output, v.OutputText, v.OutputBase64 = encodeBody(r.Output)
		if !v.OK {
			failed++
		}
		results = append(results, v)
	}
	if asJSON {
		first := results[0]
		summary := struct {
			Event      int64           `json:"event"`
			Job        int64           `json:"job"`
			OK         bool            `json:"ok"`
			Error      string          `json:"error,omitempty"`
			Output     json.RawMessage `json:"output,omitempty"`
			OutputText string          `json:"output_text,omitempty"`
			Jobs       []replayResult  `json:"jobs"`
		}{Event: id, Job: first.Job, OK: failed == 0 && err == nil, Error: first.Error, Output: first.Output,
			OutputText: first.OutputText, Jobs: results}
		if perr := printJSON(cmd.Stdout, summary); perr != nil {
			return perr
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(cmd.Stdout, "event %d replayed as job %d (%s): %s\n", id, r.Job, r.Name, replayLine(r))
		}
	}
	switch {
	case err != nil:
		return err // stopped part way: the jobs not run went back to the queue
	case failed > 0:
		return answerNo("replay of event %d: %d of %d job(s) did not succeed", id, failed, len(results))
	}
	return nil
}

// replayLine says how one replayed job ended, and what happens to it next.
func replayLine(r replayResult) string {
	switch r.Outcome {
	case hooks.OutcomeOK:
		if r.StoredOnly {
			return "stored only, nothing delivered: no action is configured for it (pass --config with the one serve uses)"
		}
		if r.Error != "" { // the work was done; the answer was over the cap
			return "ok (" + r.Error + ")"
		}
		if r.OutputText != "" {
			return "ok " + strconv.Quote(r.OutputText)
		}
		return "ok " + string(r.Output)
	case hooks.OutcomeFailed:
		return fmt.Sprintf("failed: %s (queued for a retry at %s)", r.Error, r.RetryAt.Format(time.RFC3339))
	case hooks.OutcomeDead:
		return fmt.Sprintf("failed: %s (dead: the retry policy allows no more attempts; \"hookbay jobs retry %d\" queues it again)", r.Error, r.Job)
	case hooks.AttemptNotStarted:
		return "not started: " + r.Error + " (back in the queue)"
	case hooks.OutcomeInterrupted:
		return "interrupted (back in the queue)"
	}
	return r.Error
}
