package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
)

// entryColumns are what scanEntry reads, in its order.
const entryColumns = `state, status, response, request_ref, locked_until, created_at`

func scanEntry(row pgx.Row, sender hooks.Sender, key string) (*hooks.Entry, error) {
	e := &hooks.Entry{Sender: sender, Key: key}
	var ref *int64
	var locked *time.Time
	if err := row.Scan(&e.State, &e.Response.Status, &e.Response.Body, &ref, &locked, &e.CreatedAt); err != nil {
		return nil, err
	}
	if ref != nil {
		e.RequestRef = *ref
	}
	e.LockedUntil = timeOf(locked)
	return e, nil
}

// readEntry reads the entry of key inside w's transaction.
func readEntry(w *wtx, sender hooks.Sender, key string) (*hooks.Entry, error) {
	return scanEntry(w.queryRow(`SELECT `+entryColumns+` FROM idempotency WHERE sender = $1 AND key = $2`, string(sender), key), sender, key)
}

// uniqueKeys drops repeated keys (a request ID that equals a content key),
// which would otherwise make a request a duplicate of itself.
func uniqueKeys(keys []string) []string {
	for i := 1; i < len(keys); i++ {
		if slices.Contains(keys[:i], keys[i]) {
			out := append([]string(nil), keys[:i]...)
			for _, k := range keys[i:] {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
			return out
		}
	}
	return keys
}

// ReserveKeys takes the idempotency keys for a request that will execute inline.
// It returns nil when all keys are now held by owner, pending until
// leaseUntil; otherwise it writes nothing and returns the entry that holds
// the first taken key: done (replay it) or pending under a live lease
// (wait). A pending entry whose lease has expired belonged to a request that
// died or overran; it is taken over, and its owner can no longer finish or
// release it. The taking is one guarded statement (INSERT … ON CONFLICT …
// DO UPDATE … WHERE <expired>), so of two replicas reserving one key, one
// owns it. The entries show leaseUntil; expiry is judged by the database's
// clock, the lease lasting as long from its now() as leaseUntil is from
// DB.Now (or the local clock).
func (db *DB) ReserveKeys(ctx context.Context, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error) {
	keys = uniqueKeys(keys)
	if keys == nil {
		keys = []string{}
	}
	var found *hooks.Entry
	err := db.write(ctx, func(w *wtx) error {
		found = nil
		var err error
		found, err = db.reserve(w, sender, keys, owner, leaseUntil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reserve %s request: %w", sender, err)
	}
	return found, nil
}

func (db *DB) reserve(w *wtx, sender hooks.Sender, keys []string, owner int64, leaseUntil time.Time) (*hooks.Entry, error) {
	// The keys that exist, locked: a done or live one is answered without
	// writing anything; the values of expired ones are kept, to put back if
	// the reservation fails.
	rows, err := w.query(`SELECT key, `+entryColumns+`, lease_expires, owner, state = 'done' OR lease_expires > now()
		FROM idempotency WHERE sender = $1 AND key = ANY($2) FOR UPDATE`, string(sender), keys)
	if err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	type existing struct {
		e       *hooks.Entry
		expires *time.Time
		owner   *int64
		live    bool
	}
	have := map[string]existing{}
	for rows.Next() {
		var x existing
		var key string
		var ref *int64
		var locked *time.Time
		x.e = &hooks.Entry{Sender: sender}
		if err := rows.Scan(&key, &x.e.State, &x.e.Response.Status, &x.e.Response.Body, &ref, &locked, &x.e.CreatedAt,
			&x.expires, &x.owner, &x.live); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read idempotency keys: %w", err)
		}
		x.e.Key, x.e.LockedUntil = key, timeOf(locked)
		if ref != nil {
			x.e.RequestRef = *ref
		}
		have[key] = x
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read idempotency keys: %w", err)
	}
	for _, k := range keys {
		if x, ok := have[k]; ok && x.live {
			return x.e, nil
		}
	}
	// The guarded statement: each key is inserted, or taken over when its
	// lease has expired; a key that another transaction took meanwhile is
	// neither.
	rows, err = w.query(`INSERT INTO idempotency (sender, key, state, locked_until, lease_expires, owner, created_at)
		SELECT $1, k, 'pending', $4, now() + $5 * interval '1 microsecond', $6, COALESCE($3::timestamptz, now())
		FROM unnest($2::text[]) AS k
		ON CONFLICT (sender, key) DO UPDATE SET locked_until = excluded.locked_until,
			lease_expires = excluded.lease_expires, owner = excluded.owner
		WHERE idempotency.state = 'pending' AND idempotency.lease_expires <= now()
		RETURNING key`, string(sender), keys, db.stamp(), leaseUntil, micros(leaseUntil.Sub(db.clockNow())), owner)
	if err != nil {
		return nil, fmt.Errorf("reserve idempotency keys: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reserve idempotency keys: %w", err)
	}
	if len(got) == len(keys) {
		return nil, nil
	}
	// Another replica took a key between the two statements: put back what
	// this one wrote, and answer with the first key taken.
	reserved := map[string]bool{}
	for _, k := range got {
		reserved[k] = true
	}
	var first string
	for _, k := range keys {
		if !reserved[k] {
			first = k
			break
		}
	}
	for _, k := range got {
		x, ok := have[k]
		if !ok {
			_, err = w.exec(`DELETE FROM idempotency WHERE sender = $1 AND key = $2`, string(sender), k)
		} else {
			_, err = w.exec(`UPDATE idempotency SET locked_until = $3, lease_expires = $4, owner = $5
				WHERE sender = $1 AND key = $2`, string(sender), k, nullTime(x.e.LockedUntil), x.expires, x.owner)
		}
		if err != nil {
			return nil, fmt.Errorf("put back idempotency key: %w", err)
		}
	}
	e, err := readEntry(w, sender, first)
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	return e, nil
}

// FinishReserved ends an inline request that ReserveKeys let through with a final
// answer: it records the request, stores its answer under its keys and
// queues its job, in one transaction. If the reservation was taken over
// (its lease expired while it ran), the keys are not touched and no job is
// queued: when the taker has already answered, the request is recorded as
// its duplicate and that entry is returned, for its answer to be replayed.
// Each key's answer is stored by a statement guarded by the reservation
// (pending, and held by owner).
func (db *DB) FinishReserved(ctx context.Context, r *hooks.Receipt, owner int64) (*hooks.Entry, error) {
	req := r.Request
	keys := uniqueKeys(r.Keys)
	if keys == nil {
		keys = []string{}
	}
	status, response, notes := req.Status, req.Response, len(req.Notes)
	var lost *hooks.Entry
	var takenOver bool
	err := db.write(ctx, func(w *wtx) error {
		lost, takenOver = nil, false
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		for i, k := range keys {
			tag, err := w.exec(`UPDATE idempotency SET state = 'done', status = $1, response = $2, locked_until = NULL,
				lease_expires = NULL, owner = NULL
				WHERE sender = $3 AND key = $4 AND state = 'pending' AND owner = $5`, req.Status, req.Response, string(req.Sender), k, owner)
			if err != nil {
				return fmt.Errorf("store answer under idempotency key: %w", err)
			}
			if tag.RowsAffected() == 1 {
				continue
			}
			if i > 0 {
				return fmt.Errorf("idempotency key %q was taken over while %q was kept", k, keys[0])
			}
			e, err := readEntry(w, req.Sender, k)
			switch {
			case err == nil && e.State == hooks.EntryDone:
				lost = e
				req.MarkDuplicate(e)
			case err != nil && !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("read idempotency key: %w", err)
			default:
				// A retry holds the key and is running now: its answer
				// will be the one kept, so this one must not go out. The
				// request is recorded by the caller, with what it sends.
				takenOver = true
				req.Note("idempotency key taken over by a retry while this request ran; its answer was not kept, and the sender is asked to retry for the retry's")
				return nil
			}
			return db.insertRequest(w, req)
		}
		if err := db.insertRequest(w, req); err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE idempotency SET request_ref = $1 WHERE sender = $2 AND key = ANY($3)`,
			req.ID, string(req.Sender), keys); err != nil {
			return fmt.Errorf("link idempotency keys: %w", err)
		}
		if r.Job != nil {
			return db.insertJob(w, r.Job, req.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish %s reserved request: %w", req.Sender, err)
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
	if keys == nil {
		keys = []string{}
	}
	err := db.write(ctx, func(w *wtx) error {
		_, err := w.exec(`DELETE FROM idempotency WHERE sender = $1 AND key = ANY($2) AND state = 'pending' AND owner = $3`,
			string(sender), keys, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("release %s idempotency keys: %w", sender, err)
	}
	return nil
}

// LookupKey returns the idempotency entry for a key, or an ENOTFOUND error.
func (db *DB) LookupKey(ctx context.Context, sender hooks.Sender, key string) (*hooks.Entry, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+entryColumns+` FROM idempotency WHERE sender = $1 AND key = $2`, string(sender), key)
	e, err := scanEntry(row, sender, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, hooks.Errorf(hooks.ENOTFOUND, "no idempotency record for %q", key)
	} else if err != nil {
		return nil, fmt.Errorf("lookup idempotency key: %w", translate(err))
	}
	return e, nil
}
