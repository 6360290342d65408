package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SaveToken keeps an issued OAuth 2.0 access token, by its hash only, until
// it expires; expired ones are deleted on the way.
func (db *DB) SaveToken(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error {
	err := db.write(ctx, func(tx writeTx) error {
		if _, err := tx.Exec(`DELETE FROM oauth_tokens WHERE expires_at < ?`, now.UnixMicro()); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO oauth_tokens (hash, client_id, scopes, expires_at) VALUES (?, ?, ?, ?)`,
			hash, clientID, strings.Join(scopes, " "), expires.UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("save token: %w", err)
	}
	return nil
}

// TokenClient returns the client a token hash was issued to, with its
// scopes, if it exists and has not expired at now; "" otherwise.
func (db *DB) TokenClient(ctx context.Context, hash []byte, now time.Time) (string, []string, error) {
	var client, scopes string
	err := db.rdb.QueryRowContext(ctx, `SELECT client_id, scopes FROM oauth_tokens WHERE hash = ? AND expires_at > ?`,
		hash, now.UnixMicro()).Scan(&client, &scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil
	} else if err != nil {
		return "", nil, fmt.Errorf("look up token: %w", err)
	}
	return client, strings.Fields(scopes), nil
}
