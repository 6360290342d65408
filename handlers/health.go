package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Pinger reports whether the store answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// RegisterHealth mounts GET /healthz (the process is alive) and GET /readyz
// (the store answers). Both are unauthenticated and say nothing secret.
func RegisterHealth(e *echo.Echo, store Pinger) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ok"}`))
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			c.Logger().Error(err)
			return c.JSONBlob(http.StatusServiceUnavailable, []byte(`{"status":"unavailable","store":"not reachable"}`))
		}
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ok","store":"ok"}`))
	})
}
