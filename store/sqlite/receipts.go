package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// SaveReceipt writes an accepted request in one transaction: its record, its
// idempotency keys (answered with the request's status and response) and its
// job. When a key is already taken, no job is written: a done entry is
// returned so that its answer is replayed (the repeat is recorded as a
// duplicate and any new request ID of it replays the same answer); a pending
// entry under a live lease is returned for the caller to wait on, and then
// nothing at all is written. A pending entry whose lease expired belonged to
// a process that died: this request takes it over.
func (db *DB) SaveReceipt(ctx context.Context, r *hooks.Receipt) (*hooks.Entry, error) {
	req := r.Request
	r.Keys = uniqueKeys(r.Keys)
	// Encoding happens here, in the caller's goroutine, so that the single
	// writer only executes statements.
	enc, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	var found *hooks.Entry
	status, response, notes := req.Status, req.Response, len(req.Notes)
	err = db.write(ctx, func(tx writeTx) error {
		// A retried run starts from the request as it was given.
		found = nil
		req.Status, req.Response, req.Notes, req.DuplicateOf = status, response, req.Notes[:notes], 0
		if r.Job != nil {
			r.Job.ID = 0
		}
		for _, it := range r.Items {
			if it.Job != nil {
				it.Job.ID = 0
			}
		}
		if err := db.insertEncoded(req, enc); err != nil {
			return err
		}
		now := db.Now()
		for i, k := range r.Keys {
			// The UNIQUE key decides: no row affected means the key is taken.
			if ok, err := db.insertEntry(req.Sender, k, req.Status, req.Response, req.ID, now); err != nil {
				return fmt.Errorf("insert idempotency key: %w", err)
			} else if ok {
				continue
			}
			// Taken: a pending entry whose lease expired is taken over, by
			// a statement that checks the expiry as it writes; any other
			// holder keeps the key.
			if ok, err := db.takeOverEntry(tx, req, k, now); err != nil {
				return fmt.Errorf("take over idempotency key: %w", err)
			} else if ok {
				continue
			}
			e, err := scanEntry(db.stmts.getEntry.QueryRow(req.Sender, k), req.Sender, k)
			if err != nil {
				return fmt.Errorf("read idempotency key: %w", err)
			}
			found = e
			return db.undoReceipt(tx, req, r.Keys[:i], e)
		}
		if r.Job != nil {
			if err := db.insertJob(r.Job, req.ID); err != nil {
				return err
			}
		}
		return db.insertItems(req, r.Items)
	})
	if err != nil {
		return nil, fmt.Errorf("save %s receipt: %w", req.Sender, err)
	}
	return found, nil
}

// takeOverEntry answers key with req's answer if it is pending under a
// lease that expired by now, and reports whether it did.
func (db *DB) takeOverEntry(tx writeTx, req *hooks.Request, key string, now time.Time) (bool, error) {
	res, err := tx.Exec(`UPDATE idempotency SET state = 'done', status = ?, response = ?, request_ref = ?, locked_until = NULL, owner = NULL
		WHERE sender = ? AND key = ? AND state = 'pending' AND locked_until <= ?`,
		req.Status, req.Response, req.ID, req.Sender, key, now.UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// uniqueKeys drops repeated keys (a request ID that equals a content key),
// which would otherwise make a request a duplicate of itself.
func uniqueKeys(keys []string) []string {
	for i := 1; i < len(keys); i++ {
		for _, k := range keys[:i] {
			if k == keys[i] {
				out := append([]string(nil), keys[:i]...)
				for _, k := range keys[i:] {
					if !slices.Contains(out, k) {
						out = append(out, k)
					}
				}
				return out
			}
		}
	}
	return keys
}

// undoReceipt handles a taken key found after the request and the keys
// before it were written. A pending entry means the request is executing
// elsewhere: everything is taken back and the caller waits. A done entry
// means this is a repeat: its record becomes a duplicate's, and the keys
// already written (a new request ID of a known event) replay the same answer.
func (db *DB) undoReceipt(tx writeTx, req *hooks.Request, written []string, e *hooks.Entry) error {
	if e.State == hooks.EntryPending {
		if _, err := tx.Exec(`DELETE FROM requests WHERE id = ?`, req.ID); err != nil {
			return fmt.Errorf("take back request: %w", err)
		}
		for _, k := range written {
			if _, err := tx.Exec(`DELETE FROM idempotency WHERE sender = ? AND key = ?`, req.Sender, k); err != nil {
				return fmt.Errorf("take back idempotency key: %w", err)
			}
		}
		req.ID = 0
		return nil
	}
	req.MarkDuplicate(e)
	notes, err := json.Marshal(req.Notes)
	if err != nil {
		return fmt.Errorf("encode notes: %w", err)
	}
	if _, err := tx.Exec(`UPDATE requests SET status = ?, response = ?, duplicate_of = ?, notes = ? WHERE id = ?`,
		req.Status, req.Response, req.DuplicateOf, notes, req.ID); err != nil {
		return fmt.Errorf("mark request duplicate: %w", err)
	}
	for _, k := range written {
		if _, err := tx.Exec(`UPDATE idempotency SET status = ?, response = ?, request_ref = ? WHERE sender = ? AND key = ?`,
			req.Status, req.Response, e.RequestRef, req.Sender, k); err != nil {
			return fmt.Errorf("replay answer under idempotency key: %w", err)
		}
	}
	return nil
}

// Record writes the record of a request that was refused or replayed.
func (db *DB) Record(ctx context.Context, req *hooks.Request) error {
	if err := db.write(ctx, func(tx writeTx) error { return db.insertRequest(req) }); err != nil {
		return fmt.Errorf("record %s request: %w", req.Sender, err)
	}
	return nil
}
