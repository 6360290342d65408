package cli

import (
	"io"
	"os"
	"strings"
	"testing"
)

// exitStatus is the process exit status a command's error makes.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	return Exit(err, io.Discard)
}

// citesByTitle fails the test when an output names a contract by a file
// (bubblehouse-hooks-api.txt, ../shared/contracts/…) instead of citing the
// sender's public documentation by its title.
func citesByTitle(t *testing.T, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, file := range []string{".txt", ".md", "contracts/"} {
			if i := strings.Index(out, file); i >= 0 {
				t.Errorf("output names a contract file (%q): …%s…", file, out[max(0, i-60):min(len(out), i+20)])
			}
		}
	}
}

// readFile returns a file's content, failing the test when it cannot.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
