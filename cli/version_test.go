package cli

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// buildVersioned builds hookbay into the test's temporary directory with
// these extra "go build" flags and returns what "hookbay version" prints.
func buildVersioned(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hookbay")
	args := append(append([]string{"build", "-o", bin}, flags...), "..")
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	b, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hookbay version: %v\n%s", err, b)
	}
	return string(b)
}

// "hookbay version" prints the version set at link time; without one, what
// the Go toolchain recorded in the binary: the main module's version and
// the VCS revision, marked +dirty when the work tree had changes.
func TestVersion(t *testing.T) {
	t.Run("LinkTime", func(t *testing.T) {
		old := version
		version = "v1.2.3"
		t.Cleanup(func() { version = old })
		if got, want := mustCLI(t, "version"), "hookbay v1.2.3\n"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("NoVCS", func(t *testing.T) {
		// "go test" stamps no VCS settings, and a test binary's main
		// module is "(devel)": neither says anything, so "dev".
		if version != "" {
			t.Skipf("built with -X …cli.version=%s", version)
		}
		if got, want := mustCLI(t, "version"), "hookbay dev\n"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	// The flag the Dockerfile passes reaches the variable, and wins over
	// the build info.
	t.Run("Ldflags", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the binary")
		}
		out := buildVersioned(t, "-buildvcs=true", "-ldflags=-X github.com/hookbay/hookbay/cli.version=v9.8.7-test")
		if want := "hookbay v9.8.7-test\n"; out != want {
			t.Fatalf("got %q, want %q", out, want)
		}
	})
	// The build info's fallbacks.
	settings := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, tt := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"NoBuildInfo", nil, false, "dev"},
		{"Devel", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"Tagged", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, true, "v1.4.0"},
		{"DevelWithRevision", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "false")}, true, "dev (0123456789ab)"},
		{"DirtyTree", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true")}, true, "v1.4.0 (0123456789ab+dirty)"},
		{"ShortRevision", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"},
			Settings: settings("vcs.revision", "abc123")}, true, "v1.4.0 (abc123)"},
		// A pseudo-version already names the revision (and +dirty): it is
		// not said twice.
		{"PseudoVersion", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261205081500-0123456789ab+dirty"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true")}, true, "v0.0.0-20261205081500-0123456789ab+dirty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionFrom(tt.info, tt.ok); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
