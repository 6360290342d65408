package cli_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookbay/hookbay/cli"
	"github.com/hookbay/hookbay/hooks"
)

// A program of your own runs every hookbay command with a Go action for
// CreateDiscount4 (README, "Your own action").
func ExampleProgram() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	p := &cli.Program{Stdout: os.Stdout, Stderr: os.Stderr, Actions: hooks.Actions{}}
	p.Actions.Set(hooks.SenderBubblehouse, "CreateDiscount4",
		hooks.ActionFunc(func(ctx context.Context, j *hooks.Job) ([]byte, error) {
			// j.Body is the raw input; j.RequestID de-duplicates; j.Attempts counts from 1.
			return []byte(`{"ok":true}`), nil
		}))
	code := cli.Exit(p.Run(ctx, os.Args[1:]), os.Stderr)
	stop()
	os.Exit(code)
}
