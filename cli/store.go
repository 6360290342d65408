package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
	"github.com/hookbay/hookbay/store/sqlite"
)

// Store is everything the commands ask of a store: the union of the small
// interfaces each consumer declares, and the readers the CLI uses. Every
// backend fits it (the guards below).
type Store interface {
	handlers.Pinger
	handlers.TokenStore
	handlers.FaultStore
	idempotency.Store
	hooks.ReplayStore

	FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error)
	FindJobs(ctx context.Context, f hooks.JobFilter) ([]*hooks.Job, error)
	FindAttempts(ctx context.Context, jobID int64) ([]*hooks.Attempt, error)
	RetryJobs(ctx context.Context, ids []int64, now time.Time) (int64, error)
	RetryDead(ctx context.Context, since, now time.Time) (int64, error)
	AddFault(ctx context.Context, f *hooks.Fault) error
	DeleteFault(ctx context.Context, id int64) (bool, error)
	ClearFaults(ctx context.Context, sender hooks.Sender) (int64, error)
	PurgeRecords(ctx context.Context, before time.Time) (int64, error)
	Close() error
}

// Interface guards: every backend fits what each consumer declares.
var (
	_ Store             = (*sqlite.DB)(nil)
	_ handlers.Guard    = (*idempotency.Guard)(nil)
	_ idempotency.Store = Store(nil)
)

// openStore opens the store the configuration names: SQLite in the data
// directory unless store.postgres is set.
func openStore(ctx context.Context, cfg *config.Config) (Store, error) {
	path := filepath.Join(cfg.Server.DataDir, "hookbay.db")
	db, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// describeStore names the store for logs and the banner, without secrets.
func describeStore(cfg *config.Config) string {
	return fmt.Sprintf("sqlite %s", filepath.Join(cfg.Server.DataDir, "hookbay.db"))
}
