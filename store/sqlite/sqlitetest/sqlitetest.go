// Package sqlitetest opens real SQLite stores for tests: each on a fresh
// file under the test's temporary directory, closed (and checked to close
// cleanly) when the test ends.
package sqlitetest

import (
	"path/filepath"
	"testing"

	"github.com/hookbay/hookbay/store/sqlite"
)

// Open opens a store on a fresh file under tb.TempDir().
func Open(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return OpenPath(tb, filepath.Join(tb.TempDir(), "db"))
}

// OpenPath opens the store at path, closed when the test ends. Opening the
// same path again after a Close simulates a restart.
func OpenPath(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close %s: %v", path, err)
		}
	})
	return db
}
