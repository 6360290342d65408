package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// postOnly mounts handler for POST on path; every other method is
// answered 405 and recorded, as any request that reached a hook route is.
func postOnly(e *echo.Echo, path string, sender hooks.Sender, param string, handler echo.HandlerFunc, now func() time.Time) {
	e.POST(path, handler)
	refuse := methodNotAllowed(http.MethodPost)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		e.Add(m, path, func(c echo.Context) error {
			startRecord(c, sender, c.Param(param), clock(now))
			return refuse(c)
		})
	}
}

// clock reads an injectable clock, the real one when nil.
func clock(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// methodNotAllowed answers methods a hook route does not serve.
func methodNotAllowed(allow string) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Allow", allow)
		return hooks.Errorf(hooks.EMETHOD, "method %s is not allowed; use %s", c.Request().Method, allow)
	}
}
