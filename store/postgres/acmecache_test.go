package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hookbay/hookbay/hooks"
)

func TestDB_ACMECache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		data, err := db.CacheGet(ctx, "hooks.example.com")
		if got, want := hooks.ErrorCode(err), hooks.ENOTFOUND; got != want {
			t.Fatalf("get a missing entry: code %q (%v), want %q", got, err, want)
		}
		if data != nil {
			t.Fatalf("get a missing entry: data %q, want none", data)
		}
	})

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		// Binary, with a zero byte and invalid UTF-8: certificates and
		// keys are stored as autocert gives them.
		want := []byte("-----BEGIN EC PRIVATE KEY-----\x00\xff\xfe")
		if err := db.CachePut(ctx, "acme_account+key", want); err != nil {
			t.Fatal(err)
		}
		got, err := db.CacheGet(ctx, "acme_account+key")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		if _, err := db.CacheGet(ctx, "hooks.example.com"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Fatalf("another key: %v, want not found", err)
		}
		// An empty entry is an entry, not a miss.
		if err := db.CachePut(ctx, "empty", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := db.CacheGet(ctx, "empty"); err != nil || len(got) != 0 {
			t.Fatalf("empty entry: %q, %v; want it, empty", got, err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		s := newSchema(t)
		db := s.open(t)
		if err := db.CachePut(ctx, "hooks.example.com", []byte("first certificate")); err != nil {
			t.Fatal(err)
		}
		var first string
		conn := s.conn(t)
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT updated_at::text FROM acme_cache WHERE key = 'hooks.example.com'`).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if err := db.CachePut(ctx, "hooks.example.com", []byte("renewed")); err != nil {
			t.Fatal(err)
		}
		if got, err := db.CacheGet(ctx, "hooks.example.com"); err != nil || string(got) != "renewed" {
			t.Fatalf("after overwriting: %q, %v; want renewed", got, err)
		}
		var n int
		var later bool
		if err := conn.QueryRow(ctx, `SELECT count(*), bool_and(updated_at > $1::timestamptz) FROM acme_cache`, first).Scan(&n, &later); err != nil {
			t.Fatal(err)
		}
		if n != 1 || !later {
			t.Fatalf("rows %d, updated_at moved on %v; want one row, a later updated_at", n, later)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		db := openDB(t)
		for _, k := range []string{"hooks.example.com", "hooks.example.com+rsa"} {
			if err := db.CachePut(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CacheDelete(ctx, "hooks.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CacheGet(ctx, "hooks.example.com"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Fatalf("get after delete: %v, want not found", err)
		}
		if got, err := db.CacheGet(ctx, "hooks.example.com+rsa"); err != nil || string(got) != "hooks.example.com+rsa" {
			t.Fatalf("the other entry after delete: %q, %v", got, err)
		}
		// As autocert's DirCache: deleting what is not there succeeds.
		if err := db.CacheDelete(ctx, "hooks.example.com"); err != nil {
			t.Fatalf("delete a missing entry: %v, want nil", err)
		}
	})

	t.Run("TwoHandles", func(t *testing.T) {
		t.Parallel()
		s := newSchema(t)
		a, b := s.open(t), s.open(t)
		if err := a.CachePut(ctx, "hooks.example.com", []byte("from a")); err != nil {
			t.Fatal(err)
		}
		if got, err := b.CacheGet(ctx, "hooks.example.com"); err != nil || string(got) != "from a" {
			t.Fatalf("b reads a's entry: %q, %v", got, err)
		}
		if err := b.CachePut(ctx, "hooks.example.com", []byte("renewed by b")); err != nil {
			t.Fatal(err)
		}
		if got, err := a.CacheGet(ctx, "hooks.example.com"); err != nil || string(got) != "renewed by b" {
			t.Fatalf("a reads b's renewal: %q, %v", got, err)
		}
		if err := a.CacheDelete(ctx, "hooks.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.CacheGet(ctx, "hooks.example.com"); hooks.ErrorCode(err) != hooks.ENOTFOUND {
			t.Fatalf("b after a's delete: %v, want not found", err)
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		t.Parallel()
		// Two replicas storing one new key at once (both obtained a
		// certificate): neither fails, and one whole entry is kept.
		s := newSchema(t)
		handles := []interface {
			CachePut(context.Context, string, []byte) error
		}{s.open(t), s.open(t)}
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for round := range n {
			for i, h := range handles {
				wg.Go(func() {
					if err := h.CachePut(ctx, fmt.Sprintf("key-%d", round), fmt.Appendf(nil, "handle %d", i)); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent put: %v", err)
		}
		db := s.open(t)
		for round := range n {
			got, err := db.CacheGet(ctx, fmt.Sprintf("key-%d", round))
			if err != nil || (string(got) != "handle 0" && string(got) != "handle 1") {
				t.Errorf("key-%d: %q, %v; want one handle's whole entry", round, got, err)
			}
		}
	})
}
