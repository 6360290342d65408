// Package admin is the admin listener's surface: the inspector (a web UI
// served from the binary), its JSON API under /api/v1/, a live stream of
// new requests and job changes, and a place for others to mount handlers
// (/metrics) behind the same token.
//
// It reads and changes the store through the small Store interface it
// declares, replays through the function it is given (the one attempt
// executor), and never shows a secret: stored headers are redacted before
// they are stored, and no configured secret reaches it.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/hookbay/hookbay/hooks"
)

// Store is what the inspector reads and changes.
type Store interface {
	FindRequests(ctx context.Context, f hooks.RequestFilter) ([]*hooks.Request, error)
	FindJobs(ctx context.Context, f hooks.JobFilter) ([]*hooks.Job, error)
	FindAttempts(ctx context.Context, jobID int64) ([]*hooks.Attempt, error)
	RetryJobs(ctx context.Context, ids []int64, now time.Time) (int64, error)
	RetryDead(ctx context.Context, since, now time.Time) (int64, error)
	Faults(ctx context.Context, now time.Time) ([]*hooks.Fault, error)
	AddFault(ctx context.Context, f *hooks.Fault) error
	DeleteFault(ctx context.Context, id int64) (bool, error)
	ClearFaults(ctx context.Context, sender hooks.Sender) (int64, error)
}

// searchWindowed is a store whose text search looks at a bounded number of
// records below the page's start (store/sqlite): the API then says where
// the search stopped, and how to go on.
type searchWindowed interface {
	SearchWindow() int64
}

// Options configure a Server.
type Options struct {
	Store Store
	// Hub feeds the live stream; nil makes one (see Server.Hub).
	Hub *Hub
	// Token, when set, is required: as "Authorization: Bearer <token>", or
	// through the session cookie the login page sets. Without one, only
	// requests naming a loopback host are served (the listener is on
	// loopback; the host check stops DNS rebinding).
	Token string
	// Replay runs a recorded request's action again now, through the
	// attempt executor the queue's workers use; nil disables replay.
	Replay func(ctx context.Context, id int64, force bool) ([]hooks.ReplayedJob, error)
	// Report analyses the requests of a sender (all when "") received since
	// a time, as "hookbay report" does; nil disables the report.
	Report func(ctx context.Context, sender hooks.Sender, since time.Time) (any, error)
	// Notify wakes the queue after jobs are queued again, as jobs of
	// unknown priority: any of them may be more pressing than the jobs
	// the queue has claimed ahead (hooks.Queue.Queued).
	Notify func()
	// JobsAnnounced says that the store announces job changes to every
	// replica (store/postgres), and that those announcements feed the
	// stream (PublishStoredJob): the server then puts none of its own
	// retries on it, which would show twice.
	JobsAnnounced bool
	// Senders are the senders served, for the UI's filters.
	Senders []hooks.Sender
	// BaseURL says where senders reach hookbay (scheme://host:port), for
	// the URLs of "copy as curl" and exports; nil means https://localhost.
	BaseURL func() string
	Logger  *slog.Logger
	Now     func() time.Time
	Version string
}

// Server is the admin listener's handler.
type Server struct {
	opts Options
	hub  *Hub
	e    *echo.Echo
	key  []byte // signs session cookies; derived from the token
}

// New returns the admin handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BaseURL == nil {
		o.BaseURL = func() string { return "" }
	}
	if o.Hub == nil {
		o.Hub = NewHub()
	}
	s := &Server{opts: o, hub: o.Hub}
	if o.Token != "" {
		s.key = sessionKey(o.Token)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(middleware.Recover())
	e.Use(s.secure)
	s.routes(e)
	s.e = e
	return s
}

// Hub is the live stream's hub: publish to it, close it at shutdown.
func (s *Server) Hub() *Hub { return s.hub }

// Handle mounts h at path (exactly, or a subtree when path ends in /),
// behind the same token and cross-site checks as the API: /metrics lives
// here. Mount before serving.
func (s *Server) Handle(path string, h http.Handler) {
	if len(path) > 1 && path[len(path)-1] == '/' {
		s.e.Any(path+"*", echo.WrapHandler(h))
	}
	s.e.Any(path, echo.WrapHandler(h))
}

// ServeHTTP serves the inspector, the API and what others mounted.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

// apiError is an error answer of the API: a status and what is wrong.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, format string, args ...any) error {
	return &apiError{Status: status, Message: fmt.Sprintf(format, args...)}
}

// statusOf maps the domain's error classes to the API's statuses.
var statusOf = map[string]int{
	hooks.EINVALID:     http.StatusBadRequest,
	hooks.ENOTFOUND:    http.StatusNotFound,
	hooks.ECONFLICT:    http.StatusConflict,
	hooks.EUNAVAILABLE: http.StatusServiceUnavailable,
}

// errorHandler answers every error with JSON saying what is wrong: the
// API's own errors and the domain's classified ones as they are, Echo's
// (no route, wrong method) by their status, anything else as an internal
// error, logged in full.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg, code := http.StatusInternalServerError, "internal error", "internal"
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, msg, code = ae.Status, ae.Message, codeOf(ae.Status)
	case errors.As(err, &he):
		status, msg, code = he.Code, http.StatusText(he.Code), codeOf(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
	case hooks.ErrorCode(err) != hooks.EINTERNAL:
		code = hooks.ErrorCode(err)
		if st, ok := statusOf[code]; ok {
			status = st
		}
		msg = hooks.ErrorMessage(err)
	default:
		s.opts.Logger.Error("admin: internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, map[string]string{"error": msg, "code": code})
}

func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return hooks.EINVALID
	case http.StatusUnauthorized:
		return hooks.EUNAUTHORIZED
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return hooks.ENOTFOUND
	case http.StatusMethodNotAllowed:
		return hooks.EMETHOD
	case http.StatusConflict:
		return hooks.ECONFLICT
	case http.StatusServiceUnavailable:
		return hooks.EUNAVAILABLE
	}
	return "internal"
}
