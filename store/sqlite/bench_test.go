package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
	"github.com/hookbay/hookbay/store/sqlite/sqlitetest"
)

// benchBody is a SendEvent1-sized payload of about 600 bytes.
var benchBody = append([]byte(`{"event":"order.paid","data":"`), append(bytes.Repeat([]byte("x"), 560), `"}`...)...)

func benchReceipt(i int64) *hooks.Receipt {
	now := time.Now()
	r := newReceipt(now, fmt.Sprintf("req-%d", i), `{"ok":true}`, fmt.Sprintf("bhid-%d", i))
	r.Request.Body = benchBody
	return r
}

func benchCommit(b *testing.B, db *sqlite.DB, i int64) {
	e, err := db.SaveReceipt(context.Background(), benchReceipt(i))
	if err != nil {
		b.Fatal(err)
	} else if e != nil {
		b.Fatalf("commit %d: got entry %+v, want nil", i, e)
	}
}

// BenchmarkDB_Commit commits receipts one after another: one transaction
// and one fsync each.
func BenchmarkDB_Commit(b *testing.B) {
	db := sqlitetest.Open(b)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchCommit(b, db, int64(i))
	}
}

// BenchmarkDB_CommitParallel commits receipts from many goroutines, as
// concurrent HTTP requests do: the writer shares a transaction, and its
// fsync, among the receipts queued together.
func BenchmarkDB_CommitParallel(b *testing.B) {
	db := sqlitetest.Open(b)
	var n atomic.Int64
	b.SetBytes(int64(len(benchBody)))
	b.SetParallelism(100) // 200 concurrent commits on 2 cores, as in scripts/bench.sh
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchCommit(b, db, n.Add(1))
		}
	})
}
