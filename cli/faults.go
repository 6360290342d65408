package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
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

// Run dispatches add, list, remove and clear.
func (cmd *FaultsCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: hookbay faults add|list|remove ID|clear --all [flags] (hookbay faults -h lists their flags)")
	}
	if isHelp(args[0]) {
		return groupHelp(cmd.Stdout, "faults", []string{"add", "list", "remove", "clear"}, func(a []string) error { return cmd.Run(ctx, a) })
	}
	switch args[0] {
	case "add":
		return cmd.add(ctx, args[1:])
	case "list":
		return cmd.list(ctx, args[1:])
	case "remove":
		return cmd.remove(ctx, args[1:])
	case "clear":
		return cmd.clear(ctx, args[1:])
	}
	return fmt.Errorf("unknown faults command %q (add, list, remove, clear)", args[0])
}

func (cmd *FaultsCommand) add(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("faults add", "--sender S (--status N | --delay D | --drop) [flags]",
		"Injects an answer for a sender's requests instead of processing them (--status,\n--drop), or before processing them (--delay). Its id is printed.")
	sender := fs.String("sender", "", "the sender: "+sendersText+" (required)")
	name := fs.String("name", "", "only this hook, webhook, Svix endpoint or event type (default: all)")
	status := fs.Int("status", 0, "answer with this HTTP status (3xx, 4xx or 5xx) instead of processing")
	delay := fs.Duration("delay", 0, "wait this long, then process as usual")
	drop := fs.Bool("drop", false, "close the connection without an answer")
	count := fs.Int("count", -1, "apply to this many requests, then stop (default: no limit)")
	percent := fs.Int("percent", 100, "apply to this share of matching requests")
	dur := fs.Duration("for", 0, "expire after this long (default: until removed)")
	if err := parseOnlyFlags(fs, args, cmd.Stdout, cmd.Stderr); err != nil {
		return err
	}
	s, err := parseSender(*sender)
	if err != nil {
		return err
	}
	now := time.Now()
	f := &hooks.Fault{Sender: s, Name: *name, Remaining: *count, Percent: *percent, CreatedAt: now}
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
	fmt.Fprintf(cmd.Stdout, "added %s for %s %s (\"hookbay faults remove %d\" removes it)\n", f, f.Sender, orAll(f.Name), f.ID)
	return nil
}

func (cmd *FaultsCommand) list(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("faults list", "[flags]", "The faults in force, by id.")
	if err := parseOnlyFlags(fs, args, cmd.Stdout, cmd.Stderr); err != nil {
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
		rem, exp := "no limit", "when removed"
		if f.Remaining >= 0 {
			rem = fmt.Sprint(f.Remaining)
		}
		if !f.ExpiresAt.IsZero() {
			exp = f.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d%%\t%s\n", f.ID, f.Sender, orAll(f.Name), f, rem, f.Percent, exp)
	}
	return tw.Flush()
}

func (cmd *FaultsCommand) remove(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("faults remove", "ID [flags]", "Removes one fault, by the id that add and list print.")
	pos, err := parseFlags(fs, args, cmd.Stdout, cmd.Stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: hookbay faults remove ID [flags] (\"hookbay faults list\" shows the ids)")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("fault ID %q is not a number", pos[0])
	}
	db, err := sf.open()
	if err != nil {
		return err
	}
	defer db.Close()
	ok, err := db.DeleteFault(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no fault %d (\"hookbay faults list\" shows the ids)", id)
	}
	if *sf.json {
		return printJSON(cmd.Stdout, map[string]int64{"removed": id})
	}
	fmt.Fprintf(cmd.Stdout, "fault %d removed\n", id)
	return nil
}

func (cmd *FaultsCommand) clear(ctx context.Context, args []string) error {
	fs, sf := storeFlagSet("faults clear", "--all [--sender S] [flags]",
		"Removes every fault (--all), or every fault of one sender (--all --sender S),\nexpired ones included. \"hookbay faults remove ID\" removes one.")
	all := fs.Bool("all", false, "remove every fault (required: clear takes no id)")
	sender := fs.String("sender", "", "only this sender's faults: "+sendersText)
	pos, err := parseFlags(fs, args, cmd.Stdout, cmd.Stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("faults clear takes no id: \"hookbay faults remove %s\" removes one fault, \"hookbay faults clear --all\" every one", pos[0])
	}
	if !*all {
		return errors.New("faults clear removes every fault: say so with --all (\"hookbay faults remove ID\" removes one)")
	}
	s, err := parseSender(*sender)
	if err != nil {
		return err
	}
	db, err := sf.open()
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.ClearFaults(ctx, s)
	if err != nil {
		return err
	}
	if *sf.json {
		return printJSON(cmd.Stdout, map[string]int64{"cleared": n})
	}
	fmt.Fprintf(cmd.Stdout, "%d fault(s) cleared, expired ones included\n", n)
	return nil
}

func orAll(name string) string {
	if name == "" {
		return "(all)"
	}
	return name
}
