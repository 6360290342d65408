package main

import (
	"context"
	"errors"
	"io"
)

func runSendBloomreach(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}

func runConformBloomreach(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}
