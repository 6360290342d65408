package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// writeOp is one write waiting for a transaction.
type writeOp struct {
	fn func(*wtx) error
	// pipe, when set, is the write as one statement, which is sent with the
	// other such writes of its batch in one round trip (a pipeline) instead
	// of one after the other.
	pipe *pipedOp
	done chan error
}

// pipedOp is a write made of one statement.
type pipedOp struct {
	sql  string
	args []any
	// read reads the statement's result. False means the write needs more
	// than this statement after all (an idempotency key was taken): the
	// batch is then rolled back and run one write at a time, so that no
	// write sees another's half done.
	read func(pgx.Row, *wtx) (bool, error)
}

// errOneByOne is commit's answer when a piped write needs more than its
// statement: the batch is to be run again without the pipeline.
var errOneByOne = errors.New("a piped write needs more than its statement")

// wtx is the transaction a write runs in, and what the write announces once
// it commits.
type wtx struct {
	ctx context.Context
	tx  pgx.Tx
	// pressing is the priority of the most pressing job the writes queued
	// (hooks.NoPriority: none), announced to listeners; requests lists the
	// requests they recorded, jobs the jobs whose attempts they recorded,
	// and manyJobs says that jobs changed in numbers not worth listing (a
	// retry of every dead job).
	pressing int
	requests []int64
	jobs     []int64
	manyJobs bool
}

// maxJobChanges is how many changed jobs one commit announces by id; above
// it, the commit says only that jobs changed.
const maxJobChanges = 1000

// queued notes that a write queued a job of the given priority.
func (w *wtx) queued(priority int) { w.pressing = min(w.pressing, priority) }

func (w *wtx) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	return w.tx.Exec(w.ctx, sql, args...)
}

func (w *wtx) query(sql string, args ...any) (pgx.Rows, error) {
	return w.tx.Query(w.ctx, sql, args...)
}

func (w *wtx) queryRow(sql string, args ...any) pgx.Row {
	return w.tx.QueryRow(w.ctx, sql, args...)
}

// write runs fn in a write transaction shared with other concurrent writes
// and returns once that transaction is committed. fn may run more than once
// (when another write in its batch fails, or a deadlock with another replica
// rolls the batch back, the batch is committed again without it), so it must
// only touch the transaction and reset its own results first.
func (db *DB) write(ctx context.Context, fn func(*wtx) error) error {
	return db.do(ctx, writeOp{fn: fn})
}

// do is write for an op that may also be piped.
func (db *DB) do(ctx context.Context, op writeOp) error {
	op.done = make(chan error, 1)
	select {
	case <-db.quit:
		return ErrClosed
	default:
	}
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

// writer commits queued writes in batches until Close.
func (db *DB) writer() {
	defer db.writers.Done()
	batch := make([]writeOp, 0, db.opts.maxBatch)
	for {
		batch = batch[:0]
		select {
		case op := <-db.ops:
			batch = append(batch, op)
		case <-db.quit:
			// Commit what was queued before Close.
			for {
				select {
				case op := <-db.ops:
					db.commitAll([]writeOp{op})
				default:
					return
				}
			}
		}
		batch = db.fill(batch)
		db.commitAll(batch)
	}
}

// fill adds the writes queued behind the first of a batch, waiting up to
// the group-commit window for more.
func (db *DB) fill(batch []writeOp) []writeOp {
	for len(batch) < db.opts.maxBatch {
		select {
		case op := <-db.ops:
			batch = append(batch, op)
			continue
		default:
		}
		break
	}
	if db.opts.window <= 0 || len(batch) >= db.opts.maxBatch {
		return batch
	}
	t := time.NewTimer(db.opts.window)
	defer t.Stop()
	for len(batch) < db.opts.maxBatch {
		select {
		case op := <-db.ops:
			batch = append(batch, op)
		case <-t.C:
			return batch
		case <-db.quit:
			return batch
		}
	}
	return batch
}

// commitAll commits a batch and tells each write its outcome. A write that
// fails rolls the batch back: it is tried on its own (its failure may have
// come from another write in the transaction, or from a deadlock with
// another replica) and the others are committed again without it. When
// BEGIN or COMMIT itself fails, every write gets that error: a failed COMMIT
// may or may not have been applied, and the callers answer "retry", which
// the idempotency records make safe.
func (db *DB) commitAll(batch []writeOp) {
	start, writes, failed := time.Now(), len(batch), 0
	piped := true
	for len(batch) > 0 {
		i, err := db.commit(batch, piped)
		if errors.Is(err, errOneByOne) {
			piped = false
			continue
		}
		if err == nil || i < 0 || len(batch) == 1 {
			if err != nil && len(batch) == 1 && i >= 0 {
				err = db.retryAlone(batch[0], err)
			}
			if storeFailure(err) {
				failed += len(batch)
			}
			// Before the writes return, so that a write seen done is
			// counted.
			db.observeCommit(writes, time.Since(start), failed)
			for _, op := range batch {
				op.done <- err
			}
			return
		}
		alone := db.retryAlone(batch[i], nil)
		if storeFailure(alone) {
			failed++
		}
		batch[i].done <- alone
		batch = append(batch[:i:i], batch[i+1:]...)
	}
}

// retryAlone commits op in a transaction of its own, again while it loses
// deadlocks or serialization conflicts. err is the failure of its last run,
// if it already ran alone.
func (db *DB) retryAlone(op writeOp, err error) error {
	for try := 0; try < maxRetries; try++ {
		if err != nil && !retryable(err) {
			return err
		}
		if try > 0 {
			time.Sleep(time.Duration(try) * 5 * time.Millisecond)
		}
		_, err = db.commit([]writeOp{op}, false)
		if err == nil {
			return nil
		}
	}
	return err
}

// retryable reports whether err is a deadlock or serialization failure:
// running the write again may well succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// commit runs the batch's writes in one transaction, the piped ones first
// and together when piped is set. On failure it returns the index of the
// write that failed, or -1 when BEGIN, NOTIFY or COMMIT did.
func (db *DB) commit(batch []writeOp, piped bool) (int, error) {
	i, err := db.commitOnce(batch, piped)
	if err != nil && retryable(err) {
		db.conflicts.Add(1)
	}
	return i, err
}

// Conflicts returns how many write transactions lost a deadlock or a
// serialization conflict with another transaction, and were run again.
func (db *DB) Conflicts() int64 { return db.conflicts.Load() }

func (db *DB) commitOnce(batch []writeOp, piped bool) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.batchTimeout)
	defer cancel()
	tx, err := db.pool.Begin(ctx)
	if err != nil && pgconn.SafeToRetry(err) {
		// A pooled connection that the server dropped (a restart): the
		// pool lets it go, and the next one is fresh.
		tx, err = db.pool.Begin(ctx)
	}
	if err != nil {
		return -1, fmt.Errorf("begin: %w", translate(err))
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	w := &wtx{ctx: ctx, tx: tx, pressing: hooks.NoPriority}
	if piped {
		if i, err := pipeline(w, batch); err != nil {
			return i, err
		}
	}
	for i, op := range batch {
		if piped && op.pipe != nil {
			continue
		}
		if err := op.fn(w); err != nil {
			return i, translate(err)
		}
	}
	// Listeners hear of the batch when, and only if, it commits: the most
	// pressing priority queued (hooks.Queue.Queued), the requests recorded
	// and the jobs that changed.
	var notes pgx.Batch
	pressing, requests, jobs := w.pressing, w.requests, w.jobs
	if w.manyJobs || len(jobs) > maxJobChanges {
		jobs = nil
		notes.Queue(`SELECT pg_notify($1, '*')`, db.jobChangesChannel)
	}
	if pressing < hooks.NoPriority {
		notes.Queue(`SELECT pg_notify($1, $2)`, db.jobsChannel, strconv.Itoa(pressing))
	}
	for _, payload := range idPayloads(requests) {
		notes.Queue(`SELECT pg_notify($1, $2)`, db.requestsChannel, payload)
	}
	for _, payload := range idPayloads(jobs) {
		notes.Queue(`SELECT pg_notify($1, $2)`, db.jobChangesChannel, payload)
	}
	if notes.Len() > 0 {
		if err := tx.SendBatch(ctx, &notes).Close(); err != nil {
			return -1, fmt.Errorf("notify: %w", translate(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return -1, fmt.Errorf("commit: %w", translate(err))
	}
	return -1, nil
}

// pipeline sends the piped writes of batch in one round trip and reads
// their results. It returns errOneByOne when one of them needs more.
func pipeline(w *wtx, batch []writeOp) (int, error) {
	var b pgx.Batch
	for _, op := range batch {
		if op.pipe != nil {
			b.Queue(op.pipe.sql, op.pipe.args...)
		}
	}
	if b.Len() == 0 {
		return -1, nil
	}
	br := w.tx.SendBatch(w.ctx, &b)
	defer br.Close()
	whole := true
	for i, op := range batch {
		if op.pipe == nil {
			continue
		}
		ok, err := op.pipe.read(br.QueryRow(), w)
		if err != nil {
			return i, translate(err)
		}
		whole = whole && ok
	}
	if err := br.Close(); err != nil {
		return -1, translate(err)
	}
	if !whole {
		return -1, errOneByOne
	}
	return -1, nil
}

// maxPayload keeps a notification's payload under PostgreSQL's 8000 bytes.
const maxPayload = 7900

// idPayloads lists ids as comma-separated payloads of at most maxPayload
// bytes each.
func idPayloads(ids []int64) []string {
	var out []string
	var b []byte
	for _, id := range ids {
		if len(b) > maxPayload-21 {
			out, b = append(out, string(b)), b[:0]
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%d", id)
	}
	if len(b) > 0 {
		out = append(out, string(b))
	}
	return out
}
