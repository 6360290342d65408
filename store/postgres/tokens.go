package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SaveToken keeps an issued OAuth 2.0 access token, by its hash only, until
// it expires; expired ones are deleted on the way.
func (db *DB) SaveToken(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error {
	err := db.write(ctx, func(w *wtx) error {
		if _, err := w.exec(`DELETE FROM oauth_tokens WHERE expires_at < $1`, now); err != nil {
			return err
		}
		_, err := w.exec(`INSERT INTO oauth_tokens (hash, client_id, scopes, expires_at) VALUES ($1, $2, $3, $4)`,
			hash, clientID, strings.Join(scopes, " "), expires)
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
	err := db.pool.QueryRow(ctx, `SELECT client_id, scopes FROM oauth_tokens WHERE hash = $1 AND expires_at > $2`,
		hash, now).Scan(&client, &scopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, nil
	} else if err != nil {
		return "", nil, fmt.Errorf("look up token: %w", translate(err))
	}
	return client, strings.Fields(scopes), nil
}
