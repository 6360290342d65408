package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
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

// benchBatch is a Bloomreach batch of n customers of about 150 bytes, each
// with its own item key, stored and not delivered, as scripts/bench.sh's
// batch run has them. With scatter, the keys lead with a hash of the
// customer, as real item IDs (customer IDs, UUIDs) spread over the key
// index; without it they are in order, as the load scripts number them.
func benchBatch(run string, n int, scatter bool) *hooks.Receipt {
	now := time.Now()
	// As the batch handler does: each customer's payload is a part of the
	// body, and its item says where.
	at := make([]int, n)
	body := []byte(`{"messages":[`)
	for i := range at {
		if i > 0 {
			body = append(body, ',')
		}
		at[i] = len(body)
		body = fmt.Appendf(body, `{"id":"%s-%d","customer_id":"cus_%08d","phone":"+420601%06d","text":"Hi Jana, your order #48213 has shipped and will arrive"}`, run, i, i, i)
	}
	body = append(body, `]}`...)
	items := make([][]byte, n)
	for i := range items {
		end := len(body) - 2
		if i+1 < n {
			end = at[i+1] - 1
		}
		items[i] = body[at[i]:end]
	}
	req := &hooks.Request{
		Sender: hooks.SenderBloomreach, Name: "sms_batch", RequestID: run, Method: "POST",
		Path: "/bloomreach/sms_batch", Body: body, Status: 200, ReceivedAt: now,
		Response: bytes.Repeat([]byte(`{"index":1,"item_id":"x","success":true,"errors":[]},`), n),
	}
	r := &hooks.Receipt{Request: req, Scope: "sms_batch/id:", Keys: []string{"sms_batch/id:" + run}}
	for i, item := range items {
		j := hooks.NewJob(req, now)
		j.Payload = item
		j.Stored(now)
		key := fmt.Sprintf("sms_batch/item:%s-%d", run, i)
		if scatter {
			key = fmt.Sprintf("sms_batch/item:%08x-%s-%d", crc32.ChecksumIEEE([]byte(key)), run, i)
		}
		r.Items = append(r.Items, &hooks.ReceiptItem{Key: key, Job: j, InBody: true, At: at[i]})
	}
	return r
}

// BenchmarkDB_CommitBatch1000 commits 1000-customer batches one after
// another: the writer's share of a Bloomreach batch. It reports
// customers/s, for item keys in order and scattered over the key index
// (each of a chunk's keys then lands on a page of its own).
func BenchmarkDB_CommitBatch1000(b *testing.B) {
	for _, keys := range []struct {
		name    string
		scatter bool
	}{{"ordered", false}, {"scattered", true}} {
		b.Run("keys="+keys.name, func(b *testing.B) {
			db := sqlitetest.Open(b)
			b.ReportAllocs()
			var rs []*hooks.Receipt
			for i := range b.N {
				rs = append(rs, benchBatch(fmt.Sprintf("run-%d", i), 1000, keys.scatter))
			}
			b.ResetTimer()
			for i := range b.N {
				if e, err := db.SaveReceipt(context.Background(), rs[i]); err != nil || e != nil {
					b.Fatalf("batch %d: entry %+v, error %v", i, e, err)
				}
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "customers/s")
		})
	}
}
