// Package sqlite keeps hookbay's requests, idempotency records and job queue
// in one SQLite file. Writes go through a single writer goroutine that
// commits concurrent requests together (group commit), so that every 2xx is
// preceded by an fsync without one fsync per request.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

// writerPragmas run on the writer's connection when it opens: automatic
// checkpoints are off, because a checkpoint inside a commit would stall
// every request in that batch, so the checkpointer goroutine runs them on a
// connection of its own instead. journal_size_limit truncates the WAL file
// after it is reset. temp_store = MEMORY keeps the savepoint journal of a
// batch's chunk (see insertItemRun) in memory: by default SQLite moves it to
// a temporary file past 64 KiB, which a chunk whose keys land on scattered
// pages passes (BenchmarkDB_CommitBatch1000/keys=scattered: 42k customers/s
// with the file, 55k without).
const writerPragmas = `PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY`

// writerConnector opens the writer's one connection for database/sql and
// hands the raw SQLite connection to the DB, whose hot statements run on it
// directly.
type writerConnector struct {
	db  *DB
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c writerConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	raw := conn.(*sqlite3.SQLiteConn)
	if _, err := raw.Exec(writerPragmas, nil); err != nil {
		raw.Close()
		return nil, err
	}
	c.db.raw, c.db.hot = raw, nil // hot statements are prepared on first use
	return writerConn{raw, c.db}, nil
}

func (c writerConnector) Driver() driver.Driver { return c.drv }

// writerConn is the writer's connection as database/sql holds it: closing
// it finalizes the hot statements first, which SQLite requires before it
// releases the connection.
type writerConn struct {
	*sqlite3.SQLiteConn
	db *DB
}

func (c writerConn) Close() error {
	c.db.hot.close()
	c.db.raw, c.db.hot = nil, nil
	return c.SQLiteConn.Close()
}

const (
	// checkpointInterval is how often the WAL is copied into the database.
	checkpointInterval = 250 * time.Millisecond
	// maxWALFrames bounds the WAL under sustained load: past it, the writer
	// runs a RESTART checkpoint between two batches so that the WAL starts
	// over.
	maxWALFrames = 8192
	// busyTimeoutMs is how long a connection waits for a lock, and
	// restartBusyMs how long the writer's RESTART waits for readers.
	busyTimeoutMs = 5000
	restartBusyMs = 50
)

// ErrClosed is returned by writes attempted after Close.
var ErrClosed = errors.New("store is closed")

// DB is the SQLite store.
type DB struct {
	// Now is the clock; tests replace it.
	Now func() time.Time

	path string
	wdb  *sql.DB // one connection: SQLite has one writer anyway
	// wconn is wdb's connection, held by the writer from Open to Close.
	wconn *sql.Conn
	rdb   *sql.DB // readers, concurrent under WAL
	cdb   *sql.DB // the checkpointer's connection

	// Logger receives background errors.
	Logger *slog.Logger

	ops            chan writeOp
	quit           chan struct{}
	writerDone     chan struct{}
	checkpointDone chan struct{}
	stmts          statements
	// raw is the writer's connection as the driver sees it, and hot the
	// statements prepared on it (nil until first used on that connection).
	// Only the writer goroutine touches either once Open has returned.
	raw       *sqlite3.SQLiteConn
	hot       *hotStatements
	closeOnce sync.Once
	// walOver is set by the checkpointer when the WAL has outgrown
	// maxWALFrames, for the writer to restart it.
	walOver      atomic.Bool
	maxWALFrames atomic.Int64 // maxWALFrames, but for tests
	walRestarts  atomic.Int64 // RESTART checkpoints tried, for tests
	// commits is told of every group commit (ObserveCommits).
	commits atomic.Pointer[func(writes int, took time.Duration, failed int)]
	// legacyItemKeys is set while the idempotency table may hold batch
	// customers' keys written before migration 0009, which kept them
	// there: a batch's items are then checked against it one by one.
	legacyItemKeys atomic.Bool
}

// Open opens (creating if needed) the SQLite database at path, migrates it
// and starts the writer.
func Open(path string) (*DB, error) {
	db := &DB{
		Now:            time.Now,
		path:           path,
		ops:            make(chan writeOp, maxBatch),
		quit:           make(chan struct{}),
		writerDone:     make(chan struct{}),
		checkpointDone: make(chan struct{}),
		Logger:         slog.Default(),
	}
	// Pragmas go in the DSN so that every pooled connection gets them.
	// synchronous=FULL: a commit is on disk before it returns, which is what
	// lets a 2xx promise durability. _txlock=immediate takes the write lock
	// at BEGIN so that read-then-write transactions cannot deadlock.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", strconv.Itoa(busyTimeoutMs))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_cache_size", "-32000") // KiB: index pages stay in memory
	// The connection is used by one goroutine at a time (database/sql's
	// rule, and the writer's), so SQLite's own per-call mutex is dropped:
	// a batch's thousands of binds each took and released it.
	q.Set("_mutex", "no")
	var err error
	db.wdb = sql.OpenDB(writerConnector{db: db, dsn: "file:" + path + "?" + q.Encode(), drv: &sqlite3.SQLiteDriver{}})
	// One connection: SQLite has one writer anyway, and the hot statements
	// are prepared on it.
	db.wdb.SetMaxOpenConns(1)
	db.wdb.SetMaxIdleConns(1)
	db.wdb.SetConnMaxLifetime(0)
	if err := db.migrate(); err != nil {
		db.wdb.Close()
		return nil, openError(path, err)
	}
	if err := db.readLegacyItemKeys(context.Background(), db.wdb); err != nil {
		db.wdb.Close()
		return nil, err
	}
	r := url.Values{}
	r.Set("_busy_timeout", strconv.Itoa(busyTimeoutMs))
	r.Set("_query_only", "true")
	if db.rdb, err = sql.Open("sqlite3", "file:"+path+"?"+r.Encode()); err != nil {
		db.wdb.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	db.rdb.SetMaxOpenConns(8)
	c := url.Values{}
	// A short wait: a checkpoint that cannot get its locks gives up and
	// tries again later rather than holding the writer up.
	c.Set("_busy_timeout", "50")
	c.Set("_synchronous", "FULL")
	if db.cdb, err = sql.Open("sqlite3", "file:"+path+"?"+c.Encode()); err != nil {
		db.wdb.Close()
		db.rdb.Close()
		return nil, fmt.Errorf("open %s for checkpoints: %w", path, err)
	}
	db.cdb.SetMaxOpenConns(1)
	if db.wconn, err = db.wdb.Conn(context.Background()); err != nil {
		db.wdb.Close()
		db.rdb.Close()
		db.cdb.Close()
		return nil, fmt.Errorf("open %s for writing: %w", path, err)
	}
	if err := db.stmts.prepare(db.wconn); err != nil {
		db.wconn.Close()
		db.wdb.Close()
		db.rdb.Close()
		db.cdb.Close()
		return nil, err
	}
	go db.writer()
	db.maxWALFrames.Store(maxWALFrames)
	go db.checkpointer()
	return db, nil
}

// Close stops the writer after it has committed every queued write, then
// closes the database.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() { err = db.close() })
	return err
}

func (db *DB) close() error {
	close(db.quit)
	<-db.writerDone
	<-db.checkpointDone
	db.stmts.close()
	// A final checkpoint leaves a compact database file behind.
	_, cerr := db.cdb.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	if se := (sqlite3.Error{}); errors.As(cerr, &se) && se.Code == sqlite3.ErrBusy {
		cerr = nil // another process is reading: it is left to the next one
	}
	return errors.Join(cerr, db.cdb.Close(), db.rdb.Close(), db.wconn.Close(), db.wdb.Close())
}

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	if err := db.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// micros converts a time to the stored form; the zero time is NULL.
func micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64)
}
