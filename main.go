// Command hookbay is a webhook receiver for Bubblehouse, Bloomreach and
// Svix-signed senders, and a QA toolkit for them. It only wires: the
// commands live in package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookbay/hookbay/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Exit(cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}
