package main

import (
	"context"
	"errors"
	"io"
)

func runSendBubblehouse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}

func runConformBubblehouse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented")
}
