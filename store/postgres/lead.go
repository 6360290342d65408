package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TryLead takes the lease called name for holder for ttl, or renews it if
// holder has it already, and reports whether holder holds it now. Background
// work that one replica at a time should do (purges, rescues) runs on the
// replica whose TryLead says true, renewed well within ttl; when that
// replica dies, another takes over once the lease expires. The lease is a
// row, taken by one guarded statement and judged by the database's clock,
// not an advisory lock: advisory locks are lost, or
// held by the wrong client, behind a transaction-pooling proxy.
func (db *DB) TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	select {
	case <-db.quit:
		return false, ErrClosed
	default:
	}
	rows, err := db.pool.Query(ctx, `INSERT INTO leases (name, holder, expires_at)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= now()
		RETURNING holder`, name, holder, micros(ttl))
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, translate(err))
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, translate(err))
	}
	return len(got) == 1, nil
}

// Resign gives up the lease called name if holder holds it, so that another
// replica can take it at once (on shutdown) instead of after its expiry.
func (db *DB) Resign(ctx context.Context, name, holder string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("give up lease %s: %w", name, translate(err))
	}
	return nil
}
