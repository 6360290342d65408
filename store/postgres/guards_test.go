package postgres_test

import (
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
	"github.com/hookbay/hookbay/store/postgres"
	"github.com/hookbay/hookbay/store/storetest"
)

// The PostgreSQL store fits wherever the SQLite store does: the workers,
// the idempotency guard, the handlers and the conformance suite.
var (
	_ hooks.JobStore      = (*postgres.DB)(nil)
	_ idempotency.Store   = (*postgres.DB)(nil)
	_ handlers.Pinger     = (*postgres.DB)(nil)
	_ handlers.TokenStore = (*postgres.DB)(nil)
	_ handlers.FaultStore = (*postgres.DB)(nil)
	_ storetest.Store     = (*postgres.DB)(nil)
)
