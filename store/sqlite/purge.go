package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// purgeBatch is how many rows a purge deletes in one transaction.
const purgeBatch = 1000

// purge runs del in write transactions of its own until one deletes fewer
// than purgeBatch rows, and returns how many went in all.
func (db *DB) purge(ctx context.Context, del func(writeTx) (int64, error)) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.write(ctx, func(tx writeTx) (err error) {
			n, err = del(tx)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// PurgeRecords deletes request records received before t, with their jobs
// and attempts, a batch at a time, and returns how many requests went. A
// request with a job still to deliver (available or running) is kept,
// whatever its age: purging never loses a delivery. So is a batch whose
// jobs still hold their customers' keys (see PurgeIdempotency): its
// customers are not taken again before their keys are due to go.
func (db *DB) PurgeRecords(ctx context.Context, before time.Time) (int64, error) {
	total, err := db.purge(ctx, func(tx writeTx) (int64, error) {
		// IDs grow with time: the oldest records come first in id order.
		rows, err := tx.Query(`SELECT id FROM requests WHERE received_at < ?
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE request_ref = requests.id
				AND (state IN ('available', 'running') OR item_key IS NOT NULL))
			ORDER BY id LIMIT ?`, before.UnixMicro(), purgeBatch)
		if err != nil {
			return 0, err
		}
		var ids []any
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return 0, err
		}
		in := "(?" + strings.Repeat(",?", len(ids)-1) + ")"
		for _, q := range []string{
			`DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE request_ref IN ` + in + `)`,
			`DELETE FROM jobs WHERE request_ref IN ` + in,
			`DELETE FROM requests WHERE id IN ` + in,
		} {
			if _, err := tx.Exec(q, ids...); err != nil {
				return 0, err
			}
		}
		// With the last jobs gone, SQLite gives their ids out again: the
		// item keys' purge mark comes down to the last job left, so that
		// it does not pass over the new ones.
		if _, err := tx.Exec(`UPDATE item_key_purge SET upto = (SELECT coalesce(max(id), 0) FROM jobs)
			WHERE id = 1 AND upto > (SELECT coalesce(max(id), 0) FROM jobs)`); err != nil {
			return 0, err
		}
		return int64(len(ids)), nil
	})
	if err != nil {
		return total, fmt.Errorf("purge request records: %w", err)
	}
	return total, nil
}
