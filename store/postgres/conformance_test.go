package postgres_test

import (
	"testing"
	"time"

	"github.com/hookbay/hookbay/store/storetest"
)

// TestConformance runs the backend-neutral store suite on PostgreSQL: each
// case gets a schema of its own, and every handle it opens is another DB on
// that schema, as another replica would open it.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) func() storetest.Store {
		s := newSchema(t)
		return func() storetest.Store {
			db := s.open(t)
			db.Now = now
			return db
		}
	})
}
