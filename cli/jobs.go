package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

// JobsCommand is "hookbay jobs": the delivery queue.
type JobsCommand struct {
	Stdout, Stderr io.Writer
}

// Run dispatches list and retry.
func (cmd *JobsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		return fmt.Errorf("usage: hookbay jobs list|retry [flags]")
	}
	fs, sf := storeFlagSet("jobs "+args[0], cmd.Stderr)
	switch args[0] {
	case "list":
		state := fs.String("state", "", "only jobs in this state: pending, running, done, dead")
		name := fs.String("name", "", "only this hook, webhook or event name")
		limit := fs.Int("limit", 100, "at most this many, oldest first")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		st := hooks.JobState(*state)
		switch st {
		case "pending":
			st = hooks.JobAvailable
		case "", hooks.JobAvailable, hooks.JobRunning, hooks.JobDone, hooks.JobDead:
		default:
			return fmt.Errorf("--state %q: want pending, running, done or dead", *state)
		}
		db, err := sf.open()
		if err != nil {
			return err
		}
		defer db.Close()
		jobs, err := db.FindJobs(ctx, sqlite.JobFilter{State: st, Name: *name, Limit: *limit})
		if err != nil {
			return err
		}
		views, err := jobViews(ctx, db, jobs, false)
		if err != nil {
			return err
		}
		if *sf.json {
			return printJSON(cmd.Stdout, views)
		}
		tw := tabwriter.NewWriter(cmd.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEVENT\tNAME\tURGENCY\tSTATE\tATTEMPTS\tNEXT RUN\tLAST ERROR")
		for _, j := range views {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.RequestRef, j.Name, j.Urgency, j.State, j.Attempts,
				j.ScheduledAt.Format(time.RFC3339), j.LastError)
		}
		return tw.Flush()
	case "retry":
		dead := fs.Bool("dead", false, "retry every dead job")
		since := fs.String("since", "", "with --dead: only jobs that died since this time (RFC 3339) or this long ago (2h)")
		pos, err := parseArgs(fs, args[1:])
		if err != nil {
			return err
		}
		if *dead == (len(pos) > 0) {
			return fmt.Errorf("usage: hookbay jobs retry ID... | hookbay jobs retry --dead [--since T]")
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
		if *dead {
			n, err = db.RetryDead(ctx, t, now)
		} else {
			n, err = db.RetryJobs(ctx, ids, now)
		}
		if err != nil {
			return err
		}
		if *sf.json {
			return printJSON(cmd.Stdout, map[string]int64{"retried": n})
		}
		fmt.Fprintf(cmd.Stdout, "%d job(s) queued again; a running hookbay delivers them\n", n)
		return nil
	}
	return fmt.Errorf("unknown jobs command %q (list, retry)", args[0])
}

type jobView struct {
	ID          int64            `json:"id"`
	RequestRef  int64            `json:"event"`
	Name        string           `json:"name"`
	Urgency     hooks.Urgency    `json:"urgency"`
	State       hooks.JobState   `json:"state"`
	Attempts    int              `json:"attempts"`
	ScheduledAt time.Time        `json:"scheduled_at"`
	LastError   string           `json:"last_error,omitempty"`
	History     []*hooks.Attempt `json:"history,omitempty"`
}

func jobViews(ctx context.Context, db *sqlite.DB, jobs []*hooks.Job, history bool) ([]jobView, error) {
	out := make([]jobView, 0, len(jobs))
	for _, j := range jobs {
		v := jobView{ID: j.ID, RequestRef: j.RequestRef, Name: j.Name, Urgency: j.Urgency, State: j.State,
			Attempts: j.Attempts, ScheduledAt: j.ScheduledAt, LastError: j.LastError}
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
