package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// ReserveKeys takes the idempotency keys for a request that will execute
// inline. It returns nil when all keys are now held by owner, pending until
// leaseUntil; otherwise it writes nothing and returns the entry that holds
// the first taken key: done (replay it) or pending under a live lease
// (wait). A pending entry whose lease has expired belonged to a request that
// died or overran; it is taken over, and its owner can no longer finish or
// release it.
//
// Each key is taken by one guarded statement that inserts it when it is
// free and takes it over only while its lease is still found expired, so
// that of two processes reserving a key at once exactly one gets it,
// whatever the isolation of the transaction around it.
func (db *DB) ReserveKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error) {
	keys = uniqueKeys(keys)
	var found *hooks.Entry
	err := db.write(ctx, func(tx writeTx) error {
		found = nil
		now := db.Now()
		// The keys reserved before a taken one are given back by rolling
		// back to here, leaving the other writes of the batch alone.
		if _, err := tx.Exec(`SAVEPOINT reserve_keys`); err != nil {
			return fmt.Errorf("reserve idempotency keys: %w", err)
		}
		for _, k := range keys {
			var got int64
			err := tx.QueryRow(`INSERT INTO idempotency (sender, key, state, locked_until, owner, created_at)
				VALUES (?1, ?2, 'pending', ?3, ?4, ?5)
				ON CONFLICT (sender, key) DO UPDATE SET locked_until = excluded.locked_until, owner = excluded.owner
					WHERE idempotency.state = 'pending' AND idempotency.locked_until <= ?5
				RETURNING owner`, sender, k, leaseUntil.UnixMicro(), owner, now.UnixMicro()).Scan(&got)
			if err == nil {
				continue
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("reserve idempotency key: %w", err)
			}
			// Taken: done, or pending under a live lease.
			if _, err := tx.Exec(`ROLLBACK TO reserve_keys`); err != nil {
				return fmt.Errorf("give back idempotency keys: %w", err)
			}
			e, err := scanEntry(db.stmts.getEntry.QueryRow(sender, k), sender, k)
			if err != nil {
				return fmt.Errorf("read idempotency key: %w", err)
			}
			found = e
			break
		}
		if _, err := tx.Exec(`RELEASE reserve_keys`); err != nil {
			return fmt.Errorf("reserve idempotency keys: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserve %s request: %w", sender, err)
	}
	return found, nil
}

// FinishReserved ends an inline request that ReserveKeys let through with a final
// answer: it records the request, stores its answer under its keys and
// queues its job, in one transaction. If the reservation was taken over
// (its lease expired while it ran), the keys are not touched and no job is
// queued: when the taker has already answered, the request is recorded as
// its duplicate and that entry is returned, for its answer to be replayed.
func (db *DB) FinishReserved(ctx context.Context, r *hooks.Receipt, owner int64) (*hooks.Entry, error) {
	req := r.Request
	keys := uniqueKeys(r.Keys)
	status, response, notes := req.Status, req.Response, len(req.Notes)
	var lost *hooks.Entry
	var takenOver bool
	err := db.write(ctx, func(tx writeTx) error {
		lost, takenOver = nil, false
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		for i, k := range keys {
			res, err := tx.Exec(`UPDATE idempotency SET state = 'done', status = ?, response = ?, locked_until = NULL, owner = NULL
				WHERE sender = ? AND key = ? AND state = 'pending' AND owner = ?`, req.Status, req.Response, req.Sender, k, owner)
			if err != nil {
				return fmt.Errorf("store answer under idempotency key: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store answer under idempotency key: %w", err)
			} else if n == 1 {
				continue
			}
			if i > 0 {
				return fmt.Errorf("idempotency key %q was taken over while %q was kept", k, keys[0])
			}
			e, err := scanEntry(db.stmts.getEntry.QueryRow(req.Sender, k), req.Sender, k)
			switch {
			case err == nil && e.State == hooks.EntryDone:
				lost = e
				req.MarkDuplicate(e)
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("read idempotency key: %w", err)
			default:
				// A retry holds the key and is running now: its answer
				// will be the one kept, so this one must not go out. The
				// request is recorded by the caller, with what it sends.
				takenOver = true
				req.Note("idempotency key taken over by a retry while this request ran; its answer was not kept, and the sender is asked to retry for the retry's")
				return nil
			}
			return db.insertRequest(req)
		}
		if err := db.insertRequest(req); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := tx.Exec(`UPDATE idempotency SET request_ref = ? WHERE sender = ? AND key = ?`, req.ID, req.Sender, k); err != nil {
				return fmt.Errorf("link idempotency key: %w", err)
			}
		}
		if r.Job != nil {
			return db.insertJob(r.Job, req.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish %s request: %w", req.Sender, err)
	}
	if takenOver {
		return nil, hooks.Errorf(hooks.ECONFLICT, "a retry with this request ID took over while this request ran past its lease; retry to get that answer")
	}
	return lost, nil
}

// ReleaseKeys frees keys that owner reserved for a request that got no final
// answer (it asked the sender to retry), so that the retry executes. Keys
// taken over by another request are left to it.
func (db *DB) ReleaseKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64) error {
	err := db.write(ctx, func(tx writeTx) error {
		for _, k := range keys {
			if _, err := tx.Exec(`DELETE FROM idempotency WHERE sender = ? AND key = ? AND state = 'pending' AND owner = ?`,
				sender, k, owner); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %s idempotency keys: %w", sender, err)
	}
	return nil
}

// LookupKey returns the idempotency entry for a key, or an ENOTFOUND error.
func (db *DB) LookupKey(ctx context.Context, sender hooks.Sender, key string) (*hooks.Entry, error) {
	row := db.rdb.QueryRowContext(ctx, `SELECT state, status, response, request_ref, locked_until, created_at
		FROM idempotency_keys WHERE sender = ? AND key = ?`, sender, key)
	e, err := scanEntry(row, sender, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, hooks.Errorf(hooks.ENOTFOUND, "no idempotency record for %q", key)
	} else if err != nil {
		return nil, fmt.Errorf("lookup idempotency key: %w", err)
	}
	return e, nil
}

// PurgeIdempotency deletes idempotency entries created before t, and the
// keys of the customers of batches received before t, a batch at a time
// so that the writer is never held long, and returns how many went.
func (db *DB) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(tx writeTx) (int64, error) {
		res, err := tx.Exec(`DELETE FROM idempotency WHERE (sender, key) IN
			(SELECT sender, key FROM idempotency WHERE created_at < ? LIMIT ?)`, before.UnixMicro(), purgeBatch)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	if err != nil {
		return total, fmt.Errorf("purge idempotency: %w", err)
	}
	for more := true; more; {
		var n int64
		err := db.write(ctx, func(tx writeTx) (err error) {
			n, more, err = purgeItemKeys(tx, before, db.Now())
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("purge item keys: %w", err)
		}
	}
	if db.legacyItemKeys.Load() {
		// Keys from before migration 0009 were all created before
		// legacy_until: once those are purged, none is left.
		if _, err := db.execCount(ctx, `UPDATE item_key_purge SET legacy_until = 0
			WHERE id = 1 AND legacy_until > 0 AND legacy_until <= ?`, before.UnixMicro()); err != nil {
			return total, fmt.Errorf("purge item keys: %w", err)
		}
		if err := db.readLegacyItemKeys(ctx, db.rdb); err != nil {
			return total, err
		}
	}
	return total, nil
}

// purgeItemKeys takes the keys off the jobs of requests received before t
// that follow item_key_purge's mark, and moves the mark past them. A keyed
// job is written with its request, so ids follow arrival: it stops at the
// first job of a request received at t or later, and looks at purgeBatch
// jobs at most. A job dated later than now (the clock stepped back since)
// does not stop it: it goes with the first due job after it, which
// arrived later. It returns how many keys went, and whether more may
// follow.
func purgeItemKeys(tx writeTx, before, now time.Time) (n int64, more bool, err error) {
	var from int64
	if err := tx.QueryRow(`SELECT upto FROM item_key_purge WHERE id = 1`).Scan(&from); err != nil {
		return 0, false, err
	}
	rows, err := tx.Query(`SELECT j.id, r.received_at FROM jobs j JOIN requests r ON r.id = j.request_ref
		WHERE j.id > ? ORDER BY j.id LIMIT ?`, from, purgeBatch)
	if err != nil {
		return 0, false, err
	}
	to, seen, young := from, 0, false
	for rows.Next() {
		var id, received int64
		if err := rows.Scan(&id, &received); err != nil {
			rows.Close()
			return 0, false, err
		}
		seen++
		if received < before.UnixMicro() {
			to = id
		} else if received <= now.UnixMicro() {
			young = true
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || to == from {
		return 0, false, err
	}
	res, err := tx.Exec(`UPDATE jobs SET item_key = NULL WHERE id > ? AND id <= ? AND item_key IS NOT NULL`, from, to)
	if err != nil {
		return 0, false, err
	}
	if n, err = res.RowsAffected(); err != nil {
		return 0, false, err
	}
	if _, err := tx.Exec(`UPDATE item_key_purge SET upto = ? WHERE id = 1`, to); err != nil {
		return 0, false, err
	}
	return n, !young && seen == purgeBatch, nil
}

// readLegacyItemKeys sets legacyItemKeys while the idempotency table may
// hold batch customers' keys from before migration 0009.
func (db *DB) readLegacyItemKeys(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) error {
	var until int64
	if err := q.QueryRowContext(ctx, `SELECT legacy_until FROM item_key_purge WHERE id = 1`).Scan(&until); err != nil {
		return fmt.Errorf("read item keys' purge mark: %w", err)
	}
	db.legacyItemKeys.Store(until > 0)
	return nil
}

func scanEntry(row *sql.Row, sender hooks.Sender, key string) (*hooks.Entry, error) {
	e := &hooks.Entry{Sender: sender, Key: key}
	var ref, locked sql.NullInt64
	var created int64
	if err := row.Scan(&e.State, &e.Response.Status, &e.Response.Body, &ref, &locked, &created); err != nil {
		return nil, err
	}
	e.RequestRef = ref.Int64
	e.LockedUntil = fromMicros(locked)
	e.CreatedAt = time.UnixMicro(created)
	return e, nil
}
