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

// Check is one part of readiness: the store, the certificate. Ping's
// error is logged, and its text is the answer's reason: it must say
// nothing secret.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// RegisterHealth mounts GET /healthz (the process is alive) and GET /readyz
// (every check passes). Both are unauthenticated. /readyz answers 503
// naming the check that failed; a store's error is logged but not shown,
// since it may name hosts.
func RegisterHealth(e *echo.Echo, logger *slog.Logger, checks ...Check) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, []byte(`{"status":"ok"}`))
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		status := map[string]string{}
		for _, ch := range checks {
			if err := ch.Ping(ctx); err != nil {
				logger.Error("readiness check", "check", ch.Name, "err", err)
				if ch.Name == "store" {
					return hooks.Errorf(hooks.EUNAVAILABLE, "the store is not reachable")
				}
				return hooks.Errorf(hooks.EUNAVAILABLE, "%s: %v", ch.Name, err)
			}
			status[ch.Name] = "ok"
		}
		return c.JSON(http.StatusOK, map[string]any{"status": "ok", "checks": status})
	})
}
