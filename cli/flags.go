package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/store/sqlite"
)

// storeFlags are the flags every store-reading command shares.
type storeFlags struct {
	config, data *string
	json         *bool
}

// storeFlagSet returns the flag set of the store-reading command name,
// printing its errors and usage to stderr, with the shared flags on it.
func storeFlagSet(name string, stderr io.Writer) (*flag.FlagSet, storeFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, storeFlags{
		config: fs.String("config", "", "YAML config file, as for serve"),
		data:   fs.String("data", "", "data directory (overrides server.data_dir)"),
		json:   fs.Bool("json", false, "print JSON"),
	}
}

// open opens the store the flags name; see load.
func (f storeFlags) open() (*sqlite.DB, error) {
	_, db, err := f.load()
	return db, err
}

// load returns the configuration and opens the store it names.
func (f storeFlags) load() (config.Config, *sqlite.DB, error) {
	cfg := config.Default()
	if *f.config != "" {
		var err error
		if cfg, err = config.Load(*f.config); err != nil {
			return cfg, nil, err
		}
	} else if err := cfg.Validate(); err != nil {
		// Validate also fills in what depends on the rest, the lease among them.
		return cfg, nil, err
	}
	if *f.data != "" {
		cfg.Server.DataDir = *f.data
	}
	db, err := sqlite.Open(filepath.Join(cfg.Server.DataDir, "hookbay.db"))
	return cfg, db, err
}

// isHelp reports whether a subcommand argument asks for help.
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
// arguments ("events show 5 --json"), and returns the positional ones.
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
