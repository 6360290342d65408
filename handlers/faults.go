package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// faultNoteKey carries an injected delay's note to the request's record,
// and arrivalKey the time the request arrived, before the delay.
const (
	faultNoteKey = "hookbay.fault"
	arrivalKey   = "hookbay.arrival"
)

// InjectedError answers a request with a fault's status instead of
// processing it.
type InjectedError struct {
	Status int
	Fault  string
}

// Error implements the error interface.
func (e *InjectedError) Error() string { return "injected " + e.Fault }

// FaultStore holds the faults that "hookbay faults" manages.
type FaultStore interface {
	Faults(ctx context.Context, now time.Time) ([]*hooks.Fault, error)
	UseFault(ctx context.Context, id int64) (bool, error)
}

// Faults injects faults into hook routes, so that QA can watch how a
// sender retries. Changes made with "hookbay faults" are picked up by Poll.
type Faults struct {
	Store FaultStore
	// Prefixes maps each sender's path prefix to the sender.
	Prefixes     map[string]hooks.Sender
	MaxBodyBytes int64
	// Record writes the record of a dropped request.
	Record func(c echo.Context, req *hooks.Request) error
	// Webhook returns a Bloomreach webhook's secret header names and the
	// header its request ID is in (nil for other senders), so that
	// injected records are redacted and grouped like accepted ones.
	Webhook func(s hooks.Sender, name string) (secrets []string, idHeader string)
	Logger  *slog.Logger

	mu  sync.Mutex
	cur []*hooks.Fault
}

// Poll reloads the faults every interval until ctx ends.
func (f *Faults) Poll(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		list, err := f.Store.Faults(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			f.Logger.Error("load faults", "err", err)
		} else if err == nil {
			f.mu.Lock()
			// A use counted here after the store was read must not be
			// undone by the older count just read.
			seen := map[int64]int{}
			for _, ft := range f.cur {
				seen[ft.ID] = ft.Remaining
			}
			for _, ft := range list {
				if r, ok := seen[ft.ID]; ok && r >= 0 && r < ft.Remaining {
					ft.Remaining = r
				}
			}
			f.cur = list
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Loaded reports whether the fault with this ID is among those last
// loaded from the store: in effect for the next request it matches.
func (f *Faults) Loaded(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.cur {
		if ft.ID == id {
			return true
		}
	}
	return false
}

// classify names the sender and the names a fault may match for a path.
func (f *Faults) classify(path string) (hooks.Sender, string) {
	for prefix, s := range f.Prefixes {
		if rest, ok := strings.CutPrefix(path, prefix+"/"); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			return s, name
		}
	}
	return "", ""
}

// pick returns the first fault that applies. A fault with a count is
// used up in the store first (one row, guarded by remaining > 0), outside
// the lock, so that --count N injects at most N times.
func (f *Faults) pick(s hooks.Sender, names []string) *hooks.Fault {
	f.mu.Lock()
	var found *hooks.Fault
	now := time.Now()
	for _, ft := range f.cur {
		if ft.Matches(s, names, now) {
			c := *ft
			found = &c
			if ft.Remaining > 0 {
				ft.Remaining--
			}
			break
		}
	}
	f.mu.Unlock()
	if found == nil || found.Remaining < 0 {
		return found
	}
	ok, err := f.Store.UseFault(context.Background(), found.ID)
	if err != nil {
		f.Logger.Error("count fault use", "err", err)
		return nil
	}
	if !ok {
		return nil // used up meanwhile
	}
	return found
}

// Middleware applies faults before the route runs.
func (f *Faults) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			f.mu.Lock()
			active := len(f.cur) > 0
			f.mu.Unlock()
			if !active {
				return next(c)
			}
			arrival := time.Now()
			sender, name := f.classify(c.Request().URL.Path)
			if sender == "" {
				return next(c)
			}
			names := []string{name}
			if sender == hooks.SenderSvix {
				// Svix faults may name an event type: peek at the body.
				r := c.Request()
				buf, err := io.ReadAll(io.LimitReader(r.Body, f.MaxBodyBytes+1))
				if err != nil {
					return next(c)
				}
				r.Body = io.NopCloser(bytes.NewReader(buf))
				if t := hooks.SvixEventType(buf); t != "" {
					names = append(names, t)
				}
			}
			ft := f.pick(sender, names)
			if ft == nil {
				return next(c)
			}
			c.Set(arrivalKey, arrival)
			var secrets []string
			idHeader := "X-Request-ID"
			if f.Webhook != nil {
				if sec, h := f.Webhook(sender, name); h != "" {
					secrets, idHeader = sec, h
				}
			}
			record := func() *hooks.Request {
				rec := startRecord(c, sender, name, arrival, secrets...)
				rec.RequestID = requestIDOf(c.Request(), sender, idHeader)
				if sender == hooks.SenderBubblehouse {
					rec.Urgency, _ = hooks.ParseUrgency(c.Request().Header.Get(HeaderUrgency))
				} else {
					rec.Urgency = hooks.UrgencyRegular
				}
				rec.Note("fault injected: " + ft.String())
				return rec
			}
			switch ft.Kind {
			case hooks.FaultDelay:
				c.Set(faultNoteKey, "fault injected: "+ft.String())
				select {
				case <-time.After(ft.Delay):
				case <-c.Request().Context().Done():
				}
				return next(c)
			case hooks.FaultStatus:
				record()
				return &InjectedError{Status: ft.Status, Fault: ft.String()}
			}
			// Drop: record it, then close the connection without an answer.
			rec := record()
			rec.Note("no answer was sent")
			if err := f.Record(c, rec); err != nil {
				f.Logger.Error("record dropped request", "err", err)
			}
			if conn, _, err := http.NewResponseController(c.Response().Writer).Hijack(); err == nil {
				conn.Close()
				return nil
			}
			panic(http.ErrAbortHandler) // HTTP/2: reset the stream
		}
	}
}

// requestIDOf reads the request ID a sender sends, for injected records.
func requestIDOf(r *http.Request, s hooks.Sender, header string) string {
	if s == hooks.SenderSvix {
		if sh, ok := hooks.ParseSvixHeaders(r.Header); ok {
			return sh.ID
		}
	}
	return r.Header.Get(header)
}

// injectedResponse renders an injected fault's answer.
func injectedResponse(err error) (hooks.Response, bool) {
	var inj *InjectedError
	if !errors.As(err, &inj) {
		return hooks.Response{}, false
	}
	body := []byte(`{"code":"injected","error":"fault injected by hookbay faults: ` + inj.Fault + `"}`)
	return hooks.Response{Status: inj.Status, Body: body}, true
}
