package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// FaultsCommand is "hookbay faults": answers injected on purpose, so that
// QA can watch how a sender retries. A running server picks changes up
// within a second.
type FaultsCommand struct {
	Stdout, Stderr io.Writer
}

// Run dispatches add, list and clear.
func (cmd *FaultsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		return fmt.Errorf("usage: hookbay faults add|list|clear [flags]")
	}
	fs, sf := storeFlagSet("faults "+args[0], cmd.Stderr)
	sender := fs.String("sender", "", "bubblehouse, bloomreach or svix")
	switch args[0] {
	case "add":
		name := fs.String("name", "", "only this hook, webhook, Svix endpoint or event type (default: all)")
		status := fs.Int("status", 0, "answer with this HTTP status instead of processing")
		delay := fs.Duration("delay", 0, "wait this long, then process as usual")
		drop := fs.Bool("drop", false, "close the connection without an answer")
		count := fs.Int("count", -1, "apply to this many requests, then stop (default: no limit)")
		percent := fs.Int("percent", 100, "apply to this share of matching requests")
		dur := fs.Duration("for", 0, "expire after this long (default: until cleared)")
		if _, err := parseArgs(fs, args[1:]); err != nil {
			return err
		}
		now := time.Now()
		f := &hooks.Fault{Sender: hooks.Sender(*sender), Name: *name, Remaining: *count, Percent: *percent, CreatedAt: now}
		switch {
		case *status != 0 && *delay == 0 && !*drop:
			f.Kind, f.Status = hooks.FaultStatus, *status
		case *delay != 0 && *status == 0 && !*drop:
			f.Kind, f.Delay = hooks.FaultDelay, *delay
		case *drop && *status == 0 && *delay == 0:
			f.Kind = hooks.FaultDrop
		default:
			return fmt.Errorf("exactly one of --status, --delay or --drop is required")
		}
		if *count == 0 || *count < -1 {
			return fmt.Errorf("--count %d: want a positive number", *count)
		}
		if *dur > 0 {
			f.ExpiresAt = now.Add(*dur)
		}
		db, err := sf.open()
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.AddFault(ctx, f); err != nil {
			return err
		}
		if *sf.json {
			return printJSON(cmd.Stdout, f)
		}
		fmt.Fprintf(cmd.Stdout, "added %s for %s %s\n", f, f.Sender, orAll(f.Name))
		return nil
	case "list":
		if _, err := parseArgs(fs, args[1:]); err != nil {
			return err
		}
		db, err := sf.open()
		if err != nil {
			return err
		}
		defer db.Close()
		list, err := db.Faults(ctx, time.Now())
		if err != nil {
			return err
		}
		if *sf.json {
			return printJSON(cmd.Stdout, list)
		}
		tw := tabwriter.NewWriter(cmd.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSENDER\tNAME\tFAULT\tREMAINING\tPERCENT\tEXPIRES")
		for _, f := range list {
			rem, exp := "no limit", "when cleared"
			if f.Remaining >= 0 {
				rem = fmt.Sprint(f.Remaining)
			}
			if !f.ExpiresAt.IsZero() {
				exp = f.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d%%\t%s\n", f.ID, f.Sender, orAll(f.Name), f, rem, f.Percent, exp)
		}
		return tw.Flush()
	case "clear":
		if _, err := parseArgs(fs, args[1:]); err != nil {
			return err
		}
		db, err := sf.open()
		if err != nil {
			return err
		}
		defer db.Close()
		n, err := db.ClearFaults(ctx, hooks.Sender(*sender))
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.Stdout, "%d fault(s) cleared, expired ones included\n", n)
		return nil
	}
	return fmt.Errorf("unknown faults command %q (add, list, clear)", args[0])
}

func orAll(name string) string {
	if name == "" {
		return "(all)"
	}
	return name
}
