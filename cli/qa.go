package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hookbay/hookbay/qa"
)

// errChecksFailed makes "hookbay conform" exit non-zero when a check failed.
var errChecksFailed = errors.New("conformance checks failed")

// SendCommand is "hookbay send <sender>": the sender simulator.
type SendCommand struct {
	Stdout, Stderr io.Writer
}

// Run dispatches to the sender's simulator.
func (cmd *SendCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: hookbay send bubblehouse|bloomreach|svix [flags] (hookbay send SENDER -h for flags)")
	}
	switch args[0] {
	case "bubblehouse":
		return runSendBubblehouse(ctx, args[1:], cmd.Stdout, cmd.Stderr)
	case "bloomreach":
		return runSendBloomreach(ctx, args[1:], cmd.Stdout, cmd.Stderr)
	case "svix":
		return runSendSvix(ctx, args[1:], cmd.Stdout, cmd.Stderr)
	}
	return fmt.Errorf("unknown sender %q (bubblehouse, bloomreach, svix)", args[0])
}

// ConformCommand is "hookbay conform --sender S --url URL": it grades an
// endpoint against what the sender's contract requires of a receiver.
type ConformCommand struct {
	Stdout, Stderr io.Writer
}

// Run finds --sender among the arguments and hands the rest to that
// sender's probes.
func (cmd *ConformCommand) Run(ctx context.Context, args []string) error {
	sender, rest := "", make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--sender" || a == "-sender":
			if i+1 < len(args) {
				sender = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--sender=") || strings.HasPrefix(a, "-sender="):
			_, sender, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	switch sender {
	case "bubblehouse":
		return runConformBubblehouse(ctx, rest, cmd.Stdout, cmd.Stderr)
	case "bloomreach":
		return runConformBloomreach(ctx, rest, cmd.Stdout, cmd.Stderr)
	case "svix":
		return runConformSvix(ctx, rest, cmd.Stdout, cmd.Stderr)
	}
	return fmt.Errorf("usage: hookbay conform --sender bubblehouse|bloomreach|svix --url URL [flags]")
}

// writeReport prints a conformance report as asked (table, or --json) and
// writes --junit; it returns errChecksFailed when a check failed.
func writeReport(r *qa.Report, asJSON bool, junit string, stdout io.Writer) error {
	var err error
	if asJSON {
		err = r.WriteJSON(stdout)
	} else {
		err = r.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if junit != "" {
		if err := r.WriteJUnit(junit); err != nil {
			return err
		}
	}
	if r.Failed() {
		return errChecksFailed
	}
	return nil
}
