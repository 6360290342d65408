package handlers

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// A refused body is kept to its first bytes, cut where a character starts:
// the cut must not itself make the record's body invalid UTF-8.
func TestErrorHandler_RefusedBodyCut(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		kept int
	}{
		{"ASCII", strings.Repeat("x", refusedBodyKept+10), refusedBodyKept},
		{"CutInsideTwoBytes", "x" + strings.Repeat("é", refusedBodyKept), refusedBodyKept - 1},
		{"CutInsideFourBytes", "xy" + strings.Repeat("😀", refusedBodyKept), refusedBodyKept - 2},
		{"Short", "é", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := echo.New()
			var recorded *hooks.Request
			e.HTTPErrorHandler = ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), func(c echo.Context, req *hooks.Request) error {
				recorded = req
				return nil
			})
			e.POST("/svix/:endpoint", func(c echo.Context) error {
				rec := startRecord(c, hooks.SenderSvix, c.Param("endpoint"), time.Now())
				rec.Body = []byte(tt.body)
				return hooks.Errorf(hooks.EUNAUTHORIZED, "refused")
			})
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/svix/bloom", nil))
			if rec.Code != 401 || recorded == nil || len(recorded.Body) != tt.kept || !utf8.Valid(recorded.Body) {
				t.Fatalf("status %d, kept %d bytes (valid UTF-8: %v), want 401 and %d bytes", rec.Code, len(recorded.Body), utf8.Valid(recorded.Body), tt.kept)
			}
		})
	}
}
