package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
)

// checkpointer copies the WAL into the database file in the background
// (PASSIVE: it never blocks the writer), so that the WAL stays small
// without costing commits any latency. When the WAL has outgrown
// maxWALFrames, it asks the writer to restart it: under sustained load
// only the writer finds a moment outside a transaction, and a RESTART from
// this connection kept losing the race for the lock (the WAL reached
// 900 MB at 46k commits/s in a test).
func (db *DB) checkpointer() {
	defer close(db.checkpointDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		var busy, frames, copied int
		err := db.cdb.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		// Even a WAL this checkpoint copied whole is restarted: SQLite
		// starts it over by itself only when no reader holds a read mark
		// in it, and under load one always does (left to SQLite, the WAL
		// of a batch load reached 464 MiB in 13 s, against 64 MiB).
		if err == nil && int64(frames) > db.maxWALFrames.Load() {
			db.walOver.Store(true)
		}
		var se sqlite3.Error
		if errors.As(err, &se) && se.Code == sqlite3.ErrBusy {
			err = nil // busy readers or writer: next time
		}
		if err != nil {
			db.Logger.Warn("checkpoint", "err", err)
		}
	}
}

// restartWAL copies what the WAL holds into the database and makes the
// next commit start it over. The writer runs it between batches, so no
// write is in its way; readers may be, and it waits for them only
// restartBusyMs before it leaves the WAL for the next try. SQLite reports
// such a busy RESTART in its result, not as an error.
func (db *DB) restartWAL() {
	ctx := context.Background()
	if _, err := db.wconn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, restartBusyMs)); err != nil {
		db.Logger.Warn("restart the WAL", "err", err)
		return
	}
	db.walRestarts.Add(1)
	var busy, frames, copied int
	err := db.wconn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied)
	if _, rerr := db.wconn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeoutMs)); rerr != nil {
		err = errors.Join(err, rerr) // the writer must not keep the short wait
	}
	if se := (sqlite3.Error{}); errors.As(err, &se) && se.Code == sqlite3.ErrBusy {
		err = nil
	}
	switch {
	case err != nil:
		db.Logger.Warn("restart the WAL", "err", err)
	case busy != 0:
		db.Logger.Debug("WAL restart postponed: readers busy", "frames", frames)
	}
}
