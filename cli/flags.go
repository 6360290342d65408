package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// storeFlags are the flags every store-reading command shares.
type storeFlags struct {
	config, data *string
	json         *bool
}

// storeFlagSet returns the flag set of the store-reading command name
// ("events list"), with the shared flags on it; see newFlagSet.
func storeFlagSet(name, synopsis, about string) (*flag.FlagSet, storeFlags) {
	fs := newFlagSet(name, synopsis, about)
	return fs, storeFlags{
		config: fs.String("config", "", "YAML config file, as for serve"),
		data:   fs.String("data", "", "data directory (overrides server.data_dir)"),
		json:   fs.Bool("json", false, "print JSON"),
	}
}

// newFlagSet returns the flag set of command name ("events list"), whose
// usage says "usage: hookbay NAME SYNOPSIS", what the command does, and
// its flags. Parse it with parseFlags.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: hookbay %s %s\n", name, synopsis)
		if about != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimRight(about, "\n"))
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args, whose flags may come before or after the
// positional arguments ("events show 5 --json"), and returns the
// positional ones. Asked for help (-h, --help), it prints the usage to
// stdout and returns flag.ErrHelp (exit 0); a bad flag is reported on
// stderr, with the usage.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, error) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		stdout.Write(buf.Bytes())
	} else {
		stderr.Write(buf.Bytes())
	}
	fs.SetOutput(stderr)
	return pos, err
}

// parseOnlyFlags is parseFlags for a command that takes no positional
// argument: one is an error, which would otherwise hide a mistyped flag
// or an argument the command silently ignores.
func parseOnlyFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	pos, err := parseFlags(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected argument %q (it takes flags only; see hookbay %s -h)", fs.Name(), pos[0], fs.Name())
	}
	return nil
}

// groupHelp prints a command group's usage to stdout: its subcommands,
// each with its own usage and flags, as each prints them for -h. run runs
// one subcommand line. It returns flag.ErrHelp (exit 0).
func groupHelp(stdout io.Writer, group string, subs []string, run func(args []string) error) error {
	fmt.Fprintf(stdout, "usage: hookbay %s %s [flags]\n", group, strings.Join(subs, "|"))
	for _, sub := range subs {
		fmt.Fprintln(stdout)
		if err := run([]string{sub, "-h"}); !errors.Is(err, flag.ErrHelp) {
			return fmt.Errorf("help of %s %s: %w", group, sub, err)
		}
	}
	return flag.ErrHelp
}

// senders are the senders' names, as --sender takes them.
var senders = []hooks.Sender{hooks.SenderBubblehouse, hooks.SenderBloomreach, hooks.SenderSvix}

// sendersText is the accepted --sender values, for usage and errors.
const sendersText = "bubblehouse, bloomreach or svix"

// parseSender reads --sender: "" (every sender) or one of senders.
func parseSender(s string) (hooks.Sender, error) {
	if s == "" || slices.Contains(senders, hooks.Sender(s)) {
		return hooks.Sender(s), nil
	}
	return "", fmt.Errorf("--sender %q: want %s", s, sendersText)
}

// open opens the store the flags name; see load.
func (f storeFlags) open() (Store, error) {
	_, db, err := f.load()
	return db, err
}

// load returns the configuration, read as serve reads it (--config, else
// hookbay.yaml in the working directory, else dev mode's), and opens the
// store it names.
func (f storeFlags) load() (config.Config, Store, error) {
	path, implicit, err := config.Locate(*f.config)
	if err != nil {
		return config.Config{}, nil, err
	}
	cfg := config.Dev()
	if path != "" {
		if cfg, err = config.Read(path); err != nil {
			return cfg, nil, inFile(path, implicit, err)
		}
	}
	if *f.data != "" {
		cfg.Server.DataDir = *f.data
	}
	if err := cfg.Finish(); err != nil {
		return cfg, nil, inFile(path, implicit, err)
	}
	db, err := openStore(context.Background(), &cfg)
	return cfg, db, err
}

// isHelp reports whether a command group's first argument asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// parseSince reads --since: an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration such as 2h or an RFC 3339 time", s)
	}
	return t, nil
}

// parseArgs parses flags that may come before or after the positional
// arguments ("events show 5 --json"), and returns the positional ones;
// parseFlags wraps it for commands.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
