package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/qa"
)

// errChecksFailed makes "hookbay conform" exit 1 when a check failed.
var errChecksFailed = answerNo("conformance checks failed")

// SendCommand is "hookbay send <sender>": the sender simulator.
type SendCommand struct {
	Stdout, Stderr io.Writer
}

// sendAbout is the part of every send command's usage that says what its
// exit status means.
const sendAbout = `Exit status: 0 when the sender would count the answer as delivered, 1 when it
would not (it retries, counts a failure, drops the event, stops the campaign,
or a customer failed), 2 when no answer came or the request could not be
built.`

// Run dispatches to the sender's simulator.
func (cmd *SendCommand) Run(ctx context.Context, args []string) error {
	senders := []string{"bubblehouse", "bloomreach", "svix"}
	if len(args) == 0 {
		return fmt.Errorf("usage: hookbay send bubblehouse|bloomreach|svix [flags] (hookbay send SENDER -h lists its flags)")
	}
	if isHelp(args[0]) {
		return groupHelp(cmd.Stdout, "send", senders, func(a []string) error { return cmd.Run(ctx, a) })
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

// sendVerdict is a send's exit status: nil when the sender would count
// the answer as delivered, else a negativeError (1) saying what the sender
// makes of it instead.
func sendVerdict(sender hooks.Sender, name string, x *qa.Exchange) error {
	v := hooks.Judge(sender, name, x.Status, x.Answer)
	if v.Kind == hooks.VerdictDelivered {
		return nil
	}
	return answerNo("not delivered (%s): %s", v.Kind, v.Text)
}

// ConformCommand is "hookbay conform --sender S --url URL": it grades an
// endpoint against what the sender's contract requires of a receiver.
type ConformCommand struct {
	Stdout, Stderr io.Writer
}

// conformAbout is the part of every conform command's usage that says
// what its exit status means.
const conformAbout = `Exit status: 0 when every check passed (warnings and skips included), 1 when
one failed, 2 when the checks could not run.`

// Run finds --sender among the arguments and hands the rest to that
// sender's probes.
func (cmd *ConformCommand) Run(ctx context.Context, args []string) error {
	sender, rest, help := "", make([]string, 0, len(args)), false
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
			help = help || isHelp(a)
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
	case "":
		if help {
			fmt.Fprintln(cmd.Stdout, "usage: hookbay conform --sender bubblehouse|bloomreach|svix --url URL [flags]")
			fmt.Fprintln(cmd.Stdout, "\nGrades an endpoint against what the sender's contract requires of a receiver.")
			for _, s := range []string{"bubblehouse", "bloomreach", "svix"} {
				fmt.Fprintf(cmd.Stdout, "\n--sender %s:\n", s)
				if err := cmd.Run(ctx, []string{"--sender", s, "-h"}); !errors.Is(err, flag.ErrHelp) {
					return fmt.Errorf("help of conform --sender %s: %w", s, err)
				}
			}
			return flag.ErrHelp
		}
		return fmt.Errorf("usage: hookbay conform --sender bubblehouse|bloomreach|svix --url URL [flags] (hookbay conform -h lists the flags)")
	}
	return fmt.Errorf("--sender %q: want %s", sender, sendersText)
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
