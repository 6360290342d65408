package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ColumnKind is the kind of value a column of an imported table holds.
type ColumnKind int

// The kinds of column values, and the Go types a Source gives them as.
const (
	// Text is a string (a source's []byte is taken as text).
	Text ColumnKind = iota
	// Bytes is a []byte (a source's string is taken as bytes).
	Bytes
	// Int is an int64.
	Int
	// Time is a time.Time, to the microsecond.
	Time
)

// ImportColumn is a column a Source supplies.
type ImportColumn struct {
	Name string
	Kind ColumnKind
}

// ImportTable is a table Import fills, and the columns a Source supplies
// for it: every column of hookbay's tables but the ones only PostgreSQL
// keeps (a lease's end by the database's clock, and a running job's
// claiming handle), which Import derives.
type ImportTable struct {
	Name    string
	Columns []ImportColumn
	// identity is the id column Import sets the sequence of, if any.
	identity bool
}

// ImportTables are the tables Import fills, in the order it fills them:
// a table comes after those its rows refer to.
var ImportTables = []ImportTable{
	{Name: "requests", identity: true, Columns: []ImportColumn{
		{"id", Int}, {"sender", Text}, {"name", Text}, {"request_id", Text}, {"urgency", Text}, {"method", Text},
		{"path", Text}, {"remote_addr", Text}, {"headers", Text}, {"body", Bytes}, {"status", Int}, {"response", Bytes},
		{"latency_us", Int}, {"notes", Text}, {"duplicate_of", Int}, {"received_at", Time}}},
	{Name: "idempotency", Columns: []ImportColumn{
		{"sender", Text}, {"key", Text}, {"state", Text}, {"status", Int}, {"response", Bytes}, {"request_ref", Int},
		{"locked_until", Time}, {"owner", Int}, {"created_at", Time}}},
	{Name: "jobs", identity: true, Columns: []ImportColumn{
		{"id", Int}, {"request_ref", Int}, {"sender", Text}, {"name", Text}, {"urgency", Text}, {"priority", Int},
		{"state", Text}, {"attempts", Int}, {"scheduled_at", Time}, {"locked_until", Time}, {"last_error", Text},
		{"created_at", Time}, {"finished_at", Time}, {"payload_bytes", Bytes}}},
	{Name: "job_attempts", identity: true, Columns: []ImportColumn{
		{"id", Int}, {"job_id", Int}, {"attempt", Int}, {"started_at", Time}, {"duration_us", Int}, {"outcome", Text},
		{"error", Text}}},
	{Name: "oauth_tokens", Columns: []ImportColumn{
		{"hash", Bytes}, {"client_id", Text}, {"scopes", Text}, {"expires_at", Time}}},
	{Name: "faults", identity: true, Columns: []ImportColumn{
		{"id", Int}, {"sender", Text}, {"name", Text}, {"kind", Text}, {"status", Int}, {"delay_us", Int},
		{"remaining", Int}, {"percent", Int}, {"expires_at", Time}, {"created_at", Time}}},
}

// Source supplies the rows of another hookbay store (an SQLite file) to
// Import.
type Source interface {
	// Rows calls each with every row of table, its values in the order of
	// table.Columns, each nil (NULL) or of its column's kind. It stops at
	// the first error each returns, and returns it.
	Rows(ctx context.Context, table ImportTable, each func(values []any) error) error
}

// ErrNotEmpty is returned by Import when the store holds rows already and
// it was not told to replace them.
var ErrNotEmpty = errors.New("the PostgreSQL store is not empty")

// importBatch is how many rows one COPY sends.
const importBatch = 2000

// Import copies every row src supplies into the store, keeping their IDs,
// in one transaction: all of it or none. It refuses (ErrNotEmpty) a store
// that holds any request, key, job, attempt, token or fault, unless
// replace is true, which deletes them first. It returns how many rows each
// table received.
//
// Leases carry over with the time they have left: a pending key or a
// running job whose lease ends at locked_until, by the clock of the
// process that took it, keeps locked_until and gets the same time left on
// the database's clock (none when it has run out), so that it is taken
// back once that has passed (a running job's claim is no one's: only a
// rescue ends it). The sequences of the id columns continue after the
// largest id copied, and the replicas listening hear that jobs are
// waiting.
//
// The hookbay processes using either store should be stopped while it
// runs: what they write meanwhile is not copied, and the tables are locked
// until it commits.
func (db *DB) Import(ctx context.Context, src Source, replace bool) (map[string]int64, error) {
	select {
	case <-db.quit:
		return nil, ErrClosed
	default:
	}
	counts := map[string]int64{}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		names := make([]string, len(ImportTables))
		for i, t := range ImportTables {
			names[i] = t.Name
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(names, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("lock the tables: %w", err)
		}
		if replace {
			if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(names, ", ")); err != nil {
				return fmt.Errorf("empty the tables: %w", err)
			}
		} else {
			var held []string
			for _, name := range names {
				var n int64
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&n); err != nil {
					return fmt.Errorf("count %s: %w", name, err)
				}
				if n > 0 {
					held = append(held, fmt.Sprintf("%d %s", n, name))
				}
			}
			if len(held) > 0 {
				return fmt.Errorf("%w: it holds %s", ErrNotEmpty, strings.Join(held, ", "))
			}
		}
		// Leases left are counted from one instant on each clock: the
		// transaction's now() on the database's, and the same moment on
		// the clock the leases were given by.
		var dbNow time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&dbNow); err != nil {
			return fmt.Errorf("read the database's clock: %w", err)
		}
		local := db.clockNow()
		for _, t := range ImportTables {
			n, err := importTable(ctx, tx, src, t, dbNow, local)
			if err != nil {
				return fmt.Errorf("copy %s: %w", t.Name, err)
			}
			counts[t.Name] = n
			if t.identity {
				if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'),
					COALESCE((SELECT max(id) FROM `+t.Name+`), 0) + 1, false)`, t.Name); err != nil {
					return fmt.Errorf("continue the ids of %s: %w", t.Name, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, db.jobsChannel); err != nil {
			return fmt.Errorf("announce the jobs: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import: %w", translate(err))
	}
	return counts, nil
}

// importTable copies one table's rows, importBatch at a time, adding the
// columns only PostgreSQL keeps, and returns how many it copied.
func importTable(ctx context.Context, tx pgx.Tx, src Source, t ImportTable, dbNow, local time.Time) (int64, error) {
	cols := make([]string, 0, len(t.Columns)+1)
	idx := map[string]int{}
	for i, c := range t.Columns {
		cols = append(cols, c.Name)
		idx[c.Name] = i
	}
	// leased is the state whose rows hold a lease: lease_expires is added.
	var leased string
	switch t.Name {
	case "idempotency":
		leased = "pending"
	case "jobs":
		leased = "running"
	}
	if leased != "" {
		cols = append(cols, "lease_expires")
	}
	var total int64
	rows := make([][]any, 0, importBatch)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, cols, pgx.CopyFromRows(rows))
		total += n
		rows = rows[:0]
		return err
	}
	err := src.Rows(ctx, t, func(values []any) error {
		if len(values) != len(t.Columns) {
			return fmt.Errorf("a row of %d values for %d columns", len(values), len(t.Columns))
		}
		row := make([]any, len(cols))
		for i, c := range t.Columns {
			v, err := convert(values[i], c.Kind)
			if err != nil {
				return fmt.Errorf("column %s: %w", c.Name, err)
			}
			row[i] = v
		}
		if leased != "" {
			row[len(cols)-1] = nil
			if state, _ := row[idx["state"]].(string); state == leased {
				left := time.Duration(0)
				if until, ok := row[idx["locked_until"]].(time.Time); ok {
					left = max(until.Sub(local), 0)
				}
				row[len(cols)-1] = dbNow.Add(left)
			}
		}
		rows = append(rows, row)
		if len(rows) == importBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return total, err
	}
	return total, flush()
}

// convert checks a source's value against its column's kind, and makes it
// fit PostgreSQL: text valid UTF-8 without NUL bytes (which PostgreSQL's
// text refuses, and another store may hold), times to the microsecond.
func convert(v any, kind ColumnKind) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch kind {
	case Text:
		switch s := v.(type) {
		case string:
			return cleanText(s), nil
		case []byte:
			return cleanText(string(s)), nil
		}
	case Bytes:
		switch b := v.(type) {
		case []byte:
			return b, nil
		case string:
			return []byte(b), nil
		}
	case Int:
		switch n := v.(type) {
		case int64:
			return n, nil
		case int:
			return int64(n), nil
		}
	case Time:
		if t, ok := v.(time.Time); ok {
			return t.Truncate(time.Microsecond), nil
		}
	}
	return nil, fmt.Errorf("a value of type %T", v)
}
