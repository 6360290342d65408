package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
)

// CacheGet returns the ACME cache entry stored under key (the
// acme_cache table), or an error with code hooks.ENOTFOUND when there is
// none.
func (db *DB) CacheGet(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := db.pool.QueryRow(ctx, `SELECT data FROM acme_cache WHERE key = $1`, key).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, hooks.Errorf(hooks.ENOTFOUND, "no ACME cache entry %q", key)
	} else if err != nil {
		return nil, fmt.Errorf("read ACME cache entry %q: %w", key, translate(err))
	}
	return data, nil
}

// CachePut stores data under key in the ACME cache, replacing what was
// there, in one statement: replicas renewing at once each leave a whole
// entry, the last one's.
func (db *DB) CachePut(ctx context.Context, key string, data []byte) error {
	if data == nil {
		data = []byte{} // the column is NOT NULL; an empty entry is still an entry
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO acme_cache (key, data) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`, key, data)
	if err != nil {
		return fmt.Errorf("store ACME cache entry %q: %w", key, translate(err))
	}
	return nil
}

// CacheDelete removes the ACME cache entry stored under key; deleting an
// entry that is not there is not an error.
func (db *DB) CacheDelete(ctx context.Context, key string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM acme_cache WHERE key = $1`, key); err != nil {
		return fmt.Errorf("delete ACME cache entry %q: %w", key, translate(err))
	}
	return nil
}
