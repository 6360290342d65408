package sqlite

import (
	"context"

	"github.com/hookbay/hookbay/hooks"
)

// SetSearchWindow makes text searches read at most n records, until the
// returned function restores the window.
func SetSearchWindow(n int64) (restore func()) {
	old := searchWindow
	searchWindow = n
	return func() { searchWindow = old }
}

// RequestsQuery is the statement FindRequests runs for f, and its
// arguments.
func RequestsQuery(f hooks.RequestFilter) (string, []any) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return requestsQuery(f)
}

// WriterPragma reads a pragma's value on the writer's connection.
func WriterPragma(db *DB, name string) (string, error) {
	var v string
	err := db.write(context.Background(), func(tx writeTx) error { return tx.QueryRow("PRAGMA " + name).Scan(&v) })
	return v, err
}

// LegacyItemKeys reports whether db looks for batch customers' keys in the
// idempotency table too (keys from before migration 0009).
func LegacyItemKeys(db *DB) bool { return db.legacyItemKeys.Load() }

// SetMaxWALFrames sets the WAL size past which the writer restarts it.
func SetMaxWALFrames(db *DB, n int64) { db.maxWALFrames.Store(n) }

// WALRestarts is how many RESTART checkpoints the writer has tried.
func WALRestarts(db *DB) int64 { return db.walRestarts.Load() }
