package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
)

// The SQLite file's jobs keep a batch's customers as spans of the batch's
// body; "store copy" reads each job's payload whole.
func TestSQLiteSource_BatchPayloads(t *testing.T) {
	data := t.TempDir()
	m := brMain(t, map[string]config.WebhookConfig{"batch": brBatchHook(0)}, func(c *config.Config) { c.Server.DataDir = data })
	body, items := brBatchBody(5, func(i int) string { return fmt.Sprintf(`{ "id":"s%d", "phone":"+1%03d" }`, i, i) })
	if a := brSend(t, m, brReq{name: "batch", id: "sp-1", body: body}); a.status != 200 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	stopMain(t, m)

	src, err := openSQLiteSource(filepath.Join(data, "hookbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var jobs postgres.ImportTable
	for _, tb := range postgres.ImportTables {
		if tb.Name == "jobs" {
			jobs = tb
		}
	}
	payload := slices.IndexFunc(jobs.Columns, func(c postgres.ImportColumn) bool { return c.Name == "payload_bytes" })
	var got []string
	err = src.Rows(context.Background(), jobs, func(values []any) error {
		b, ok := values[payload].([]byte)
		if !ok {
			return fmt.Errorf("payload %T %v, want bytes", values[payload], values[payload])
		}
		got = append(got, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, items) {
		t.Fatalf("payloads read: got %q, want %q", got, items)
	}
	var spans int
	if err := src.tx.QueryRow(`SELECT count(payload_at) FROM jobs WHERE payload_bytes IS NULL`).Scan(&spans); err != nil || spans != len(items) {
		t.Fatalf("jobs keeping a span: %d, %v; want %d", spans, err, len(items))
	}

	// The customers' keys, kept in their jobs, are read as idempotency
	// keys with the request's own.
	var keys []string
	for _, tb := range postgres.ImportTables {
		if tb.Name != "idempotency" {
			continue
		}
		err := src.Rows(context.Background(), tb, func(values []any) error {
			if values[2] != "done" || values[3] != int64(200) {
				return fmt.Errorf("key %v: state %v, status %v; want done, 200", values[1], values[2], values[3])
			}
			keys = append(keys, values[1].(string))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"batch/id:sp-1"}
	for i := range len(items) {
		want = append(want, hooks.ItemKey("batch", fmt.Sprintf("s%d", i)))
	}
	if slices.Sort(keys); !slices.Equal(keys, want) {
		t.Errorf("idempotency keys read: got %q, want %q", keys, want)
	}
}
