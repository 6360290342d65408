package cli

import (
	"io"
	"testing"
)

// exitStatus is the process exit status a command's error makes.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	return Exit(err, io.Discard)
}
