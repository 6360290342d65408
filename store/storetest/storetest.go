// Package storetest opens real SQLite stores for tests: each on a fresh file
// under the test's temporary directory, closed (and checked to close
// cleanly) when the test ends, plus a settable clock for the store's Now.
package storetest

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

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

// Clock is a settable clock, safe to read from the store's writer goroutine
// while a test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d and returns the new time.
func (c *Clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}
