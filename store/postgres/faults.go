package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// AddFault stores a fault; its ID is set.
func (db *DB) AddFault(ctx context.Context, f *hooks.Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	err := db.write(ctx, func(w *wtx) error {
		return w.queryRow(`INSERT INTO faults (sender, name, kind, status, delay_us, remaining, percent, expires_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, string(f.Sender), f.Name, f.Kind, f.Status,
			f.Delay.Microseconds(), f.Remaining, f.Percent, nullTime(f.ExpiresAt), f.CreatedAt).Scan(&f.ID)
	})
	if err != nil {
		return fmt.Errorf("add fault: %w", err)
	}
	return nil
}

// Faults returns the faults still in force at now.
func (db *DB) Faults(ctx context.Context, now time.Time) ([]*hooks.Fault, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, sender, name, kind, status, delay_us, remaining, percent, expires_at, created_at
		FROM faults WHERE remaining != 0 AND (expires_at IS NULL OR expires_at > $1) ORDER BY id`, now)
	if err != nil {
		return nil, fmt.Errorf("list faults: %w", translate(err))
	}
	defer rows.Close()
	var out []*hooks.Fault
	for rows.Next() {
		f := &hooks.Fault{}
		var delay int64
		var expires *time.Time
		if err := rows.Scan(&f.ID, &f.Sender, &f.Name, &f.Kind, &f.Status, &delay, &f.Remaining, &f.Percent, &expires, &f.CreatedAt); err != nil {
			return nil, fmt.Errorf("list faults: %w", translate(err))
		}
		f.Delay, f.ExpiresAt = time.Duration(delay)*time.Microsecond, timeOf(expires)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list faults: %w", translate(err))
	}
	return out, nil
}

// UseFault counts one use of a fault with a limited count; false means
// it was used up already. The decrement is guarded (remaining > 0), so
// replicas sharing a fault use its count once between them.
func (db *DB) UseFault(ctx context.Context, id int64) (bool, error) {
	n, err := db.affected(ctx, `UPDATE faults SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0`, id)
	if err != nil {
		return false, fmt.Errorf("use fault %d: %w", id, err)
	}
	return n == 1, nil
}

// ClearFaults deletes the faults of a sender, or all when sender is "".
func (db *DB) ClearFaults(ctx context.Context, sender hooks.Sender) (int64, error) {
	n, err := db.affected(ctx, `DELETE FROM faults WHERE $1 = '' OR sender = $1`, string(sender))
	if err != nil {
		return 0, fmt.Errorf("clear faults: %w", err)
	}
	return n, nil
}

// DeleteFault deletes one fault; false means there was none with that id.
func (db *DB) DeleteFault(ctx context.Context, id int64) (bool, error) {
	n, err := db.affected(ctx, `DELETE FROM faults WHERE id = $1`, id)
	if err != nil {
		return false, fmt.Errorf("delete fault %d: %w", id, err)
	}
	return n == 1, nil
}

// affected runs one statement as a write and returns how many rows it
// changed.
func (db *DB) affected(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := db.write(ctx, func(w *wtx) error {
		tag, err := w.exec(q, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
