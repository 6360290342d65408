package admin

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// The web UI: two html/template pages and static files, embedded, so that
// the binary (and "go run . serve") serves it with no build step and
// nothing fetched from elsewhere.
//
//go:embed ui
var uiFiles embed.FS

var (
	pages     = template.Must(template.ParseFS(uiFiles, "ui/*.html"))
	staticFS  = mustSub(uiFiles, "ui/static")
	staticSrv = http.StripPrefix("/static/", http.FileServerFS(staticFS))
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// contentSecurity allows the pages only their own scripts, styles and
// API: nothing inline, nothing from elsewhere, no framing.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) render(c echo.Context, status int, name string, data any) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("Cache-Control", "no-store")
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return pages.ExecuteTemplate(c.Response(), name, data)
}

// page serves the inspector's shell; app.js draws the page the path names.
func (s *Server) page(c echo.Context) error {
	return s.render(c, http.StatusOK, "index.html", map[string]any{"Version": s.opts.Version, "Token": s.opts.Token != ""})
}

func (s *Server) static(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	staticSrv.ServeHTTP(c.Response(), c.Request())
	return nil
}

func (s *Server) loginPage(c echo.Context) error {
	if s.opts.Token == "" {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return s.render(c, http.StatusOK, "login.html", map[string]any{"Next": safeNext(c.QueryParam("next"))})
}

// login turns the token into a session cookie (HttpOnly, SameSite=Strict,
// Secure over TLS). A wrong token is answered after a pause, with the
// form again.
func (s *Server) login(c echo.Context) error {
	if s.opts.Token == "" {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	next := safeNext(c.FormValue("next"))
	if !s.tokenMatches(c.FormValue("token")) {
		time.Sleep(250 * time.Millisecond)
		return s.render(c, http.StatusUnauthorized, "login.html", map[string]any{"Next": next, "Error": "That is not the admin token."})
	}
	exp := s.opts.Now().Add(sessionTTL)
	s.setSession(c, s.newSession(exp), exp)
	return c.Redirect(http.StatusSeeOther, next)
}

func (s *Server) logout(c echo.Context) error {
	s.setSession(c, "", time.Time{})
	return c.Redirect(http.StatusSeeOther, "/login")
}
