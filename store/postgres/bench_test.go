package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/postgres"
)

// benchBody is a SendEvent1-sized payload of about 600 bytes.
var benchBody = append([]byte(`{"event":"order.paid","data":"`), append(bytes.Repeat([]byte("x"), 560), `"}`...)...)

func benchSave(b *testing.B, db *postgres.DB, i int64) {
	r := newReceipt(time.Now(), fmt.Sprintf("req-%d", i), `{"ok":true}`, fmt.Sprintf("bhid-%d", i))
	r.Request.Body = benchBody
	if e, err := db.SaveReceipt(context.Background(), r); err != nil {
		b.Fatal(err)
	} else if e != nil {
		b.Fatalf("save %d: got entry %+v, want nil", i, e)
	}
}

// BenchmarkDB_SaveReceipt saves receipts one after another: one
// transaction, and one commit's fsync, each.
func BenchmarkDB_SaveReceipt(b *testing.B) {
	db := openDB(b)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchSave(b, db, int64(i))
	}
}

// BenchmarkDB_SaveReceiptParallel saves receipts from 200 goroutines, as
// concurrent HTTP requests do: the writers share a transaction, and its
// fsync, among the receipts queued together.
func BenchmarkDB_SaveReceiptParallel(b *testing.B) {
	db := openDB(b)
	var n atomic.Int64
	b.SetBytes(int64(len(benchBody)))
	b.SetParallelism(100) // 200 concurrent saves on 2 cores, as in scripts/bench.sh
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchSave(b, db, n.Add(1))
		}
	})
}

// BenchmarkDB_ClaimComplete drains a queue the way the workers do: claims
// of 32, completed in one statement each.
func BenchmarkDB_ClaimComplete(b *testing.B) {
	db := openDB(b)
	for i := 0; i < b.N; i++ {
		benchSave(b, db, int64(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		jobs, err := db.ClaimJobs(context.Background(), time.Now(), time.Minute, 32, 32)
		if err != nil {
			b.Fatal(err)
		}
		if err := db.CompleteJobs(context.Background(), jobs, time.Now()); err != nil {
			b.Fatal(err)
		}
		done += len(jobs)
		if len(jobs) == 0 {
			b.Fatalf("queue empty after %d of %d jobs", done, b.N)
		}
	}
	_ = hooks.JobDone
}
