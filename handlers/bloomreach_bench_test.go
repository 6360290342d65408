package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookbay/hookbay/hooks"
)

// discardGuard commits nothing and answers the receipt's own answer, so
// that a benchmark measures the handler and not a store or a growing list
// of kept receipts.
type discardGuard struct{}

func (discardGuard) Commit(ctx context.Context, r *hooks.Receipt, header string) (hooks.Response, error) {
	return hooks.Response{Status: r.Request.Status, Body: r.Request.Response}, nil
}

func (discardGuard) Run(ctx context.Context, r *hooks.Receipt, header string, fn func(context.Context) (hooks.Response, error)) (hooks.Response, error) {
	return fn(ctx)
}

func (discardGuard) Record(ctx context.Context, req *hooks.Request) error { return nil }

// benchBatchBody is a batch of n customers of about 150 bytes each, as
// scripts/bench-bloomreach.lua sends them: {"messages":[{"id":...}, ...]}.
func benchBatchBody(n int) string {
	const text = "Hi Jana, your order #48213 has shipped and will arrive tomorrow between 9:00 and 13:00."
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":"run-1-1-%d","customer_id":"cus_%08d","phone":"+420601%06d","text":"%s"}`, i, i, i, text[:60])
	}
	return `{"messages":[` + strings.Join(items, ",") + `]}`
}

// BenchmarkBloomreach_Batch1000 sends 1000-customer batches through the
// handler, routing and error handler, with the webhook scripts/bench.sh
// configures: Basic auth, items at /messages, item_id /id and an item
// schema. It reports customers/s.
func BenchmarkBloomreach_Batch1000(b *testing.B) {
	for _, schema := range []bool{true, false} {
		name := "ItemSchema"
		if !schema {
			name = "NoSchema"
		}
		b.Run(name, func(b *testing.B) {
			wh := brHook("sms_batch", brBasic())
			wh.BatchItems, wh.ItemID = "/messages", "/id"
			if schema {
				wh.Item = brSchema(b, `{"type":"object","required":["phone","text"]}`)
			}
			e, h := newBloomreach(&Guard{}, wh)
			h.MaxBodyBytes = 1 << 20
			h.Guard = discardGuard{}
			body := benchBatchBody(hooks.BloomreachMaxBatch)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, brPath+"/sms_batch", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Request-ID", "bench")
				req.SetBasicAuth(brUser, brPass)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), `{"success":true`) {
					b.Fatalf("got %d %.200s, want 200 with every customer accepted", rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.N)*hooks.BloomreachMaxBatch/time.Since(start).Seconds(), "customers/s")
		})
	}
}
