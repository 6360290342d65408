package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookbay/hookbay/hooks"
)

// TestDB_FindRequests_Plans checks that the inspector's filters are served
// by the indexes of 0003_inspector.sql on a table of 50,000 requests, in
// the plan made for the values given (custom) and in the one made for any
// values (generic), which a statement the pool has prepared ends up with
// after a few runs: an error status or class reads requests_error_status,
// whose predicate (status >= 300) only a literal in the statement implies
// in a generic plan; a rare sender or name reads its own index. Each filter
// finds what a plain statement finds, the classes' edges included. (It is
// in package postgres to EXPLAIN the statement FindRequests runs, with its
// arguments.)
func TestDB_FindRequests_Plans(t *testing.T) {
	t.Parallel()
	url := os.Getenv("HOOKBAY_TEST_DATABASE_URL")
	if url == "" {
		if os.Getenv("HOOKBAY_REQUIRE_SERVICES") == "1" {
			t.Fatal("HOOKBAY_TEST_DATABASE_URL is not set, and HOOKBAY_REQUIRE_SERVICES=1 requires the PostgreSQL tests to run")
		}
		t.Skip("set HOOKBAY_TEST_DATABASE_URL to a PostgreSQL URL (a role that may create schemas) to run the PostgreSQL store tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "hookbay_test_" + hex.EncodeToString(b[:])
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		conn.Close(ctx)
	})
	// Open creates the schema and its tables.
	db, err := Open(ctx, url, WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	// 1% Bloomreach, 0.1% Hello1, 0.5% answered 503, 0.4% 404, a few at
	// the classes' edges, the rest Bubblehouse and Svix answered 200, with
	// SendEvent1-sized bodies.
	if _, err := conn.Exec(ctx, `INSERT INTO requests (sender, name, request_id, status, headers, body, received_at)
		SELECT CASE WHEN g % 100 = 0 THEN 'bloomreach' WHEN g % 3 = 0 THEN 'svix' ELSE 'bubblehouse' END,
			CASE WHEN g % 1000 = 0 THEN 'Hello1' ELSE 'SendEvent1' END,
			'req-' || g,
			CASE WHEN g % 200 = 0 THEN 503 WHEN g % 250 = 0 THEN 404
				WHEN g % 997 = 0 THEN 299 WHEN g % 991 = 0 THEN 300 WHEN g % 983 = 0 THEN 399
				WHEN g % 977 = 0 THEN 400 WHEN g % 971 = 0 THEN 499 WHEN g % 967 = 0 THEN 500
				WHEN g % 953 = 0 THEN 599 ELSE 200 END,
			'{"Content-Type":["application/json"]}',
			convert_to(repeat('x', 480), 'UTF8'),
			now() - (50000 - g) * interval '1 second'
		FROM generate_series(1, 50000) g`); err != nil {
		t.Fatalf("fill requests: %v", err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE requests`); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name  string
		f     hooks.RequestFilter
		index string
		// want selects, newest first, the records the filter must find.
		want string
		// generic: the plan for any values must read index too, not only
		// the plan for the values given.
		generic bool
	}{
		{"5xx", hooks.RequestFilter{StatusClass: 5}, "requests_error_status",
			`status / 100 = 5`, true},
		{"503", hooks.RequestFilter{Status: 503}, "requests_error_status",
			`status = 503`, true},
		{"4xx before", hooks.RequestFilter{StatusClass: 4, BeforeID: 40000}, "requests_error_status",
			`status / 100 = 4 AND id < 40000`, true},
		{"3xx", hooks.RequestFilter{StatusClass: 3}, "requests_error_status",
			`status / 100 = 3`, true},
		{"svix 5xx", hooks.RequestFilter{Sender: hooks.SenderSvix, StatusClass: 5}, "requests_error_status",
			`sender = 'svix' AND status / 100 = 5`, true},
		// A sender or a name of any frequency shares one generic plan,
		// which reads the newest records and keeps those that match; the
		// plan for a rare value reads its index.
		{"rare sender", hooks.RequestFilter{Sender: hooks.SenderBloomreach}, "requests_sender",
			`sender = 'bloomreach'`, false},
		{"rare name", hooks.RequestFilter{Name: "Hello1"}, "requests_name",
			`name = 'Hello1'`, false},
	} {
		f := tt.f
		f.Limit = 50
		q, args := requestsQuery(f)
		modes := []string{"force_custom_plan"}
		if tt.generic {
			modes = append(modes, "force_generic_plan")
		}
		for _, mode := range modes {
			plan := explain(t, conn, mode, q, args)
			if !strings.Contains(plan, tt.index) || strings.Contains(plan, "Seq Scan") {
				t.Errorf("%s, %s: the plan does not read %s:\n%s", tt.name, mode, tt.index, plan)
			}
		}
		var want []int64
		rows, err := conn.Query(ctx, `SELECT id FROM requests WHERE `+tt.want+` ORDER BY id DESC LIMIT 50`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
		rows.Close()
		if len(want) == 0 {
			t.Fatalf("%s: no record has %s", tt.name, tt.want)
		}
		reqs, err := db.FindRequests(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []int64
		for _, r := range reqs {
			got = append(got, r.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: found %v, want %v", tt.name, got, want)
		}
	}
}

// explain returns the plan of q with args in the plan cache mode given
// (force_custom_plan or force_generic_plan), as the server makes it for a
// prepared statement.
func explain(t *testing.T, conn *pgx.Conn, mode, q string, args []any) string {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `PREPARE finder AS `+q, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("prepare %s: %v", q, err)
	}
	defer conn.Exec(ctx, `DEALLOCATE finder`)
	params := make([]string, len(args))
	for i := range args {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	// The server takes no parameters in an EXPLAIN EXECUTE: pgx writes
	// the arguments into the statement as literals.
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE finder(`+strings.Join(params, ", ")+`)`,
		append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	return strings.Join(plan, "\n")
}
