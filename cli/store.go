package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/idempotency"
	"github.com/hookbay/hookbay/store/postgres"
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

// Interface guards: every backend fits what each consumer declares, and
// PostgreSQL what replicas share besides.
var (
	_ Store             = (*sqlite.DB)(nil)
	_ Store             = (*postgres.DB)(nil)
	_ sharedStore       = (*postgres.DB)(nil)
	_ handlers.Guard    = (*idempotency.Guard)(nil)
	_ idempotency.Store = Store(nil)
	// What observe asks of a store for the metrics.
	_ commitObserver = (*sqlite.DB)(nil)
	_ commitObserver = (*postgres.DB)(nil)
	_ jobStatser     = (*sqlite.DB)(nil)
	_ jobStatser     = (*postgres.DB)(nil)
	_ poolStatser    = (*postgres.DB)(nil)
)

// openStore opens the store the configuration names: SQLite in the data
// directory unless store.postgres is set.
func openStore(ctx context.Context, cfg *config.Config) (Store, error) {
	if pg := cfg.Store.Postgres; pg != nil {
		db, err := postgres.Open(ctx, pg.URL, postgres.WithMaxConns(pg.MaxConns))
		if err != nil {
			return nil, fmt.Errorf("open the PostgreSQL store %s: %w", redactURL(pg.URL), err)
		}
		return db, nil
	}
	path := filepath.Join(cfg.Server.DataDir, "hookbay.db")
	db, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// describeStore names the store for logs and the banner, without secrets.
func describeStore(cfg *config.Config) string {
	if pg := cfg.Store.Postgres; pg != nil {
		return "postgres " + redactURL(pg.URL)
	}
	return fmt.Sprintf("sqlite %s", filepath.Join(cfg.Server.DataDir, "hookbay.db"))
}

// redactURL is a PostgreSQL URL without its password, for messages. A DSN
// that is not a URL (key=value pairs) is named only by its kind, since it
// may hold a password anywhere.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "(a key=value DSN)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// sharedStore is a store that several replicas share (PostgreSQL): it
// announces the jobs any of them queue, and hands background work to one
// of them at a time through a lease.
type sharedStore interface {
	Listen(ctx context.Context, onJobs func(priority int)) error
	TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	Resign(ctx context.Context, name, holder string) error
}

// maintenanceLease is the lease that the replica doing the background
// maintenance (purges, rescues) holds.
const maintenanceLease = "maintenance"

// Timing of the maintenance lease: held for leadTTL, renewed every
// leadEvery. When the leading replica dies, another takes over within
// leadTTL; a clean shutdown resigns at once.
const (
	leadTTL   = 15 * time.Second
	leadEvery = leadTTL / 3
)

// replicaLoops is what a replica runs beside its queue on a shared store.
// It sits in front of the queue's store: the queue's rescues go through
// it, and run only while this replica holds the maintenance lease.
type replicaLoops struct {
	hooks.JobStore
	shared sharedStore
	m      *Main
	holder string
	// leading is whether this replica holds the maintenance lease.
	leading atomic.Bool
	// claimed is set by the queue's first claim: Start has run, so the
	// queue's Notify may be called from the listener.
	claimed atomic.Bool

	stop context.CancelFunc
	done sync.WaitGroup
}

// ClaimJobs claims through the queue's store, and marks the queue started.
func (r *replicaLoops) ClaimJobs(ctx context.Context, now time.Time, lease time.Duration, limit, start int) ([]*hooks.Job, error) {
	r.claimed.Store(true)
	return r.JobStore.ClaimJobs(ctx, now, lease, limit, start)
}

// RescueJobs takes back the jobs whose lease expired, when this replica
// leads the maintenance; the others leave it to the leader, instead of
// every replica running the same statement every poll.
func (r *replicaLoops) RescueJobs(ctx context.Context, now time.Time, policy hooks.RetryPolicy) (int64, error) {
	if !r.leading.Load() {
		return 0, nil
	}
	return r.JobStore.RescueJobs(ctx, now, policy)
}

// wake tells the queue, once it has started, that a replica queued jobs
// of the given priority (hooks.Queue.Queued).
func (r *replicaLoops) wake(priority int) {
	if r.claimed.Load() {
		r.m.Queue.Queued(priority)
	}
}

// startStoreLoops starts, when the store is shared by replicas
// (PostgreSQL), what a replica runs beside its queue: new jobs queued by
// any replica wake this one's idle workers at once (LISTEN; the queue's
// polling stays the fallback for a lost notification), and the background
// maintenance (rescues of expired jobs, idempotency and record purges)
// runs on whichever replica holds the maintenance lease. Run calls it once
// the queue and the metrics are built and before the queue starts; with
// SQLite it does nothing.
func (m *Main) startStoreLoops(ctx context.Context) error {
	shared, ok := m.DB.(sharedStore)
	if !ok || m.Queue == nil {
		return nil
	}
	if db, ok := m.DB.(*postgres.DB); ok && m.Logger != nil {
		db.Logger = m.Logger // before any listener starts
	}
	r := &replicaLoops{JobStore: m.Queue.Store, shared: shared, m: m, holder: replicaName()}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	if err := shared.Listen(life, r.wake); err != nil {
		stop()
		return fmt.Errorf("listen for new jobs: %w", err)
	}
	m.Queue.Store = r
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		r.lead(life)
	}()
	m.Logger.Info("shared store: new jobs wake this replica; maintenance runs on the replica holding its lease",
		"replica", r.holder, "lease_ttl", leadTTL)
	return nil
}

// stopStoreLoops stops the loops startStoreLoops started and gives up the
// maintenance lease, so that another replica takes it over at once. Close
// calls it after the queue has stopped, before the store closes.
func (m *Main) stopStoreLoops(ctx context.Context) error {
	r := m.replicaLoops()
	if r == nil {
		return nil
	}
	r.stop()
	r.done.Wait()
	if !r.leading.Swap(false) {
		return nil
	}
	if err := r.shared.Resign(ctx, maintenanceLease, r.holder); err != nil {
		return fmt.Errorf("give up the maintenance lease: %w", err)
	}
	return nil
}

// replicaLoops returns the loops startStoreLoops put in front of the
// queue's store, or nil.
func (m *Main) replicaLoops() *replicaLoops {
	if m.Queue == nil {
		return nil
	}
	r, _ := m.Queue.Store.(*replicaLoops)
	return r
}

// Leading reports whether this replica holds the maintenance lease of a
// shared store; false with SQLite, where there is no one else.
func (m *Main) Leading() bool {
	r := m.replicaLoops()
	return r != nil && r.leading.Load()
}

// lead takes or renews the maintenance lease every leadEvery, and, while
// this replica holds it, purges old idempotency answers and records every
// PurgeInterval. An error taking the lease counts as not holding it: the
// lease may run out meanwhile, and another replica take it.
func (r *replicaLoops) lead(ctx context.Context) {
	m := r.m
	t := time.NewTicker(leadEvery)
	defer t.Stop()
	var lastPurge time.Time
	for {
		ok, err := r.shared.TryLead(ctx, maintenanceLease, r.holder, leadTTL)
		switch {
		case errors.Is(err, postgres.ErrClosed):
			r.leading.Store(false)
			return
		case err != nil && ctx.Err() == nil:
			if r.leading.Swap(false) {
				m.Logger.Warn("maintenance lease: could not renew it; another replica may take it over", "err", err)
			}
		case err == nil:
			if was := r.leading.Swap(ok); ok && !was {
				m.Logger.Info("maintenance lease taken: this replica rescues expired jobs and purges", "replica", r.holder)
				lastPurge = time.Time{}
			} else if !ok && was {
				m.Logger.Warn("maintenance lease lost to another replica", "replica", r.holder)
			}
		}
		if r.leading.Load() && m.PurgeInterval > 0 && time.Since(lastPurge) >= m.PurgeInterval {
			m.purgeOnce(ctx)
			lastPurge = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purgeOnce deletes the idempotency answers older than idempotency.retention
// and the records older than server.record_retention (when set), as the
// per-process purge loops do on a store of one's own.
func (m *Main) purgeOnce(ctx context.Context) {
	keep := time.Duration(m.Config.Idempotency.Retention)
	if keep <= 0 {
		keep = idempotency.DefaultRetention
	}
	n, err := m.guardStore().PurgeIdempotency(ctx, time.Now().Add(-keep)) // counted in the metrics
	if err != nil && ctx.Err() == nil {
		m.Logger.Error("purge idempotency records", "err", err)
	} else if n > 0 {
		m.Logger.Info("purged idempotency records", "count", n, "older_than", keep)
	}
	if keep = time.Duration(m.Config.Server.RecordRetention); keep > 0 {
		m.purgeRecordsOnce(ctx, keep)
	}
}

// replicaName names this process in the maintenance lease: host, process
// ID and a random suffix (a restarted container may reuse both).
func replicaName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
