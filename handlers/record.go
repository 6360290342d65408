package handlers

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// recordKey is where a route keeps the record of the request it serves, for
// the error handler to complete.
const recordKey = "hookbay.record"

// redacted replaces secret header values in stored records.
const redacted = "[redacted]"

// secretHeaders are redacted in every stored record, whatever the sender.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Auth-Token"}

// startRecord begins the record of a request that reached a hook route and
// attaches it to the context.
func startRecord(c echo.Context, sender hooks.Sender, name string, now time.Time, extraSecrets ...string) *hooks.Request {
	r := c.Request()
	if at, ok := c.Get(arrivalKey).(time.Time); ok {
		now = at // held up by an injected delay: it arrived earlier
	}
	req := &hooks.Request{
		Sender:     sender,
		Name:       name,
		Method:     r.Method,
		Path:       r.URL.Path,
		RemoteAddr: c.RealIP(),
		Header:     RedactHeaders(r.Header, extraSecrets...),
		ReceivedAt: now,
	}
	if note, ok := c.Get(faultNoteKey).(string); ok {
		req.Note(note)
	}
	c.Set(recordKey, req)
	return req
}

// RedactHeaders returns a copy of h with secret values replaced. The scheme
// of an Authorization value is kept ("Bearer [redacted]") because it tells a
// QA reader what the sender tried, without telling anyone the secret.
func RedactHeaders(h http.Header, extra ...string) http.Header {
	out := h.Clone()
	for _, name := range append(secretHeaders, extra...) {
		vals := out.Values(name)
		if len(vals) == 0 {
			continue
		}
		red := make([]string, len(vals))
		for i, v := range vals {
			red[i] = redacted
			if scheme, _, ok := strings.Cut(v, " "); ok && strings.HasSuffix(strings.ToLower(name), "authorization") &&
				len(scheme) < 20 {
				red[i] = scheme + " " + redacted
			}
		}
		out[http.CanonicalHeaderKey(name)] = red
	}
	return out
}

// readBody reads the whole body once, refusing more than limit bytes.
// Signatures are computed over these exact bytes, so nothing re-encodes them.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	// A typical body is read into one allocation sized from Content-Length.
	// Only a small claim is taken on trust; a larger or chunked body is read
	// by io.ReadAll, which grows as bytes arrive and returns a slice of the
	// body's size (the record keeps it for the whole request).
	rd := http.MaxBytesReader(c.Response(), r.Body, limit)
	var body []byte
	var err error
	if r.ContentLength > 0 && r.ContentLength <= presizeLimit {
		var buf bytes.Buffer
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
		_, err = buf.ReadFrom(rd)
		body = buf.Bytes()
	} else {
		body, err = io.ReadAll(rd)
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(limit)
	case err != nil:
		// The write deadline was set when the headers arrived and can run
		// out with the read timeout: give the answer (and its record) a
		// moment of its own, so that the client learns why.
		_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(answerGrace))
		return nil, bodyReadError(err, slices.Contains(r.TransferEncoding, "chunked"))
	}
	return body, nil
}

// answerGrace is how long the answer to a body that did not arrive in full
// may take to record and write.
const answerGrace = 5 * time.Second

// bodyReadError classifies a body that could not be read. A read that
// timed out or a connection that ended or broke is incomplete, which the
// sender may retry; any other failure to read a chunked body is its
// encoding (a bad chunk size, an overlong line, a malformed trailer), which
// is invalid. Messages name the cause, not the error text, which carries
// socket addresses.
func bodyReadError(err error, chunked bool) error {
	var ne net.Error
	cause := "the connection failed while it was read"
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		cause = "it did not arrive within the server's read timeout (server.timeouts.read)"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		cause = "the connection ended before all of it arrived"
	case chunked && !errors.As(err, &ne):
		return hooks.Errorf(hooks.EINVALID, "the request body could not be read: its chunked transfer encoding is malformed")
	}
	return hooks.Errorf(hooks.EINCOMPLETE, "the request body did not arrive in full: %s", cause)
}

// presizeLimit is the largest Content-Length a body buffer is sized from.
const presizeLimit = 64 << 10

func tooLarge(limit int64) error {
	return hooks.Errorf(hooks.ETOOLARGE, "request body is larger than the %d-byte limit", limit)
}

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

// randRead fills b from crypto/rand.
var randRead = rand.Read
