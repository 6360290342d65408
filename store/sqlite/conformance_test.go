package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
	"github.com/hookbay/hookbay/store/storetest"
)

// TestConformance runs the backend-neutral store suite on SQLite: each
// case gets a fresh file, and its second handle is a second sqlite.DB on
// that file, with a writer of its own, as another process would open it.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) func() storetest.Store {
		path := filepath.Join(t.TempDir(), "db")
		return func() storetest.Store {
			db := sqlitetest.OpenPath(t, path)
			db.Now = now
			return db
		}
	})
}
