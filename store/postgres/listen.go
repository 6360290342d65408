package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen calls onJobs whenever jobs become available (queued, released,
// rescued or retried), by this process or another replica on the database,
// with the most pressing priority among them (0 when it is not known),
// until ctx ends or the store closes: a queue calls its Queued from it, to
// wake idle workers at once and let an urgent job pass regular ones it
// holds. It returns once it is listening.
//
// A notification is a hint, never the only way to find work: one sent
// while the connection was down is lost (onJobs is called after every
// reconnection for that reason), and LISTEN does not work through a
// transaction-pooling proxy such as PgBouncer in transaction mode. The
// queue's polling stays the fallback, so a lost notification delays a job
// by at most one poll interval and never strands it. onJobs runs on the
// listener's goroutine and must not block.
func (db *DB) Listen(ctx context.Context, onJobs func(priority int)) error {
	return db.listen(ctx, db.jobsChannel, func(payload string) {
		p, err := strconv.Atoi(payload)
		if err != nil {
			p = 0 // not said: take it for the most pressing
		}
		onJobs(p)
	}, func() { onJobs(0) })
}

// ListenRequests calls onRequest with the ID of every request record
// committed, by this process or another replica, until ctx ends or the
// store closes: a live view of traffic across replicas. Like Listen, it
// returns once it is listening, and records committed while its connection
// was down are not announced (read them with FindRequests). onRequest runs
// on the listener's goroutine and must not block.
func (db *DB) ListenRequests(ctx context.Context, onRequest func(id int64)) error {
	return db.listen(ctx, db.requestsChannel, func(payload string) {
		for _, s := range strings.Split(payload, ",") {
			if id, err := strconv.ParseInt(s, 10, 64); err == nil {
				onRequest(id)
			}
		}
	}, nil)
}

// ListenJobChanges calls onJob with the ID of every job whose attempt was
// recorded or that was retried, by this process or another replica, until
// ctx ends or the store closes; with 0 when jobs changed without being
// listed (a retry of every dead job, a commit that changed too many to
// list, a reconnection after which changes may have been missed): read
// them again. Like Listen, it returns once it is listening; onJob runs on
// the listener's goroutine and must not block.
func (db *DB) ListenJobChanges(ctx context.Context, onJob func(id int64)) error {
	return db.listen(ctx, db.jobChangesChannel, func(payload string) {
		if payload == "*" {
			onJob(0)
			return
		}
		for _, s := range strings.Split(payload, ",") {
			if id, err := strconv.ParseInt(s, 10, 64); err == nil {
				onJob(id)
			}
		}
	}, func() { onJob(0) })
}

// listen holds a connection of its own listening on channel, passing each
// payload to deliver, and reconnects with a growing pause when it drops,
// calling reconnected once listening again.
func (db *DB) listen(ctx context.Context, channel string, deliver func(string), reconnected func()) error {
	db.listenersMu.Lock()
	if db.listenClosed {
		db.listenersMu.Unlock()
		return ErrClosed
	}
	db.listeners.Add(1)
	db.listenersMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(db.listenCtx, cancel)
	conn, err := db.listenConn(ctx, channel)
	if err != nil {
		stop()
		cancel()
		db.listeners.Done()
		return fmt.Errorf("listen on %s: %w", channel, translate(err))
	}
	go func() {
		defer db.listeners.Done()
		defer stop()
		defer cancel()
		pause := 100 * time.Millisecond
		for {
			err := receive(ctx, conn, deliver)
			conn.Close(context.Background())
			for ctx.Err() == nil {
				db.Logger.Warn("listening for notifications", "channel", channel, "err", err, "retry_in", pause)
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
				pause = min(2*pause, 5*time.Second)
				if conn, err = db.listenConn(ctx, channel); err == nil {
					break
				}
			}
			if ctx.Err() != nil {
				return
			}
			pause = 100 * time.Millisecond
			if reconnected != nil {
				reconnected()
			}
		}
	}()
	return nil
}

// listenConn opens a connection outside the pool (a listener holds it for
// good) and listens on channel.
func (db *DB) listenConn(ctx context.Context, channel string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// receive delivers notifications until the connection fails or ctx ends.
func receive(ctx context.Context, conn *pgx.Conn, deliver func(string)) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		deliver(n.Payload)
	}
}
