package handlers

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

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

// presizeLimit is the largest Content-Length a body buffer is sized from:
// enough for a 1000-customer Bloomreach batch (160-175 KB), which would
// otherwise be grown and copied about twice its size over; small enough
// that a client announcing a length it never sends ties up little.
const presizeLimit = 256 << 10

func tooLarge(limit int64) error {
	return hooks.Errorf(hooks.ETOOLARGE, "request body is larger than the %d-byte limit", limit)
}
