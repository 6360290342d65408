// Package postgres keeps hookbay's requests, idempotency records and job
// queue in PostgreSQL, for several hookbay replicas sharing one database. It
// has the SQLite store's methods and behaviour (store/storetest holds both to
// it), made safe with several writers:
//
//   - Reservations and take-overs of idempotency keys are single guarded
//     statements (INSERT … ON CONFLICT … DO UPDATE … WHERE <expired>), so two
//     replicas reserving one key get one owner.
//   - Job claims lock the rows they take with FOR UPDATE SKIP LOCKED inside
//     the claiming statement, so no job is handed out twice; a job's later
//     updates match the claim (state, attempt and the claiming handle), so a
//     replica that lost its lease cannot finish or fail the job.
//   - Leases are judged by the database's clock, so replicas with skewed
//     clocks do not steal each other's live work (see DB.Now).
//   - Writes are committed before a method returns, and concurrent writes of
//     one process share a transaction (group commit), so that a 2xx follows
//     a commit without paying an fsync per request.
//   - New jobs and requests are announced with NOTIFY in the transaction that
//     writes them (Listen, ListenRequests); background work is given to one
//     replica at a time through a lease row (TryLead).
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrClosed is returned by writes attempted after Close.
var ErrClosed = errors.New("store is closed")

// Defaults of the group commit.
const (
	// defaultWriters is how many transactions a process has open for writes
	// at once: while one commits (and waits for its fsync), the next batch
	// gathers and runs on another connection.
	defaultWriters = 2
	// defaultMaxBatch bounds how many writes share one transaction.
	defaultMaxBatch = 512
	// defaultBatchTimeout bounds one batch's transaction, so that a database
	// that stops answering fails the waiting writes instead of hanging them.
	defaultBatchTimeout = 30 * time.Second
	// maxRetries is how often a write that lost a deadlock or a
	// serialization conflict to another replica is run again.
	maxRetries = 3
)

// Option configures Open.
type Option func(*options)

type options struct {
	schema       string
	maxConns     int
	writers      int
	maxBatch     int
	window       time.Duration
	batchTimeout time.Duration
	logger       *slog.Logger
}

// WithSchema keeps hookbay's tables in the named schema (created if
// missing) instead of the URL's search_path. Deployments sharing one
// database each use their own schema; so do the tests, one per test.
// Notification channels are named after it, so that deployments in
// different schemas do not wake each other.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithMaxConns caps the connection pool at n (store.postgres.max_conns),
// over the URL's pool_max_conns. The pool keeps at least the writers and
// four more; each listener holds one connection besides.
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// WithWriters sets how many write transactions run at once (default 2).
func WithWriters(n int) Option { return func(o *options) { o.writers = n } }

// WithGroupCommit tunes the group commit: a batch takes every write queued
// when its transaction starts, and waits up to window (default 0: no wait)
// for more, up to maxOps writes (default 512).
func WithGroupCommit(window time.Duration, maxOps int) Option {
	return func(o *options) { o.window, o.maxBatch = window, maxOps }
}

// WithBatchTimeout bounds one write transaction (default 30s): past it, the
// writes in it fail instead of waiting for a database that does not answer.
func WithBatchTimeout(d time.Duration) Option { return func(o *options) { o.batchTimeout = d } }

// WithLogger sets the logger of background errors (default slog.Default).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// DB is the PostgreSQL store. Its methods may be called concurrently; several
// DBs, in one process or many, may share a database.
type DB struct {
	// Now is the clock that stamps what a method is given no time for (the
	// creation of idempotency keys), and that the lease ends callers pass
	// (ReserveKeys, ExtendLease) are read by; nil means the database's
	// clock and the local one. Tests set it. Set it before the first write.
	//
	// Leases are never judged by it, nor by the now a method is passed. A
	// lease (of a job, an idempotency key or a TryLead) is kept with two
	// ends: the one its holder was given, on the holder's clock (the
	// LockedUntil that methods return and finders show), and the same
	// length counted from the database's now() (lease_expires), which alone
	// decides whether the lease has expired. So replicas with skewed clocks
	// agree on who holds what, and a holder that cuts its work off by its
	// own clock stops before the database lets another take over. The now
	// passed to ClaimJobs picks the jobs that are due (their times were set
	// by callers' clocks too); RescueJobs' stamps the interrupted attempts
	// and judges a job's age for the retry policy.
	Now func() time.Time

	// Logger receives background errors.
	Logger *slog.Logger

	pool *pgxpool.Pool
	opts options
	// id names this handle in the claims it makes (jobs.claimed_by).
	id int64
	// jobsChannel, requestsChannel and jobChangesChannel are the NOTIFY
	// channels: jobs to take, requests recorded, attempts recorded.
	jobsChannel, requestsChannel, jobChangesChannel string

	ops        chan writeOp
	quit       chan struct{}
	writers    sync.WaitGroup
	writerDone chan struct{}
	closeOnce  sync.Once

	// listenCtx ends when the store closes, stopping the listeners.
	listenCtx    context.Context
	stopListen   context.CancelFunc
	listeners    sync.WaitGroup
	listenersMu  sync.Mutex
	listenClosed bool

	// commits is told of every group commit (ObserveCommits).
	commits atomic.Pointer[func(writes int, took time.Duration, failed int)]
	// conflicts counts the transactions that lost a deadlock or a
	// serialization conflict (Conflicts).
	conflicts atomic.Int64
}

// Open connects to the PostgreSQL database at url (a libpq URL or DSN;
// pgxpool's pool_* parameters apply), runs the migrations not yet applied
// and starts the writers.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	o := options{writers: defaultWriters, maxBatch: defaultMaxBatch, batchTimeout: defaultBatchTimeout, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.writers <= 0 {
		o.writers = defaultWriters
	}
	if o.maxBatch <= 0 {
		o.maxBatch = defaultMaxBatch
	}
	if o.batchTimeout <= 0 {
		o.batchTimeout = defaultBatchTimeout
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL URL: %w", err)
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.schema}.Sanitize()
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "hookbay"
	}
	if o.maxConns > 0 {
		cfg.MaxConns = int32(o.maxConns)
	}
	// The writers each hold a connection while they commit; readers,
	// purges and leases need some left. (Listeners have their own.)
	if least := int32(o.writers + 4); cfg.MaxConns < least {
		cfg.MaxConns = least
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	db := &DB{
		Logger:     o.logger,
		pool:       pool,
		opts:       o,
		id:         randomID(),
		ops:        make(chan writeOp, o.maxBatch),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	schema, err := db.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	db.jobsChannel, db.requestsChannel = channelName("hookbay_jobs", schema), channelName("hookbay_requests", schema)
	db.jobChangesChannel = channelName("hookbay_job_changes", schema)
	db.listenCtx, db.stopListen = context.WithCancel(context.Background())
	for range o.writers {
		db.writers.Add(1)
		go db.writer()
	}
	go func() { db.writers.Wait(); close(db.writerDone) }()
	return db, nil
}

// randomID returns a positive random int64, never 0.
func randomID() int64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported systems
		}
		if id := int64(binary.BigEndian.Uint64(b[:]) >> 1); id != 0 {
			return id
		}
	}
}

// channelName is the NOTIFY channel for base in schema: base itself in the
// public schema, else base_schema (hashed when that is too long a name).
func channelName(base, schema string) string {
	if schema == "" || schema == "public" {
		return base
	}
	name := base + "_" + schema
	if len(name) > 63 { // PostgreSQL's NAMEDATALEN-1
		var h uint64 = 14695981039346656037 // FNV-1a
		for i := 0; i < len(schema); i++ {
			h = (h ^ uint64(schema[i])) * 1099511628211
		}
		name = fmt.Sprintf("%s_%016x", base, h)
	}
	return name
}

// migrate runs the embedded migrations not yet applied, in one transaction
// holding an advisory lock: replicas starting at once take turns, and the
// ones after the first find nothing left to do. It returns the schema the
// tables are in.
func (db *DB) migrate(ctx context.Context) (string, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("migrate: begin: %w", translate(err))
	}
	defer tx.Rollback(ctx)
	// A transaction-level lock: released by COMMIT, and usable behind a
	// transaction-pooling PgBouncer.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('hookbay migrate ' || COALESCE($1, current_schema(), ''), 0))`,
		nullString(db.opts.schema)); err != nil {
		return "", fmt.Errorf("migrate: take the migration lock: %w", translate(err))
	}
	if db.opts.schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{db.opts.schema}.Sanitize()); err != nil {
			return "", fmt.Errorf("migrate: create schema %s: %w", db.opts.schema, translate(err))
		}
	}
	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", fmt.Errorf("migrate: read the schema: %w", translate(err))
	} else if schema == nil {
		return "", errors.New("migrate: no schema to create the tables in: the search_path names none that exists (use store.postgres.schema or fix the URL)")
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       text        PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return "", fmt.Errorf("migrate: create schema_migrations: %w", translate(err))
	}
	applied := map[string]bool{}
	rows, err := tx.Query(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return "", fmt.Errorf("migrate: read schema_migrations: %w", translate(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("migrate: read schema_migrations: %w", translate(err))
	}
	for _, n := range names {
		applied[n] = true
	}
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return "", fmt.Errorf("migrate: list migrations: %w", err)
	}
	sort.Strings(files)
	for _, n := range names {
		if !slices.Contains(files, "migrations/"+n) {
			return "", fmt.Errorf("migrate: the database was migrated by a newer hookbay (%s is not one of this version's migrations): run that version or a later one", n)
		}
	}
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		if applied[name] {
			continue
		}
		buf, err := fs.ReadFile(migrationFS, f)
		if err != nil {
			return "", fmt.Errorf("migrate %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, string(buf)); err != nil {
			return "", fmt.Errorf("migrate %s: %w", name, translate(err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
			return "", fmt.Errorf("migrate %s: record it: %w", name, translate(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("migrate: commit: %w", translate(err))
	}
	return *schema, nil
}

// Close stops the writers after they have committed every queued write,
// stops the listeners and closes the connections.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.quit)
		<-db.writerDone
		db.listenersMu.Lock()
		db.listenClosed = true
		db.listenersMu.Unlock()
		db.stopListen()
		db.listeners.Wait()
		db.pool.Close()
	})
	return nil
}

// Ping checks that the database answers a query: hookbay is ready only
// when it can commit what it acknowledges.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT 1`).Scan(&n); err != nil {
		return fmt.Errorf("ping store: %w", translate(err))
	}
	return nil
}

// stamp is the time to stamp a row with where a method is given none: Now's,
// or nil for the database's (statements read COALESCE($n, now())).
func (db *DB) stamp() *time.Time {
	if db.Now == nil {
		return nil
	}
	t := db.Now()
	return &t
}

// clockNow is the clock callers read lease ends by: Now when set, else the
// local clock. A lease end passed in is turned into a length by it, which
// the database counts from its own now() for lease_expires.
func (db *DB) clockNow() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// micros is d in microseconds, the unit statements add to a lease.
func micros(d time.Duration) int64 { return d.Microseconds() }

// nullTime is t as a statement argument: NULL when zero.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nullString is s as a statement argument: NULL when empty.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// timeOf reads a nullable time: NULL is the zero time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
