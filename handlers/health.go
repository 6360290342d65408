package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// Pinger reports whether the store answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// RegisterHealth mounts GET /healthz (the process is alive) and GET /readyz
// (the store answers). Both are unauthenticated and say nothing secret: a
// store that does not answer is logged, and /readyz answers 503 without
// the details.
func RegisterHealth(e *echo.Echo, store Pinger, logger *slog.Logger) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ok"}`))
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			logger.Error("readiness check", "err", err)
			return hooks.Errorf(hooks.EUNAVAILABLE, "the store is not reachable")
		}
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ok","store":"ok"}`))
	})
}
