// Command floor is the lower bound that scripts/bench.sh (FLOOR=1) measures
// next to hookbay: the least a durable receiver can do per request on the
// machine. It reads the body, checks that it is JSON, records the request
// headers and body in SQLite (WAL, synchronous=FULL, one writer sharing each
// commit and its fsync among the requests queued together) and answers 202
// once the commit returns. With -rows 3 it also writes an idempotency row
// and a job row in the same transaction, as hookbay does for every accepted
// hook. It has no authentication, no redaction, no idempotency logic and no
// queue: hookbay cannot go faster than the variant with its own data model.
//
// With -sync off it skips the fsync (synchronous=OFF): not durable, so not
// a receiver the issue allows, but the ceiling of this stack on the machine
// when the disk costs nothing, which tells the disk's share of the floor
// from the CPU's.
package main

import (
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/mattn/go-sqlite3"
)

// schema is the data model; with one row per request, the request's UNIQUE
// key is an index on its own row, with three it is the idempotency row.
const schema = `
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, sender TEXT NOT NULL, request_id TEXT NOT NULL,
	headers TEXT NOT NULL, body BLOB, received_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (sender TEXT NOT NULL, key TEXT NOT NULL, request_ref INTEGER,
	created_at INTEGER NOT NULL, PRIMARY KEY (sender, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, request_ref INTEGER NOT NULL, state TEXT NOT NULL,
	created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_request ON jobs (request_ref);`

type write struct {
	key           string
	headers, body []byte
	done          chan error
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18082", "listen address")
	path := flag.String("db", "floor.db", "SQLite file (recreated)")
	rows := flag.Int("rows", 1, "rows per request: 1 (the request) or 3 (with idempotency and job rows)")
	sync := flag.String("sync", "full", "SQLite synchronous mode: full (fsync before each answer) or off (no fsync: not durable)")
	flag.Parse()
	if *sync != "full" && *sync != "off" {
		log.Fatalf("floor: -sync %q: want full or off", *sync)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(*path + suffix)
	}

	var conn *sqlite3.SQLiteConn
	sql.Register("floor", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error { conn = c; return nil }})
	db, err := sql.Open("floor", "file:"+*path+"?_journal_mode=WAL&_synchronous="+strings.ToUpper(*sync)+"&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		log.Fatal(err)
	}
	if *rows == 1 {
		if _, err := db.Exec(`CREATE UNIQUE INDEX requests_key ON requests (sender, request_id)`); err != nil {
			log.Fatal(err)
		}
	}
	prepare := func(q string) driver.Stmt {
		st, err := conn.Prepare(q)
		if err != nil {
			log.Fatal(err)
		}
		return st
	}
	insertRequest := prepare(`INSERT INTO requests (sender, request_id, headers, body, received_at) VALUES (?, ?, ?, ?, ?)`)
	insertKey := prepare(`INSERT INTO idempotency (sender, key, request_ref, created_at) VALUES (?, ?, ?, ?)`)
	insertJob := prepare(`INSERT INTO jobs (request_ref, state, created_at) VALUES (?, 'done', ?)`)

	writes := make(chan write, 512)
	go func() {
		batch := make([]write, 0, 512)
		for {
			batch = append(batch[:0], <-writes)
		fill:
			for len(batch) < cap(batch) {
				select {
				case w := <-writes:
					batch = append(batch, w)
				default:
					break fill
				}
			}
			err := commit(conn, batch, *rows, insertRequest, insertKey, insertJob)
			for _, w := range batch {
				w.done <- err
			}
		}
	}()

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/bubblehouse/:name", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		if !json.Valid(body) {
			return c.JSONBlob(http.StatusBadRequest, []byte(`{"error":"body is not JSON"}`))
		}
		headers, err := json.Marshal(c.Request().Header)
		if err != nil {
			return err
		}
		w := write{key: c.Request().Header.Get("X-Request-ID"), headers: headers, body: body, done: make(chan error, 1)}
		writes <- w
		if err := <-w.done; err != nil {
			return err
		}
		return c.JSONBlob(http.StatusAccepted, []byte(`{"ok":true}`))
	})
	log.Fatal(e.Start(*listen))
}

// commit writes a batch in one transaction; a failed write fails the batch.
func commit(conn *sqlite3.SQLiteConn, batch []write, rows int, insertRequest, insertKey, insertJob driver.Stmt) error {
	if _, err := conn.Exec("BEGIN IMMEDIATE", nil); err != nil {
		return err
	}
	now := time.Now().UnixMicro()
	for _, w := range batch {
		res, err := insertRequest.Exec([]driver.Value{"bubblehouse", w.key, w.headers, w.body, now})
		if err == nil && rows == 3 {
			var id int64
			if id, err = res.LastInsertId(); err == nil {
				if _, err = insertKey.Exec([]driver.Value{"bubblehouse", w.key, id, now}); err == nil {
					_, err = insertJob.Exec([]driver.Value{id, now})
				}
			}
		}
		if err != nil {
			conn.Exec("ROLLBACK", nil)
			return err
		}
	}
	_, err := conn.Exec("COMMIT", nil)
	return err
}
