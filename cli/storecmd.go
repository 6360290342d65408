package cli

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hookbay/hookbay/store/postgres"
	"github.com/hookbay/hookbay/store/sqlite"
)

// StoreCommand is "hookbay store": moving a store from one backend to
// another.
type StoreCommand struct {
	Stdout, Stderr io.Writer
}

const storeUsage = `usage: hookbay store copy --from DATA_DIR_OR_SQLITE_FILE --to postgres://... [--force]

copy    copies an SQLite store (the data directory's hookbay.db, or the file
        named) into a PostgreSQL store: request records, idempotency keys,
        jobs, attempts, OAuth tokens and faults, with their ids. Stop the
        hookbay using the SQLite file first. The target must be empty
        unless --force, which replaces what it holds.
`

// Run dispatches "store SUBCOMMAND".
func (cmd *StoreCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(cmd.Stdout, storeUsage)
		if len(args) == 0 {
			return usageError{"store: no subcommand given"}
		}
		return nil
	}
	switch args[0] {
	case "copy":
		return cmd.copy(ctx, args[1:])
	}
	fmt.Fprint(cmd.Stderr, storeUsage)
	return fmt.Errorf("store: unknown subcommand %q", args[0])
}

// copy is "store copy".
func (cmd *StoreCommand) copy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("store copy", flag.ContinueOnError)
	fs.SetOutput(cmd.Stderr)
	from := fs.String("from", "", "the SQLite store: a data directory (its hookbay.db) or the file itself")
	to := fs.String("to", "", "the PostgreSQL store's URL (as store.postgres.url)")
	force := fs.Bool("force", false, "replace what the PostgreSQL store holds, instead of refusing a store that is not empty")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("store copy: unexpected argument %q: it takes only flags (-h lists them)", pos[0])
	}
	if *from == "" || *to == "" {
		return fmt.Errorf("store copy: --from and --to are both required")
	}
	path, err := sqliteFile(*from)
	if err != nil {
		return err
	}
	// Opening the file as serve does brings its tables up to date, so
	// that an older hookbay's file has every column copied.
	lite, err := sqlite.Open(path)
	if err != nil {
		return fmt.Errorf("store copy: open %s: %w", path, err)
	}
	if err := lite.Close(); err != nil {
		return fmt.Errorf("store copy: close %s: %w", path, err)
	}
	src, err := openSQLiteSource(path)
	if err != nil {
		return err
	}
	defer src.Close()
	pg, err := postgres.Open(ctx, *to)
	if err != nil {
		return fmt.Errorf("store copy: open the PostgreSQL store %s: %w", redactURL(*to), err)
	}
	defer pg.Close()
	start := time.Now()
	counts, err := pg.Import(ctx, src, *force)
	if errors.Is(err, postgres.ErrNotEmpty) {
		return fmt.Errorf("store copy: %w; --force replaces what it holds", err)
	} else if err != nil {
		return fmt.Errorf("store copy from %s: %w", path, err)
	}
	fmt.Fprintf(cmd.Stdout, "copied %s to %s in %s:\n", path, redactURL(*to), time.Since(start).Round(time.Millisecond))
	for _, t := range []struct{ table, what string }{
		{"requests", "request records"}, {"idempotency", "idempotency keys"}, {"jobs", "jobs"},
		{"job_attempts", "attempts"}, {"oauth_tokens", "OAuth tokens"}, {"faults", "faults"},
	} {
		fmt.Fprintf(cmd.Stdout, "  %8d %s\n", counts[t.table], t.what)
	}
	return nil
}

// sqliteFile is the SQLite store that --from names: a data directory's
// hookbay.db, or a file. It must exist: a copy never creates one.
func sqliteFile(from string) (string, error) {
	fi, err := os.Stat(from)
	if err != nil {
		return "", fmt.Errorf("store copy: --from %s: %w", from, err)
	}
	path := from
	if fi.IsDir() {
		path = filepath.Join(from, "hookbay.db")
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("store copy: --from %s is a directory without a hookbay.db: %w", from, err)
		}
	}
	return path, nil
}

// sqliteSource reads an SQLite store's tables for postgres.Import. It
// reads the file as it is kept (store/sqlite's migrations), on one read
// transaction so that the copy is of one moment.
type sqliteSource struct {
	db *sql.DB
	tx *sql.Tx
	// spans is whether the file's jobs may keep their payloads as spans
	// of their requests' bodies (store/sqlite's migration 0008).
	spans bool
	// itemKeys is whether the file keeps batch customers' keys in their
	// jobs, read with the others through the idempotency_keys view
	// (store/sqlite's migration 0009).
	itemKeys bool
}

// openSQLiteSource opens path read-only.
func openSQLiteSource(path string) (*sqliteSource, error) {
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&_busy_timeout=5000"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("store copy: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store copy: read %s: %w", path, err)
	}
	s := &sqliteSource{db: db, tx: tx}
	if err := s.checkSchema(); err != nil {
		s.Close()
		return nil, fmt.Errorf("store copy: read %s: %w", path, err)
	}
	return s, nil
}

// checkSchema sets spans and itemKeys, and refuses a file holding a job
// whose payload's bounds its request's body does not reach.
func (s *sqliteSource) checkSchema() error {
	var views int
	if err := s.tx.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = 'idempotency_keys'`).Scan(&views); err != nil {
		return err
	}
	s.itemKeys = views > 0
	var n int
	if err := s.tx.QueryRow(`SELECT count(*) FROM pragma_table_info('jobs') WHERE name = 'payload_at'`).Scan(&n); err != nil {
		return err
	}
	if s.spans = n > 0; s.spans {
		return sqlite.PayloadOutside(s.tx, `true`)
	}
	return nil
}

// Close ends the read and closes the file.
func (s *sqliteSource) Close() error {
	s.tx.Rollback()
	return s.db.Close()
}

// Rows reads every row of t, times from unix microseconds, and each job's
// payload whole, also when the file keeps it as a span of the body.
func (s *sqliteSource) Rows(ctx context.Context, t postgres.ImportTable, each func([]any) error) error {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
		if t.Name == "jobs" && c.Name == "payload_bytes" {
			// A file from before the payload's bounds (store/sqlite's
			// migration 0008) keeps every payload whole, as payload.
			names[i] = "payload"
			if s.spans {
				names[i] = sqlite.PayloadSQL
			}
		}
	}
	from := t.Name
	if from == "idempotency" && s.itemKeys {
		from = "idempotency_keys"
	}
	q := `SELECT ` + strings.Join(names, ", ") + ` FROM ` + from
	if names[0] == "id" {
		q += ` ORDER BY id`
	}
	rows, err := s.tx.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rows.Close()
	vals := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s: %w", t.Name, err)
		}
		out := make([]any, len(vals))
		for i, c := range t.Columns {
			out[i] = vals[i]
			if n, ok := vals[i].(int64); ok && c.Kind == postgres.Time {
				out[i] = time.UnixMicro(n).UTC()
			}
		}
		if err := each(out); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t.Name, err)
	}
	return nil
}
