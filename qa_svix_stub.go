package main

import (
	"context"
	"errors"
	"io"
)

func runSendSvix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}

func runConformSvix(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}
