package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hookbay/hookbay/hooks"
	"github.com/mattn/go-sqlite3"
)

// itemChunk is how many of a batch's customers one multi-row INSERT writes.
//
// A 1000-customer Bloomreach batch writes one row per customer: its job,
// which keeps the customer's key (item_key). One statement per row binds
// each column with a cgo call of its own, which profiling put at about a
// third of the writer's time per customer. A chunk binds the columns its
// rows share once, and then each row's own.
const itemChunk = 64

// itemStatements are the writer's multi-row job inserts, prepared on first
// use for each row count (at most itemChunk).
type itemStatements struct {
	jobs map[int]*sqlite3.SQLiteStmt
}

// Columns of the multi-row inserts: the shared ones first, bound once.
const (
	jobShared = 11 // see jobRows
	jobOwn    = 4  // payload_bytes, payload_at, payload_len, item_key
)

// jobRows returns the INSERT of n jobs alike but for their payload and
// key, each row's payload given whole or as its bounds in the request's
// body (see hooks.ReceiptItem.PayloadInBody). A row whose key another job
// holds is skipped.
func jobRows(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO jobs (request_ref, sender, name, urgency, priority, state, scheduled_at, created_at, finished_at,
		attempts, locked_until, payload_bytes, payload_at, payload_len, item_key) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11")
		for k := range jobOwn {
			b.WriteString(", ?")
			b.WriteString(strconv.Itoa(jobShared + 1 + i*jobOwn + k))
		}
		b.WriteByte(')')
	}
	b.WriteString(` ON CONFLICT (sender, item_key) WHERE item_key IS NOT NULL DO NOTHING`)
	return b.String()
}

// jobPayload returns the columns of an item's job payload: its bytes, or
// (when it is a part of the request's body) NULL and its bounds there.
func jobPayload(req *hooks.Request, it *hooks.ReceiptItem) (payload []byte, at, n driver.Value) {
	if it.PayloadInBody(req.Body) {
		return nil, int64(it.At), int64(len(it.Job.Payload))
	}
	return it.Job.Payload, nil, nil
}

// itemStmt returns the statement q(n) from cache, preparing it on first use.
func (db *DB) itemStmt(cache *map[int]*sqlite3.SQLiteStmt, q func(int) string, n int) (*sqlite3.SQLiteStmt, error) {
	if st := (*cache)[n]; st != nil {
		return st, nil
	}
	ds, err := db.raw.Prepare(q(n))
	if err != nil {
		return nil, fmt.Errorf("prepare %d-row insert: %w", n, err)
	}
	if *cache == nil {
		*cache = make(map[int]*sqlite3.SQLiteStmt)
	}
	st := ds.(*sqlite3.SQLiteStmt)
	(*cache)[n] = st
	return st, nil
}

func (s *itemStatements) close() {
	for _, st := range s.jobs {
		st.Close()
	}
}

// insertItems queues a batch's items: each whose key is free (or that has
// none) gets its job, which keeps the key; the others were accepted before
// and are marked Duplicate.
//
// Runs of items alike (all keyed, jobs the same but for their payload: a
// batch's customers) go in multi-row chunks; any other item goes alone, as
// every item does while keys from before migration 0009 may remain.
func (db *DB) insertItems(req *hooks.Request, items []*hooks.ReceiptItem) error {
	alone := db.legacyItemKeys.Load()
	for i := 0; i < len(items); {
		n := 0
		if !alone {
			n = alikeRun(items[i:], itemChunk)
		}
		var err error
		if n < 2 {
			n, err = 1, db.insertItem(req, items[i])
		} else {
			err = db.insertItemRun(req, items[i:i+n])
		}
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

// insertItem queues one item, unless its key is taken.
func (db *DB) insertItem(req *hooks.Request, it *hooks.ReceiptItem) error {
	it.Duplicate = false
	if it.Job == nil {
		return fmt.Errorf("insert item %q: it has no job", it.Key)
	}
	var key driver.Value
	if it.Key != "" {
		key = it.Key
		if db.legacyItemKeys.Load() {
			_, err := scanEntry(db.stmts.getEntry.QueryRow(req.Sender, it.Key), req.Sender, it.Key)
			if err == nil {
				it.Duplicate = true
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("read item key: %w", err)
			}
		}
	}
	payload, at, n := jobPayload(req, it)
	ok, err := db.insertJobAt(it.Job, req.ID, payload, at, n, key)
	it.Duplicate = err == nil && !ok
	return err
}

// alikeRun returns how many of the first max items can share multi-row
// inserts with the first: keyed, with jobs equal but for their payload.
func alikeRun(items []*hooks.ReceiptItem, max int) int {
	first := items[0]
	if first.Key == "" || first.Job == nil {
		return 0
	}
	n := 1
	for n < len(items) && n < max {
		it := items[n]
		if it.Key == "" || it.Job == nil || !sameShape(first.Job, it.Job) {
			break
		}
		n++
	}
	return n
}

// sameShape reports whether a and b have the same stored columns but for
// their payload.
func sameShape(a, b *hooks.Job) bool {
	return a.Sender == b.Sender && a.Name == b.Name && a.Urgency == b.Urgency && a.Priority == b.Priority &&
		a.State == b.State && a.Attempts == b.Attempts && a.ScheduledAt.Equal(b.ScheduledAt) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.FinishedAt.Equal(b.FinishedAt) && a.LockedUntil.Equal(b.LockedUntil)
}

// insertItemRun queues a run of alike items (see alikeRun) with one
// statement, and sets their jobs' IDs: rows of one INSERT take consecutive
// rowids in order, each the table's largest plus one (jobs has no
// AUTOINCREMENT). When a key is taken (a retried batch, a customer twice
// in it), the run is undone and its items go one at a time: which rows a
// multi-row INSERT skipped cannot be told apart safely afterwards (a
// request's ID is not unique over time).
func (db *DB) insertItemRun(req *hooks.Request, run []*hooks.ReceiptItem) error {
	hot, err := db.hotStmts()
	if err != nil {
		return err
	}
	st, err := db.itemStmt(&hot.items.jobs, jobRows, len(run))
	if err != nil {
		return err
	}
	j := run[0].Job
	finished, locked := jobTimes(j)
	args := make([]driver.Value, 0, jobShared+jobOwn*len(run))
	args = append(args, req.ID, string(j.Sender), j.Name, string(j.Urgency), int64(j.Priority), string(j.State),
		j.ScheduledAt.UnixMicro(), j.CreatedAt.UnixMicro(), finished, int64(j.Attempts), locked)
	for _, it := range run {
		it.Duplicate = false
		payload, at, n := jobPayload(req, it)
		args = append(args, payload, at, n, it.Key)
	}
	// A savepoint lets a run that meets a taken key be undone.
	if _, err := db.raw.Exec(`SAVEPOINT item_run`, nil); err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	res, err := hot.exec(st, args...)
	if err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	if int(n) < len(run) {
		if _, err := db.raw.Exec(`ROLLBACK TO item_run; RELEASE item_run`, nil); err != nil {
			return fmt.Errorf("insert jobs: %w", err)
		}
		for _, it := range run {
			if err := db.insertItem(req, it); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := db.raw.Exec(`RELEASE item_run`, nil); err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	last, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	first := last - int64(len(run)) + 1
	for i, it := range run {
		it.Job.ID, it.Job.RequestRef, it.Job.State = first+int64(i), req.ID, j.State
	}
	return nil
}
