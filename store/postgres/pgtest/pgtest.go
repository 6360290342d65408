// Package pgtest gives tests a PostgreSQL store of their own: a fresh schema
// on the database HOOKBAY_TEST_DATABASE_URL names, dropped when the test
// ends. Without that variable the test is skipped with a message naming it,
// unless HOOKBAY_REQUIRE_SERVICES=1 (CI), which makes its absence a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/store/postgres"
)

// URLVar names the variable that points the tests at a PostgreSQL database
// they may create schemas in; RequireVar, set to 1, turns a skip for its
// absence into a failure.
const (
	URLVar     = "HOOKBAY_TEST_DATABASE_URL"
	RequireVar = "HOOKBAY_REQUIRE_SERVICES"
)

// DatabaseURL returns the test database's URL, or skips the test without
// one (fails it when RequireVar is 1).
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(URLVar)
	if u == "" {
		Unavailable(tb, "set %s to a PostgreSQL URL (a role that may create schemas) to run the PostgreSQL tests", URLVar)
	}
	return u
}

// Unavailable ends a test that needs PostgreSQL and cannot have it, saying
// why: it skips, or, when RequireVar is 1 (CI), it fails.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if os.Getenv(RequireVar) == "1" {
		tb.Fatalf(format+" (%s=1 requires the PostgreSQL tests to run)", append(args, RequireVar)...)
	}
	tb.Skipf(format, args...)
}

// Schema is a schema of one test's own on the test database.
type Schema struct {
	// Name is the schema's name, hookbay_test_ and 12 hex digits.
	Name string
	// Base is the test database's URL, which names no schema.
	Base string
}

// New creates a fresh schema on the test database, and drops it (CASCADE)
// when the test ends, after the handles opened on it are closed: cleanups
// run last first.
func New(tb testing.TB) *Schema {
	tb.Helper()
	base := DatabaseURL(tb)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	s := &Schema{Name: "hookbay_test_" + hex.EncodeToString(b[:]), Base: base}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", URLVar, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{s.Name}.Sanitize()); err != nil {
		tb.Fatalf("create schema %s: %v", s.Name, err)
	}
	tb.Cleanup(func() { s.drop(tb) })
	return s
}

// drop drops the schema and everything in it.
func (s *Schema) drop(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.Base)
	if err != nil {
		tb.Errorf("drop schema %s: %v", s.Name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{s.Name}.Sanitize()+` CASCADE`); err != nil {
		tb.Errorf("drop schema %s: %v", s.Name, err)
	}
}

// URL is the test database's URL with the schema as its search_path (in
// libpq's options parameter, which psql reads too): what a hookbay process
// is given (store.postgres.url) to keep its tables there.
func (s *Schema) URL() string {
	return WithParam(s.Base, "options", "-csearch_path="+s.Name)
}

// WithParam returns the URL u (a URL or a key=value DSN) with the
// parameter name set to value.
func WithParam(u, name, value string) string {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		pu, err := url.Parse(u)
		if err == nil {
			q := pu.Query()
			q.Set(name, value)
			pu.RawQuery = q.Encode()
			return pu.String()
		}
	}
	return u + " " + name + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}

// Open opens a store on the schema, closed when the test ends.
func (s *Schema) Open(tb testing.TB, opts ...postgres.Option) *postgres.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, s.Base, append([]postgres.Option{postgres.WithSchema(s.Name)}, opts...)...)
	if err != nil {
		tb.Fatalf("open schema %s: %v", s.Name, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close schema %s: %v", s.Name, err)
		}
	})
	return db
}

// Conn opens a connection of its own to the schema, as another client
// would; it is closed when the test ends.
func (s *Schema) Conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(s.Base)
	if err != nil {
		tb.Fatalf("parse %s: %v", URLVar, err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{s.Name}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect to schema %s: %v", s.Name, err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs a statement on the schema from a connection of its own.
func (s *Schema) Exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	conn := s.Conn(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}
