package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// purgeBatch is how many rows a purge deletes in one transaction.
const purgeBatch = 1000

// purge runs del, each time in a transaction of its own (outside the group
// commit, so that no request waits behind a purge), until it deletes fewer
// than purgeBatch rows, and returns how many went in all.
func (db *DB) purge(ctx context.Context, del func(ctx context.Context, tx pgx.Tx) (int64, error)) (int64, error) {
	var total int64
	for {
		select {
		case <-db.quit:
			return total, ErrClosed
		default:
		}
		var n int64
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) (err error) {
			n, err = del(ctx, tx)
			return err
		})
		if err != nil {
			return total, translate(err)
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// PurgeIdempotency deletes idempotency entries created before t, a batch at
// a time, and returns how many went.
func (db *DB) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM idempotency WHERE (sender, key) IN
			(SELECT sender, key FROM idempotency WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, purgeBatch)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("purge idempotency: %w", err)
	}
	return total, nil
}

// PurgeRecords deletes request records received before t, with their jobs
// and attempts, a batch at a time, and returns how many requests went. A
// request with a job still to deliver (available or running) is kept,
// whatever its age: purging never loses a delivery.
func (db *DB) PurgeRecords(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		// IDs grow with time: the oldest records come first in id order.
		rows, err := tx.Query(ctx, `SELECT id FROM requests WHERE received_at < $1
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE request_ref = requests.id AND state IN ('available', 'running'))
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, before, purgeBatch)
		if err != nil {
			return 0, err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		for _, q := range []string{
			`DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE request_ref = ANY($1))`,
			`DELETE FROM jobs WHERE request_ref = ANY($1)`,
			`DELETE FROM requests WHERE id = ANY($1)`,
		} {
			if _, err := tx.Exec(ctx, q, ids); err != nil {
				return 0, err
			}
		}
		return int64(len(ids)), nil
	})
	if err != nil {
		return total, fmt.Errorf("purge request records: %w", err)
	}
	return total, nil
}
