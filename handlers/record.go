package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

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

// refusedBodyKept is how much of a refused request's body is recorded.
const refusedBodyKept = 4096

// recordAnswer completes the record of a request that the error handler
// answers with resp and writes it through record. It returns the answer to
// send: an answer that reads as success (an unsettled one) goes out only
// once it is recorded, and becomes a 503 when it could not be.
func recordAnswer(c echo.Context, req *hooks.Request, resp hooks.Response, record func(echo.Context, *hooks.Request) error, logger *slog.Logger) hooks.Response {
	req.Status, req.Response = resp.Status, resp.Body
	if resp.Status >= 400 {
		refusedAsText(req)
	}
	if len(req.Body) > refusedBodyKept && resp.Status >= 400 {
		// A refused request keeps its first bytes only: an
		// unauthenticated flood must not fill the disk.
		kept := refusedPrefix(req.Body)
		req.Note(fmt.Sprintf("body cut to its first %d of %d bytes (refused)", len(kept), len(req.Body)))
		req.Body = kept
	}
	if err := record(c, req); err != nil {
		logger.Error("record refused request", "err", err)
		if resp.Status < 300 {
			return ErrorResponseFor(req.Sender, hooks.Errorf(hooks.EUNAVAILABLE, "the answer could not be recorded; retry later"))
		}
	}
	return resp
}

// refusedPrefix is what is kept of a refused body: its first
// refusedBodyKept bytes, cut where a character starts, so that the cut
// does not itself leave bytes that are not UTF-8.
func refusedPrefix(body []byte) []byte {
	if len(body) <= refusedBodyKept {
		return body
	}
	cut := refusedBodyKept
	for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(body[cut]); i++ {
		cut--
	}
	return body[:cut]
}

// keepUnverified keeps the body of a request refused before its sender
// was authenticated only when what is recorded of it is text: anyone who
// knows the URL could otherwise plant bytes that are not UTF-8 in the
// records, which every reader of them would meet. An authenticated
// sender's body is kept as sent, whatever it holds.
func keepUnverified(rec *hooks.Request, body []byte) {
	if utf8.Valid(refusedPrefix(body)) {
		rec.Body = body
		return
	}
	rec.Note(fmt.Sprintf("body not kept: %d bytes that are not UTF-8 text, from a request that was not authenticated", len(body)))
}

// refusedAsText makes the record of a refused request text: its URL name
// and path, request ID, header values and notes may carry any bytes from
// a client nobody authenticated, and every reader of the records would
// meet them. Bytes that are not UTF-8 become U+FFFD; the body is kept or
// not by keepUnverified.
func refusedAsText(req *hooks.Request) {
	req.Name, req.Path, req.RequestID = asText(req.Name), asText(req.Path), asText(req.RequestID)
	for i, n := range req.Notes {
		req.Notes[i] = asText(n)
	}
	for k, vs := range req.Header {
		for i, v := range vs {
			vs[i] = asText(v)
		}
		req.Header[k] = vs
	}
}

// asText is s with bytes that are not UTF-8 replaced by U+FFFD.
func asText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// RecordOf returns the record of the request c served, once the handler
// and the error handler are done with it; nil for a route that keeps none
// (health checks, unknown paths).
func RecordOf(c echo.Context) *hooks.Request {
	req, _ := c.Get(recordKey).(*hooks.Request)
	return req
}
