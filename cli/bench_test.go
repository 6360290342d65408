package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
)

// benchDiscount is a ~600-byte CreateDiscount4 input, as scripts/bench.lua
// sends.
var benchDiscount = []byte(`{"code":"BENCH-SPRING-10OFF","title":"Spring sale: 10 off your next order","amount":"10.00",` +
	`"currency":"USD","kind":"fixed_amount","customer_email":"jane.doe+bench@example.com","customer_id":"cus_8f3a2b1c9d",` +
	`"min_order_amount":"50.00","expires_at":"2030-06-30T23:59:59Z","usage_limit":1,"notes":"` +
	strings.Repeat("n", 300) + `"}`)

// BenchmarkBubblehouseUrgent drives urgent CreateDiscount4 hooks through the
// whole Echo app (middleware, handler, idempotency guard, SQLite group
// commit with fsync) from 200 concurrent goroutines, as scripts/bench.sh
// does over loopback but without the network and the load generator: its
// ns/op and allocs/op are hookbay's own cost per accepted request.
func BenchmarkBubblehouseUrgent(b *testing.B) {
	m := MustRunMain(b, nil)
	benchHooks(b, m.Echo, http.StatusAccepted)
}

// BenchmarkBareEcho is BenchmarkBubblehouseUrgent's baseline, measured the
// same way in the same run: a bare Echo whose handler only reads the body
// and answers 200 {"ok":true}, as tools/bareecho does for scripts/bench.sh.
func BenchmarkBareEcho(b *testing.B) {
	e := echo.New()
	e.POST("/bubblehouse/:name", func(c echo.Context) error {
		if _, err := io.ReadAll(c.Request().Body); err != nil {
			return err
		}
		return c.JSONBlob(http.StatusOK, []byte(`{"ok":true}`))
	})
	benchHooks(b, e, http.StatusOK)
}

// benchHooks sends urgent CreateDiscount4 hooks with unique request IDs to h
// from 200 goroutines and checks every answer's status.
func benchHooks(b *testing.B, h http.Handler, want int) {
	var n atomic.Int64
	b.SetBytes(int64(len(benchDiscount)))
	b.SetParallelism(100) // 200 concurrent requests on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/bubblehouse/CreateDiscount4", bytes.NewReader(benchDiscount))
			req.Header.Set("Authorization", testAuth)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-BH-Urgency", "urgent")
			req.Header.Set("X-Request-ID", "bench-"+strconv.FormatInt(n.Add(1), 10))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != want {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
