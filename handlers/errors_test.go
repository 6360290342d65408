package handlers

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// An unsettled answer (SendEvent1's outcome failure) reads as success, so
// it goes out only once recorded: when the record cannot be written, the
// sender gets 503, which Bubblehouse retries, instead of the 200.
func TestErrorHandler_UnsettledNeedsRecord(t *testing.T) {
	for _, tt := range []struct {
		name      string
		recordErr error
		want      int
	}{
		{"Recorded", nil, http.StatusOK},
		{"RecordFailed", errors.New("disk full"), http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			var recorded *hooks.Request
			e.HTTPErrorHandler = ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), func(c echo.Context, req *hooks.Request) error {
				recorded = req
				return tt.recordErr
			})
			e.POST("/bubblehouse/:name", func(c echo.Context) error {
				startRecord(c, hooks.SenderBubblehouse, c.Param("name"), time.Now())
				return &hooks.UnsettledError{Response: hooks.Response{Status: http.StatusOK, Body: []byte(`{"outcome":"failure"}`)}, Reason: "test"}
			})
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/bubblehouse/SendEvent1", nil))
			if rec.Code != tt.want || recorded == nil {
				t.Fatalf("status=%d %s (recorded %v), want %d", rec.Code, rec.Body.Bytes(), recorded != nil, tt.want)
			}
		})
	}
}
