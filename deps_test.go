package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// module is this module's import path.
const module = "github.com/hookbay/hookbay"

// allowed lists, for each of our packages, the packages of ours it may
// import (README, "Layout"). The domain (hooks) imports none; the adapters
// import at most the domain; only cli, the composition root, imports them
// all; main imports only cli. A package missing here fails the test, so a
// new package must be given its place.
var allowed = map[string][]string{
	"":                        {"cli"},
	"hooks":                   {},
	"certs":                   {},
	"certs/certstest":         {},
	"config":                  {"hooks"},
	"handlers":                {"hooks"},
	"idempotency":             {"hooks"},
	"qa":                      {"hooks"},
	"store/sqlite":            {"hooks"},
	"store/postgres":          {"hooks"},
	"store/storetest":         {"hooks"},
	"admin":                   {"hooks"},
	"metrics":                 {"hooks"},
	"store/sqlite/sqlitetest": {"store/sqlite"},
	"store/postgres/pgtest":   {"store/postgres"},
	"cli":                     {"*"},
	"tools/bareecho":          {},
	"tools/floor":             {},
	"tools/pace":              {},
	"tools/svixload":          {},
}

// TestImportRules reads every package's imports (not its tests') with go
// list and fails on an import the layout does not allow.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		rules, ok := allowed[name]
		if !ok {
			t.Errorf("package %q has no place in the layout rules (deps_test.go)", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !permitted(rules, dep) {
				t.Errorf("%s imports %s; it may import only %v of ours", p.ImportPath, imp, rules)
			}
		}
	}
	if seen < 8 {
		t.Fatalf("go list found %d packages; the test is not reading the module", seen)
	}
}

func permitted(rules []string, dep string) bool {
	for _, r := range rules {
		if r == "*" || r == dep {
			return true
		}
	}
	return false
}

// TestPermitted checks the rule reader itself, so that the test above
// cannot pass by reading the rules wrong.
func TestPermitted(t *testing.T) {
	if permitted(allowed["hooks"], "store/sqlite") || permitted(allowed["config"], "handlers") || permitted(allowed[""], "hooks") {
		t.Fatal("a forbidden import is permitted")
	}
	if !permitted(allowed["cli"], "store/sqlite") || !permitted(allowed["handlers"], "hooks") {
		t.Fatal("an allowed import is refused")
	}
}
