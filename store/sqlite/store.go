// Package sqlite keeps hookbay's requests, idempotency records and job queue
// in one SQLite file. Writes go through a single writer goroutine that
// commits concurrent requests together (group commit), so that every 2xx is
// preceded by an fsync without one fsync per request.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// writerPragmas run on the writer's connection when it opens: automatic
// checkpoints are off, because a checkpoint inside a commit would stall
// every request in that batch, so the checkpointer goroutine runs them on a
// connection of its own instead. journal_size_limit truncates the WAL file
// after it is reset.
const writerPragmas = `PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864`

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

// maxBatch bounds how many writes share one transaction.
const maxBatch = 512

// DB is the SQLite store.
type DB struct {
	// Now is the clock; tests replace it.
	Now func() time.Time

	path string
	wdb  *sql.DB // one connection: SQLite has one writer anyway
	rdb  *sql.DB // readers, concurrent under WAL
	cdb  *sql.DB // the checkpointer's connection

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
	walOver atomic.Bool
}

type writeOp struct {
	fn   func(*sql.Tx) error
	done chan error
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
	if err := db.stmts.prepare(db.wdb); err != nil {
		db.wdb.Close()
		db.rdb.Close()
		db.cdb.Close()
		return nil, err
	}
	go db.writer()
	go db.checkpointer()
	return db, nil
}

// checkpointer copies the WAL into the database file in the background
// (PASSIVE: it never blocks the writer), so that the WAL stays small
// without costing commits any latency. When the WAL has outgrown
// maxWALFrames, it asks the writer to restart it: under sustained load
// only the writer finds a moment outside a transaction, and a RESTART from
// this connection kept losing the race for the lock (the WAL reached
// 900 MB at 46k commits/s in a test).
func (db *DB) checkpointer() {
	defer close(db.checkpointDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		var busy, frames, copied int
		err := db.cdb.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		if err == nil && frames > maxWALFrames {
			db.walOver.Store(true)
		}
		var se sqlite3.Error
		if errors.As(err, &se) && se.Code == sqlite3.ErrBusy {
			err = nil // busy readers or writer: next time
		}
		if err != nil {
			db.Logger.Warn("checkpoint", "err", err)
		}
	}
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
	return errors.Join(cerr, db.cdb.Close(), db.rdb.Close(), db.wdb.Close())
}

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	if err := db.rdb.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// migrate runs the embedded migrations not yet applied, each in its own
// transaction.
func (db *DB) migrate() error {
	if _, err := db.wdb.Exec(`CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := db.migrateFile(name); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}

func (db *DB) migrateFile(name string) error {
	tx, err := db.wdb.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	} else if n > 0 {
		return nil
	}
	buf, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(string(buf)); err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO migrations (name) VALUES (?)`, name); err != nil {
		return err
	}
	return tx.Commit()
}

// write runs fn in a write transaction shared with other concurrent writes
// and returns once that transaction is committed. fn may run more than once
// (when another write in its batch fails, the batch is committed again
// without it), so it must only touch the transaction and its own results.
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	op := writeOp{fn: fn, done: make(chan error, 1)}
	select {
	case db.ops <- op:
	case <-db.quit:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("queue write: %w", ctx.Err())
	}
	// Once queued the write will be attempted; wait for its outcome even if
	// ctx ends, so that the caller never answers on a guess.
	select {
	case err := <-op.done:
		return err
	case <-db.writerDone:
		select {
		case err := <-op.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// execCount runs one statement as a write of its own and returns how many
// rows it changed.
func (db *DB) execCount(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// writer commits queued writes in batches until Close.
func (db *DB) writer() {
	defer close(db.writerDone)
	batch := make([]writeOp, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case op := <-db.ops:
			batch = append(batch, op)
		case <-db.quit:
			// Drain what was queued before Close.
			for {
				select {
				case op := <-db.ops:
					db.commitAll([]writeOp{op})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-db.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		db.commitAll(batch)
		if db.walOver.CompareAndSwap(true, false) { // at most one try per tick
			db.restartWAL()
		}
	}
}

// restartWAL copies what the WAL holds into the database and makes the
// next commit start it over. The writer runs it between batches, so no
// write is in its way; readers may be, and it waits for them only
// restartBusyMs before it leaves the WAL for the next try. SQLite reports
// such a busy RESTART in its result, not as an error.
func (db *DB) restartWAL() {
	if _, err := db.wdb.Exec(fmt.Sprintf(`PRAGMA busy_timeout = %d`, restartBusyMs)); err != nil {
		db.Logger.Warn("restart the WAL", "err", err)
		return
	}
	var busy, frames, copied int
	err := db.wdb.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied)
	if _, rerr := db.wdb.Exec(fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeoutMs)); rerr != nil {
		err = errors.Join(err, rerr) // the writer must not keep the short wait
	}
	if se := (sqlite3.Error{}); errors.As(err, &se) && se.Code == sqlite3.ErrBusy {
		err = nil
	}
	switch {
	case err != nil:
		db.Logger.Warn("restart the WAL", "err", err)
	case busy != 0:
		db.Logger.Debug("WAL restart postponed: readers busy", "frames", frames)
	}
}

// commitAll commits a batch and tells each write its outcome. A write that
// fails rolls the batch back: it is tried once more on its own (its
// failure may have come from another write in the transaction) and the
// others are committed again without it, so one bad write costs one more
// transaction, not one per write. When BEGIN or COMMIT itself fails,
// nothing was written, and every write gets that error.
func (db *DB) commitAll(batch []writeOp) {
	for len(batch) > 0 {
		i, err := db.commit(batch)
		if err == nil || i < 0 || len(batch) == 1 {
			for _, op := range batch {
				op.done <- err
			}
			return
		}
		_, alone := db.commit(batch[i : i+1])
		batch[i].done <- alone
		batch = append(batch[:i:i], batch[i+1:]...)
	}
}

// commit runs the batch's writes in one transaction. On failure it returns
// the index of the write that failed, or -1 when BEGIN or COMMIT did.
func (db *DB) commit(batch []writeOp) (int, error) {
	tx, err := db.wdb.Begin()
	if err != nil {
		return -1, fmt.Errorf("begin: %w", err)
	}
	for i, op := range batch {
		if err := op.fn(tx); err != nil {
			tx.Rollback()
			return i, err
		}
	}
	if err := tx.Commit(); err != nil {
		return -1, fmt.Errorf("commit: %w", err)
	}
	return -1, nil
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
