package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

// EventsCommand is "hookbay events": the recorded requests.
type EventsCommand struct {
	Stdout, Stderr io.Writer
	// Actions are Go actions, which replay runs as serve would.
	Actions hooks.Actions
}

// Run dispatches list, show and replay.
func (cmd *EventsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		return fmt.Errorf("usage: hookbay events list|show ID|replay ID [flags]")
	}
	fs, sf := storeFlagSet("events "+args[0], cmd.Stderr)
	switch args[0] {
	case "list":
		sender := fs.String("sender", "", "only this sender (bubblehouse, bloomreach, svix)")
		name := fs.String("name", "", "only this hook, webhook or event name")
		since := fs.String("since", "", "only since this time (RFC 3339) or this long ago (2h)")
		limit := fs.Int("limit", 50, "at most this many, newest first")
		if err := fs.Parse(args[1:]); err != nil {
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
		reqs, err := db.FindRequests(ctx, sqlite.RequestFilter{Sender: hooks.Sender(*sender), Name: *name, Since: t, Limit: *limit})
		if err != nil {
			return err
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
	case "show", "replay":
		force := fs.Bool("force", false, "replay: also a request that was refused or was a duplicate")
		pos, err := parseArgs(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: hookbay events %s ID", args[0])
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
		if args[0] == "replay" {
			return cmd.replay(ctx, cfg, db, id, *sf.json, *force)
		}
		return cmd.show(ctx, db, id, *sf.json)
	}
	return fmt.Errorf("unknown events command %q (list, show, replay)", args[0])
}

// eventView is an event as printed with --json.
type eventView struct {
	ID          int64               `json:"id"`
	ReceivedAt  time.Time           `json:"received_at"`
	Sender      hooks.Sender        `json:"sender"`
	Name        string              `json:"name"`
	RequestID   string              `json:"request_id"`
	Urgency     hooks.Urgency       `json:"urgency"`
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	RemoteAddr  string              `json:"remote_addr"`
	Header      map[string][]string `json:"headers,omitempty"`
	Body        json.RawMessage     `json:"body,omitempty"`
	BodyText    string              `json:"body_text,omitempty"`
	Status      int                 `json:"status"`
	Response    json.RawMessage     `json:"response,omitempty"`
	LatencyMS   float64             `json:"latency_ms"`
	Notes       []string            `json:"notes"`
	DuplicateOf int64               `json:"duplicate_of,omitempty"`
	Jobs        []jobView           `json:"jobs,omitempty"`
}

func rawJSON(b []byte) (json.RawMessage, string) {
	if len(b) == 0 {
		return nil, ""
	}
	if json.Valid(b) {
		return json.RawMessage(b), ""
	}
	return nil, string(b)
}

func eventViews(reqs []*hooks.Request) []eventView {
	out := make([]eventView, 0, len(reqs))
	for _, r := range reqs {
		v := eventView{ID: r.ID, ReceivedAt: r.ReceivedAt, Sender: r.Sender, Name: r.Name, RequestID: r.RequestID,
			Urgency: r.Urgency, Method: r.Method, Path: r.Path, RemoteAddr: r.RemoteAddr, Status: r.Status,
			LatencyMS: float64(r.Latency.Microseconds()) / 1000, Notes: r.Notes, DuplicateOf: r.DuplicateOf}
		v.Response, _ = rawJSON(r.Response)
		out = append(out, v)
	}
	return out
}

func (cmd *EventsCommand) show(ctx context.Context, db *sqlite.DB, id int64, asJSON bool) error {
	reqs, err := db.FindRequests(ctx, sqlite.RequestFilter{ID: id, Limit: 1})
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return fmt.Errorf("no event %d", id)
	}
	r := reqs[0]
	v := eventViews(reqs)[0]
	v.Header = r.Header
	v.Body, v.BodyText = rawJSON(r.Body)
	jobs, err := db.FindJobs(ctx, sqlite.JobFilter{RequestRef: id})
	if err != nil {
		return err
	}
	if v.Jobs, err = jobViews(ctx, db, jobs, true); err != nil {
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
	for k, vals := range r.Header {
		fmt.Fprintf(w, "  %s: %s\n", k, strings.Join(vals, ", "))
	}
	fmt.Fprintf(w, "\nbody (%d bytes):\n  %s\n", len(r.Body), r.Body)
	fmt.Fprintf(w, "\nanswered %d in %s:\n  %s\n", r.Status, r.Latency, r.Response)
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
	// StoredOnly says no action is configured for the job: the store
	// action ran, and nothing was delivered.
	StoredOnly bool            `json:"stored_only,omitempty"`
	Error      string          `json:"error,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
}

// replay runs the action for a recorded request now, without the sender,
// as new jobs whose attempts are recorded like any other: one per customer
// of a batch, else one.
func (cmd *EventsCommand) replay(ctx context.Context, cfg config.Config, db *sqlite.DB, id int64, asJSON, force bool) error {
	dispatch, err := cfg.Dispatch(cmd.Actions)
	if err != nil {
		return err
	}
	jobs, err := db.ReplayJobs(ctx, id, time.Now(), time.Duration(cfg.Queue.Lease), force)
	if err != nil {
		return err
	}
	var results []replayResult
	lease := time.Duration(cfg.Queue.Lease)
	for _, j := range jobs {
		// Each job is held for its own run: a long batch must not let a
		// running server take the jobs still waiting here.
		if held, err := db.ExtendLease(ctx, j, time.Now().Add(lease)); err != nil {
			return err
		} else if !held {
			results = append(results, replayResult{Job: j.ID, Name: j.Name, Error: "taken by a running hookbay"})
			continue
		}
		action := dispatch.Queued(j)
		storedOnly := action == nil
		if storedOnly {
			action = hooks.StoreAction
		}
		j.AttemptStarted = time.Now()
		actx, cancel := context.WithDeadline(ctx, j.LockedUntil.Add(-min(5*time.Second, lease/4)))
		out, runErr := action.Run(actx, j)
		cancel()
		j.AttemptDuration = time.Since(j.AttemptStarted)
		// The queue's reading of the attempt, so that a replay counts as a
		// worker's run would.
		outcome := hooks.Classify(runErr)
		r := replayResult{Job: j.ID, Name: j.Name, OK: outcome == hooks.OutcomeOK, StoredOnly: storedOnly}
		if runErr != nil {
			r.Error = runErr.Error()
		}
		switch outcome {
		case hooks.OutcomeFailed:
			// Failed: the job stays queued for a running hookbay to
			// retry, under the configured policy.
			if _, _, err := cfg.Queue.Policy().Fail(ctx, db, j, time.Now(), runErr); err != nil {
				return err
			}
		case hooks.AttemptNotStarted:
			j.AttemptStarted = time.Time{} // never ran: no attempt to record
			if err := db.ReleaseJobs(ctx, []*hooks.Job{j}); err != nil {
				return err
			}
		default:
			if err := db.CompleteJobs(ctx, []*hooks.Job{j}, time.Now()); err != nil {
				return err
			}
		}
		r.Output, _ = rawJSON(out)
		results = append(results, r)
	}
	first := results[0]
	summary := struct {
		Event  int64           `json:"event"`
		Job    int64           `json:"job"`
		OK     bool            `json:"ok"`
		Error  string          `json:"error,omitempty"`
		Output json.RawMessage `json:"output,omitempty"`
		Jobs   []replayResult  `json:"jobs"`
	}{Event: id, Job: first.Job, OK: true, Error: first.Error, Output: first.Output, Jobs: results}
	for _, r := range results {
		summary.OK = summary.OK && r.OK
	}
	if asJSON {
		return printJSON(cmd.Stdout, summary)
	}
	for _, r := range results {
		if !r.OK {
			fmt.Fprintf(cmd.Stdout, "event %d replayed as job %d (%s): failed: %s (queued for retry)\n", id, r.Job, r.Name, r.Error)
			continue
		}
		if r.StoredOnly {
			fmt.Fprintf(cmd.Stdout, "event %d replayed as job %d (%s): stored only, nothing delivered: no action is configured for it (pass --config with the one serve uses)\n", id, r.Job, r.Name)
			continue
		}
		fmt.Fprintf(cmd.Stdout, "event %d replayed as job %d (%s): ok %s\n", id, r.Job, r.Name, r.Output)
	}
	return nil
}
