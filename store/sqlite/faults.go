package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// AddFault stores a fault; its ID is set.
func (db *DB) AddFault(ctx context.Context, f *hooks.Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	err := db.write(ctx, func(tx writeTx) error {
		res, err := tx.Exec(`INSERT INTO faults (sender, name, kind, status, delay_us, remaining, percent, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, f.Sender, f.Name, f.Kind, f.Status, f.Delay.Microseconds(), f.Remaining,
			f.Percent, micros(f.ExpiresAt), f.CreatedAt.UnixMicro())
		if err != nil {
			return err
		}
		f.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return fmt.Errorf("add fault: %w", err)
	}
	return nil
}

// Faults returns the faults still in force at now.
func (db *DB) Faults(ctx context.Context, now time.Time) ([]*hooks.Fault, error) {
	rows, err := db.rdb.QueryContext(ctx, `SELECT id, sender, name, kind, status, delay_us, remaining, percent, expires_at, created_at
		FROM faults WHERE remaining != 0 AND (expires_at IS NULL OR expires_at > ?) ORDER BY id`, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list faults: %w", err)
	}
	defer rows.Close()
	var out []*hooks.Fault
	for rows.Next() {
		f := &hooks.Fault{}
		var delay, created int64
		var expires sql.NullInt64
		if err := rows.Scan(&f.ID, &f.Sender, &f.Name, &f.Kind, &f.Status, &delay, &f.Remaining, &f.Percent, &expires, &created); err != nil {
			return nil, fmt.Errorf("list faults: %w", err)
		}
		f.Delay, f.ExpiresAt, f.CreatedAt = time.Duration(delay)*time.Microsecond, fromMicros(expires), time.UnixMicro(created)
		out = append(out, f)
	}
	return out, rows.Err()
}

// UseFault counts one use of a fault with a limited count; false means
// it was used up already.
func (db *DB) UseFault(ctx context.Context, id int64) (bool, error) {
	n, err := db.execCount(ctx, `UPDATE faults SET remaining = remaining - 1 WHERE id = ? AND remaining > 0`, id)
	if err != nil {
		return false, fmt.Errorf("use fault %d: %w", id, err)
	}
	return n == 1, nil
}

// ClearFaults deletes the faults of a sender, or all when sender is "".
func (db *DB) ClearFaults(ctx context.Context, sender hooks.Sender) (int64, error) {
	n, err := db.execCount(ctx, `DELETE FROM faults WHERE ?1 = '' OR sender = ?1`, sender)
	if err != nil {
		return 0, fmt.Errorf("clear faults: %w", err)
	}
	return n, nil
}

// DeleteFault deletes one fault; false means there was none with that id.
func (db *DB) DeleteFault(ctx context.Context, id int64) (bool, error) {
	n, err := db.execCount(ctx, `DELETE FROM faults WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("delete fault %d: %w", id, err)
	}
	return n == 1, nil
}
