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
	"strings"

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
	return versionFrom(debug.ReadBuildInfo())
}

// versionFrom is the version the Go toolchain recorded in the binary: the
// main module's version ("dev" for none), and the VCS revision when that
// version does not already carry it (a pseudo-version does), marked +dirty
// when the work tree had changes.
func versionFrom(info *debug.BuildInfo, ok bool) string {
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
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && !strings.Contains(v, rev) {
		v += " (" + rev + dirty + ")"
	}
	return v
}

const usage = `usage: hookbay <command> [flags]

commands:
  serve                          receive webhooks
  events list|show ID|replay ID  the recorded requests; replay re-runs an action
  jobs list|retry                the delivery queue; retry dead or failed jobs
  certs init|client|show         local CA and certificates for HTTPS and mTLS tests
  report                         how each sender behaved: attempts, intervals, contract findings
  faults add|list|remove|clear   inject answers (status, delay, drop) to test a sender's retries
  send SENDER                    send a request exactly as that sender would, and say what the answer means to it
  conform --sender S --url U     grade an endpoint against the sender's contract
  healthcheck                    ask a running server's /readyz over loopback (a container's health check)
  store copy --from DIR --to URL copy an SQLite store into PostgreSQL, to run replicas
  version                        print the version

"hookbay COMMAND -h" lists a command's flags.

Exit status: 0 when the command worked; 1 when it ran and the answer is no
(conform: a check failed; send: the sender would not count the answer as
delivered; events replay: a job did not succeed; report: findings); 2 when
it could not do its work (flags, arguments, config, target or store).
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
		return usageError{"no command given"}
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
	case "store":
		return (&StoreCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
	case "healthcheck":
		return (&HealthcheckCommand{Stdout: stdout, Stderr: stderr}).Run(ctx, args[1:])
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

// Exit prints err to stderr and returns the process exit status:
//
//	0  the command worked (and help asked for with -h is printed)
//	1  it ran, and the answer is no: a conformance check failed, a request
//	   was not delivered, a replayed job failed, the report found problems
//	2  it could not do its work: bad flags or arguments, config, target or
//	   store
func Exit(err error, stderr io.Writer) int {
	var no *negativeError
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		return 2 // the usage is printed already
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	msg := err.Error()
	if hooks.ErrorCode(err) != hooks.EINTERNAL {
		msg = hooks.ErrorMessage(err) // an application error's own words, without its code
	}
	fmt.Fprintln(stderr, "hookbay:", msg)
	if errors.As(err, &no) {
		return 1
	}
	return 2
}

// negativeError is a command that ran, and whose answer is no: Exit
// returns 1 for it.
type negativeError struct{ msg string }

func (e *negativeError) Error() string { return e.msg }

// answerNo returns a negativeError with a formatted message.
func answerNo(format string, args ...any) error {
	return &negativeError{msg: fmt.Sprintf(format, args...)}
}

// usageError is a command line that names no command: its usage went to
// stderr. It is flag.ErrHelp to errors.Is, yet exits 2, as help that was
// not asked for.
type usageError struct{ what string }

func (e usageError) Error() string        { return e.what }
func (e usageError) Is(target error) bool { return target == flag.ErrHelp }
