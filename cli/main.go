// Package cli is hookbay's composition root: the only package that imports
// every other one. Each command lives in a file of its own; Run dispatches a
// command line to it.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/hookbay/hookbay/hooks"
)

// version is set at build time with
// -ldflags "-X github.com/hookbay/hookbay/cli.version=..."; without it,
// Version reads the module version and VCS revision from the build info.
var version = ""

// Version is hookbay's version: the one set at link time, else what the Go
// toolchain recorded in the binary.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + dirty + ")"
	}
	return v
}

const usage = `usage: hookbay <command> [flags]

commands:
  serve                       receive webhooks (run "hookbay serve -h" for flags)
  events list|show ID|replay ID   the recorded requests; replay re-runs an action
  jobs list|retry             the delivery queue; retry dead or failed jobs
  certs init|client|show      local CA and certificates for HTTPS and mTLS tests
  report                      how each sender behaved: attempts, intervals, contract notes (--json, --junit)
  faults add|list|clear       inject answers (status, delay, drop) to test a sender's retries
  send SENDER                 send a request exactly as that sender would, and say what the answer means to it
  conform --sender S --url U  grade an endpoint against the sender's contract (--json, --junit FILE)
  version                     print the version
`

// Program is the hookbay command line. A program of your own that imports
// hookbay sets Actions to run Go actions (README, "Your own action").
type Program struct {
	Stdout, Stderr io.Writer
	// Actions are Go actions by sender and name, for serve and events
	// replay; they take precedence over the config's action for a name.
	Actions hooks.Actions
}

// Run runs a command line with no Go actions.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return (&Program{Stdout: stdout, Stderr: stderr}).Run(ctx, args)
}

// Run dispatches a command line to its subcommand.
func (p *Program) Run(ctx context.Context, args []string) error {
	stdout, stderr := p.Stdout, p.Stderr
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return (&ServeCommand{Stdout: stdout, Stderr: stderr, Actions: p.Actions}).Run(ctx, args[1:])
	case "events":
		return (&EventsCommand{Stdout: stdout, Stderr: stderr, Actions: p.Actions}).Run(ctx, args[1:])
	case "jobs":
		return (&JobsCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "certs":
		return (&CertsCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "report":
		return (&ReportCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "faults":
		return (&FaultsCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "send":
		return (&SendCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "conform":
		return (&ConformCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "version":
		fmt.Fprintln(stdout, "hookbay", Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// Exit prints err to stderr and returns the process exit status: 0 when the
// command worked, 1 when conform's checks ran and some failed, 2 when the
// command could not do its work (bad flags, config, target or store).
func Exit(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	msg := err.Error()
	if hooks.ErrorCode(err) != hooks.EINTERNAL {
		msg = hooks.ErrorMessage(err) // an application error's own words, without its code
	}
	fmt.Fprintln(stderr, "hookbay:", msg)
	if errors.Is(err, errChecksFailed) {
		return 1
	}
	return 2
}
