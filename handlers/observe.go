package handlers

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// Exchange is one request as it was served: its record, and what the log
// and the metrics need that the record does not say.
type Exchange struct {
	// Record is the request's record; nil for a route that keeps none
	// (health checks, unknown paths).
	Record *hooks.Request
	// Method and Path are the request's; logged only for a request
	// without a record.
	Method, Path string
	RemoteAddr   string
	// Status is the status sent; 0 when the connection was closed without
	// an answer (an injected drop).
	Status int
	// Duration is from the request's arrival to its answer.
	Duration time.Duration
	// BodyBytes is how much of the body was read.
	BodyBytes int64
	// Verdict is what the answer means to the request's sender; zero
	// without a record or an answer.
	Verdict hooks.Verdict
	// Refusal is why a request answered 4xx or 5xx was refused: the
	// error answer's reason (a Svix signature refusal's, such as
	// signature_mismatch) or class (unauthorized, not_found, ...), or
	// "injected" for a fault's answer. "" when it was not refused.
	Refusal string
	// Error is the refusal's message as the client was told it, cut to
	// maxLoggedError bytes.
	Error string
	// Throttled says a webhook's throughput policy refused the request.
	Throttled bool
}

// maxLoggedError bounds the refusal message kept for the log.
const maxLoggedError = 300

// Observe returns the middleware that tells start of each request as it
// arrives and done of it once it is answered, error answers included (the
// error handler has run by then). It is the first of the hook routes'
// middleware that sees the body, and counts the bytes read from it.
func Observe(start func(), done func(*Exchange)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			begin := time.Now()
			if start != nil {
				start()
			}
			r := c.Request()
			body := &countingBody{ReadCloser: r.Body}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = body
			}
			// Deferred: a request whose connection is aborted by a panic
			// (http.ErrAbortHandler, an injected drop on HTTP/2) is told
			// too, as one without an answer.
			defer func() {
				x := &Exchange{Record: RecordOf(c), Method: r.Method, Path: r.URL.Path, RemoteAddr: c.RealIP(),
					Duration: time.Since(begin), BodyBytes: body.n}
				if resp := c.Response(); resp.Committed {
					x.Status = resp.Status
				}
				x.judge()
				done(x)
			}()
			if err := next(c); err != nil {
				c.Error(err)
			}
			return nil
		}
	}
}

// judge fills in what the answer means to the sender, and why it was
// refused.
func (x *Exchange) judge() {
	rec := x.Record
	if rec == nil || x.Status == 0 {
		return
	}
	body := rec.Response
	if rec.Status != x.Status {
		body = nil // the answer recorded is not the one sent (it could not be recorded)
	}
	x.Verdict = hooks.Judge(rec.Sender, rec.Name, x.Status, body)
	if x.Status < 400 {
		return
	}
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil {
		x.Refusal, x.Error = eb.Reason, eb.Error
		if x.Refusal == "" {
			x.Refusal = eb.Code
		}
	}
	if x.Refusal == "" {
		x.Refusal = hooks.EINTERNAL
	}
	if len(x.Error) > maxLoggedError {
		x.Error = asText(x.Error[:maxLoggedError]) + "…"
	}
	x.Throttled = rec.Sender == hooks.SenderBloomreach && (x.Status == http.StatusTooManyRequests || x.Status == http.StatusServiceUnavailable) &&
		slices.Contains(rec.Notes, throttledNote)
}

// throttledNote is the note of a request that a throughput policy refused.
const throttledNote = "throttled"

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
