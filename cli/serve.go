package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

// ServeCommand is "hookbay serve".
type ServeCommand struct {
	Stdout, Stderr io.Writer
	// Actions are Go actions; they take precedence over the config's.
	Actions hooks.Actions
}

// Run parses flags, starts the server and blocks until ctx ends, then shuts
// down gracefully.
func (cmd *ServeCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(cmd.Stderr)
	var o serveOptions
	fs.StringVar(&o.config, "config", "", "YAML config file (default: "+config.DefaultPath+" in the working directory if there is one, else dev mode)")
	fs.StringVar(&o.data, "data", "", "data directory (overrides server.data_dir)")
	fs.StringVar(&o.listen, "listen", "", "listen address (overrides server.listen; dev mode: "+DevListen+", loopback only)")
	fs.BoolVar(&o.plain, "http", false, "serve plain HTTP (server.tls.mode: off), for ngrok or a TLS-terminating proxy")
	fs.StringVar(&o.logFormat, "log-format", "", "log format, text or json (overrides log.format; default json with a config file, text in dev mode)")
	fs.StringVar(&o.logLevel, "log-level", "", "log level, debug, info, warn or error (overrides log.level; default info)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q: serve takes only flags (-h lists them)", fs.Arg(0))
	}
	cfg, path, err := o.load()
	if err != nil {
		return err
	}
	m := NewMain(cfg)
	m.Actions = cmd.Actions
	m.Dev = path == ""
	m.ConfigFile = path
	m.Stdout = cmd.Stdout
	var flushLog func()
	m.Logger, flushLog = newBufferedLogger(cmd.Stderr, cfg.Log)
	defer flushLog()
	if path != "" && o.config == "" {
		m.Logger.Info("config: " + path + " (found in the working directory; --config FILE reads another)")
	}
	if err := m.Run(ctx); err != nil {
		m.Close(context.Background())
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if err := m.ReloadTLS(); err != nil {
				m.Logger.Error("SIGHUP: the new certificate was refused; still serving the old one", "err", err)
			}
		}
	}
	m.Logger.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	return m.Close(shutdown)
}

// serveOptions are serve's flags.
type serveOptions struct {
	config, data, listen string
	plain                bool
	logFormat, logLevel  string
}

// load returns the configuration serve runs with, and the config file it
// was read from ("" in dev mode). The file is --config, or hookbay.yaml
// in the working directory when there is one; without either it is dev
// mode, listening on loopback unless --listen says otherwise. The flags
// override the file; then defaults are applied and the result validated,
// once.
func (o serveOptions) load() (config.Config, string, error) {
	path, implicit, err := config.Locate(o.config)
	if err != nil {
		return config.Config{}, "", err
	}
	var cfg config.Config
	if path == "" {
		cfg = config.Dev()
	} else if cfg, err = config.Read(path); err != nil {
		return cfg, "", inFile(path, implicit, err)
	}
	if o.plain {
		cfg.Server.TLS.Mode = "off"
		if cfg.Server.Listen == config.DefaultListen {
			cfg.Server.Listen = "" // the plain HTTP default
		}
	}
	if path == "" && cfg.Server.Listen == "" {
		cfg.Server.Listen = DevListen
		if cfg.Server.TLS.Mode == "off" {
			cfg.Server.Listen = DevListenHTTP
		}
	}
	if o.data != "" {
		cfg.Server.DataDir = o.data
	}
	if o.listen != "" {
		cfg.Server.Listen = o.listen
	}
	if path == "" && cfg.Log.Format == "" {
		cfg.Log.Format = "text" // dev mode: read by a person
	}
	if o.logFormat != "" {
		cfg.Log.Format = o.logFormat
	}
	if o.logLevel != "" {
		cfg.Log.Level = o.logLevel
	}
	if err := cfg.Finish(); err != nil {
		return cfg, "", inFile(path, implicit, err)
	}
	return cfg, path, nil
}

// inFile says which file an error is in when the file was not named on
// the command line.
func inFile(path string, implicit bool, err error) error {
	if !implicit {
		return err
	}
	return fmt.Errorf("%s (read from the working directory; --config FILE reads another): %w", path, err)
}
