package handlers

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// AccessLog logs each request's method, path, status and latency: refused
// ones at info, accepted ones at debug so that a busy receiver's log stays
// readable. Headers and bodies are never logged: they carry secrets.
func AccessLog(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			level := slog.LevelDebug
			if status >= 400 {
				level = slog.LevelInfo
			}
			if logger.Enabled(c.Request().Context(), level) {
				logger.Log(c.Request().Context(), level, "request",
					"method", c.Request().Method, "path", c.Request().URL.Path, "status", status,
					"latency", time.Since(start), "request_id", c.Request().Header.Get(HeaderRequestID),
					"remote", c.RealIP())
			}
			return nil
		}
	}
}
