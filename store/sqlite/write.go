package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 512

// writeTx is the writer's open transaction, on the writer's one
// connection, through which a write runs its statements. It is what
// database/sql's Tx would be without two costs paid per transaction: Tx
// starts a goroutine that watches the transaction's context, and a
// statement given a context that can end runs in a goroutine of its own in
// the driver. At a low rate, where a transaction holds a single request,
// those hand-offs were two or more goroutine wake-ups per request.
type writeTx struct{ c *sql.Conn }

// Exec runs a statement that returns no rows.
func (t writeTx) Exec(q string, args ...any) (sql.Result, error) {
	return t.c.ExecContext(context.Background(), q, args...)
}

// Query runs a statement that returns rows.
func (t writeTx) Query(q string, args ...any) (*sql.Rows, error) {
	return t.c.QueryContext(context.Background(), q, args...)
}

// QueryRow runs a statement that returns at most one row.
func (t writeTx) QueryRow(q string, args ...any) *sql.Row {
	return t.c.QueryRowContext(context.Background(), q, args...)
}

// writeOp is a write queued for the writer: fn runs in the batch's
// transaction, and done receives the outcome once it is known.
type writeOp struct {
	fn   func(writeTx) error
	done chan error
}

// write runs fn in a write transaction shared with other concurrent writes
// and returns once that transaction is committed. fn may run more than once
// (when another write in its batch fails, the batch is committed again
// without it), so it must only touch the transaction and its own results.
// ctx bounds only the wait for room in the writer's queue: a queued write
// is seen through.
func (db *DB) write(ctx context.Context, fn func(writeTx) error) error {
	op := writeOp{fn: fn, done: make(chan error, 1)}
	// Try the queue first: asking ctx for Done can start a timer, which a
	// write the queue takes at once does not need.
	select {
	case db.ops <- op:
	default:
		select {
		case db.ops <- op:
		case <-db.quit:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("queue write: %w", ctx.Err())
		}
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
	err := db.write(ctx, func(tx writeTx) error {
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

// commitAll commits a batch and tells each write its outcome. A write that
// fails rolls the batch back: it is tried once more on its own (its
// failure may have come from another write in the transaction) and the
// others are committed again without it, so one bad write costs one more
// transaction, not one per write. When BEGIN or COMMIT itself fails,
// nothing was written, and every write gets that error.
func (db *DB) commitAll(batch []writeOp) {
	start, writes, failed := time.Now(), len(batch), 0
	// Outcomes are told after the observer, so that a caller who has its
	// answer can count on the commit having been observed.
	type outcome struct {
		op  writeOp
		err error
	}
	told := make([]outcome, 0, len(batch))
	for len(batch) > 0 {
		i, err := db.commit(batch)
		if err == nil || i < 0 || len(batch) == 1 {
			if storeFailure(err) {
				failed += len(batch)
			}
			for _, op := range batch {
				told = append(told, outcome{op, err})
			}
			break
		}
		_, alone := db.commit(batch[i : i+1])
		if storeFailure(alone) {
			failed++
		}
		told = append(told, outcome{batch[i], alone})
		batch = append(batch[:i:i], batch[i+1:]...)
	}
	if f := db.commits.Load(); f != nil {
		(*f)(writes, time.Since(start), failed)
	}
	for _, o := range told {
		o.op.done <- o.err
	}
}

// storeFailure reports whether a write's error is the store's own, for
// the commit observer: an application error a write returns on purpose
// (a replay of a request that does not exist) is not one.
func storeFailure(err error) bool {
	return err != nil && hooks.ErrorCode(err) == hooks.EINTERNAL
}

// commit runs the batch's writes in one transaction. On failure it returns
// the index of the write that failed, or -1 when BEGIN or COMMIT did.
func (db *DB) commit(batch []writeOp) (int, error) {
	// IMMEDIATE takes the write lock at BEGIN, so that a read-then-write
	// transaction cannot deadlock with another process's.
	if _, err := db.raw.Exec(`BEGIN IMMEDIATE`, nil); err != nil {
		return -1, fmt.Errorf("begin: %w", err)
	}
	tx := writeTx{db.wconn}
	for i, op := range batch {
		if err := op.fn(tx); err != nil {
			db.rollback()
			return i, err
		}
	}
	if _, err := db.raw.Exec(`COMMIT`, nil); err != nil {
		// A COMMIT that failed busy leaves the transaction open.
		db.rollback()
		return -1, fmt.Errorf("commit: %w", err)
	}
	return -1, nil
}

// rollback ends the writer's open transaction, if SQLite has not already.
func (db *DB) rollback() {
	if db.raw.AutoCommit() {
		return
	}
	if _, err := db.raw.Exec(`ROLLBACK`, nil); err != nil {
		db.Logger.Error("roll back the writer's transaction", "err", err)
	}
}
