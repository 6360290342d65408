package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// JobsCommand is "hookbay jobs": the delivery queue.
type JobsCommand struct {
	Stdout, Stderr io.Writer
}

// jobStates are the states a job can be in, by the names the store, the
// JSON and --state all use.
var jobStates = []hooks.JobState{hooks.JobAvailable, hooks.JobRunning, hooks.JobDone, hooks.JobDead}

// jobStatesText says what each state means, for usage and errors.
const jobStatesText = "available (waiting for a worker: new, or due for a retry), running (leased by a worker pool: being delivered, or claimed and next in its line), done or dead"

// Run dispatches list and retry.
func (cmd *JobsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: hookbay jobs list|retry [flags] (hookbay jobs -h lists their flags)")
	}
	if isHelp(args[0]) {
		return groupHelp(cmd.Stdout, "jobs", []string{"list", "retry"}, func(a []string) error { return cmd.Run(ctx, a) })
	}
	switch args[0] {
	case "list":
		return cmd.list(ctx, args[1:])
	case "retry":
		return cmd.retry(ctx, args[1:])
	}
	return fmt.Errorf("unknown jobs command %q (list, retry)", args[0])
}

func (cmd *JobsCommand) list(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("jobs list", "[flags]",
		"The delivery queue, oldest first: each job's sender, name and request ID, state,\nattempts, next run and last error.")
	state := fs.String("state", "", "only jobs in this state: "+jobStatesText)
	name := fs.String("name", "", "only this hook, webhook or event name")
	limit := fs.Int("limit", 100, "at most this many, oldest first")
	if err := parseOnlyFlags(fs, args, cmd.Stdout, cmd.Stderr); err != nil {
		return err
	}
	st, err := parseJobState(*state)
	if err != nil {
		return err
	}
	db, err := sf.open()
	if err != nil {
		return err
	}
	defer db.Close()
	jobs, err := db.FindJobs(ctx, hooks.JobFilter{State: st, Name: *name, Limit: *limit})
	if err != nil {
		return err
	}
	views, err := jobViews(ctx, db, jobs, false, nil)
	if err != nil {
		return err
	}
	if *sf.json {
		return printJSON(cmd.Stdout, views)
	}
	tw := tabwriter.NewWriter(cmd.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tSENDER\tNAME\tREQUEST ID\tURGENCY\tSTATE\tATTEMPTS\tNEXT RUN\tLAST ERROR")
	for _, j := range views {
		next := "-"
		if j.State == hooks.JobAvailable {
			next = j.ScheduledAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.RequestRef, j.Sender, j.Name,
			printable([]byte(j.RequestID)), j.Urgency, j.State, j.Attempts, next, printable([]byte(j.LastError)))
	}
	return tw.Flush()
}

// parseJobState reads --state: "" (every state) or one of jobStates.
func parseJobState(s string) (hooks.JobState, error) {
	if s == "" {
		return "", nil
	}
	for _, st := range jobStates {
		if hooks.JobState(s) == st {
			return st, nil
		}
	}
	return "", fmt.Errorf("--state %q: want %s", s, jobStatesText)
}

func (cmd *JobsCommand) retry(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("jobs retry", "ID... | --dead [--since T] [flags]",
		`Queues dead jobs, or jobs waiting for a retry, to run now; a running hookbay
delivers them. A dead job starts over with a full set of attempts. A job that
is done is delivered again with "hookbay events replay EVENT".

Exit status: 0 when every job named was queued again, 2 when one was not
(no such job, or it is done or running).`)
	dead := fs.Bool("dead", false, "retry every dead job")
	since := fs.String("since", "", "with --dead: only jobs that died since this time (RFC 3339) or this long ago (2h)")
	pos, err := parseFlags(fs, args, cmd.Stdout, cmd.Stderr)
	if err != nil {
		return err
	}
	if *dead == (len(pos) > 0) {
		return fmt.Errorf("usage: hookbay jobs retry ID... | hookbay jobs retry --dead [--since T]")
	}
	if *since != "" && !*dead {
		return fmt.Errorf("--since goes with --dead")
	}
	now := time.Now()
	t, err := parseSince(*since, now)
	if err != nil {
		return err
	}
	var ids []int64
	for _, a := range pos {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return fmt.Errorf("job ID %q is not a number", a)
		}
		ids = append(ids, id)
	}
	db, err := sf.open()
	if err != nil {
		return err
	}
	defer db.Close()
	var n int64
	missed := []string{}
	if *dead {
		if n, err = db.RetryDead(ctx, t, now); err != nil {
			return err
		}
	}
	// One at a time, so that the answer can say which were not retried.
	for _, id := range ids {
		k, err := db.RetryJobs(ctx, []int64{id}, now)
		if err != nil {
			return err
		}
		if k == 0 {
			missed = append(missed, strconv.FormatInt(id, 10))
		}
		n += k
	}
	if *sf.json {
		if err := printJSON(cmd.Stdout, map[string]any{"retried": n, "not_retried": missed}); err != nil {
			return err
		}
	} else if n > 0 || len(missed) == 0 {
		fmt.Fprintf(cmd.Stdout, "%d job(s) queued again; a running hookbay delivers them\n", n)
	}
	if len(missed) > 0 {
		return fmt.Errorf("job(s) %s not queued again: no such job, or it is done or running (retry takes dead jobs and jobs waiting for a retry)",
			strings.Join(missed, ", "))
	}
	return nil
}

// jobView is a job as printed with --json.
type jobView struct {
	ID          int64            `json:"id"`
	RequestRef  int64            `json:"event"`
	Sender      hooks.Sender     `json:"sender"`
	Name        string           `json:"name"`
	RequestID   string           `json:"request_id"`
	Urgency     hooks.Urgency    `json:"urgency"`
	State       hooks.JobState   `json:"state"`
	Attempts    int              `json:"attempts"`
	ScheduledAt time.Time        `json:"scheduled_at"`
	LastError   string           `json:"last_error,omitempty"`
	History     []*hooks.Attempt `json:"history,omitempty"`
}

// jobViews returns the views of jobs, with each attempt when history is
// set. The request IDs come from req when it is the jobs' request, else
// from the store, once per request.
func jobViews(ctx context.Context, db Store, jobs []*hooks.Job, history bool, req *hooks.Request) ([]jobView, error) {
	out := make([]jobView, 0, len(jobs))
	requestIDs := map[int64]string{}
	if req != nil {
		requestIDs[req.ID] = req.RequestID
	}
	for _, j := range jobs {
		rid, ok := requestIDs[j.RequestRef]
		if !ok {
			reqs, err := db.FindRequests(ctx, hooks.RequestFilter{ID: j.RequestRef, Limit: 1})
			if err != nil {
				return nil, err
			}
			if len(reqs) == 1 {
				rid = reqs[0].RequestID
			}
			requestIDs[j.RequestRef] = rid
		}
		v := jobView{ID: j.ID, RequestRef: j.RequestRef, Sender: j.Sender, Name: j.Name, RequestID: rid, Urgency: j.Urgency,
			State: j.State, Attempts: j.Attempts, ScheduledAt: j.ScheduledAt, LastError: j.LastError}
		if history {
			var err error
			if v.History, err = db.FindAttempts(ctx, j.ID); err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	return out, nil
}
