// Package handlers is hookbay's HTTP layer: one file per sender, each
// reading the request once under a size limit, checking it against that
// sender's contract and handing it to the idempotency guard.
package handlers

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// statusOf is the only table from error class to HTTP status.
var statusOf = map[string]int{
	hooks.EINVALID:      http.StatusBadRequest,
	hooks.EINCOMPLETE:   http.StatusRequestTimeout,
	hooks.EUNAUTHORIZED: http.StatusUnauthorized,
	hooks.ENOTFOUND:     http.StatusNotFound,
	hooks.EMETHOD:       http.StatusMethodNotAllowed,
	hooks.ECONFLICT:     http.StatusConflict,
	hooks.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	hooks.EUNAVAILABLE:  http.StatusServiceUnavailable,
	hooks.ETHROTTLED:    http.StatusTooManyRequests,
	hooks.EINTERNAL:     http.StatusInternalServerError,
}

// senderStatus overrides statusOf where a sender reads a status
// differently. Bloomreach records any 4xx but 429 as a failed campaign
// event and retries only 429 and 5xx, so a request that must be retried
// (its twin is still being processed) gets 429 there, and one whose body
// never arrived in full gets 503, as the dropped connection it was.
var senderStatus = map[hooks.Sender]map[string]int{
	hooks.SenderBloomreach: {
		hooks.ECONFLICT:   http.StatusTooManyRequests,
		hooks.EINCOMPLETE: http.StatusServiceUnavailable,
	},
}

// statusFor is the status of an error class as sender reads statuses.
func statusFor(sender hooks.Sender, code string) int {
	if status, ok := senderStatus[sender][code]; ok {
		return status
	}
	if status, ok := statusOf[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Code string `json:"code"`
	// Reason refines the code where a sender's contract has named reasons
	// (a Svix refusal: stale_timestamp, signature_mismatch, ...).
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error"`
	Hint   string `json:"hint,omitempty"`
}

// ErrorResponseFor renders err as the status and JSON body sent to a
// client, as the given sender reads statuses. Echo's own errors (no route,
// wrong method) are translated to our classes; anything unclassified is an
// internal error whose details stay in the log.
func ErrorResponseFor(sender hooks.Sender, err error) hooks.Response {
	if resp, ok := answerOf(err); ok {
		return resp
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := hooks.EINTERNAL
		switch he.Code {
		case http.StatusNotFound:
			code = hooks.ENOTFOUND
		case http.StatusMethodNotAllowed:
			code = hooks.EMETHOD
		case http.StatusRequestEntityTooLarge:
			code = hooks.ETOOLARGE
		case http.StatusBadRequest:
			code = hooks.EINVALID
		case http.StatusUnauthorized:
			code = hooks.EUNAUTHORIZED
		}
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && code != hooks.EINTERNAL {
			msg = s
		}
		err = &hooks.Error{Code: code, Message: msg}
	}
	code := hooks.ErrorCode(err)
	status := statusFor(sender, code)
	eb := ErrorBody{Code: code, Error: hooks.ErrorMessage(err), Hint: hooks.ErrorHint(err)}
	var r interface{ ReasonCode() string }
	if errors.As(err, &r) {
		eb.Reason = r.ReasonCode()
	}
	body, _ := json.Marshal(eb)
	return hooks.Response{Status: status, Body: body}
}

// ErrorHandler returns Echo's HTTPErrorHandler: it answers every error with
// a JSON body in the status the request's sender reads, and has the answer
// recorded (recordAnswer) when the route had started a record, so that
// refused requests are as visible as accepted ones.
func ErrorHandler(logger *slog.Logger, record func(c echo.Context, req *hooks.Request) error) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if _, answer := answerOf(err); hooks.ErrorCode(err) == hooks.EINTERNAL && !isEchoError(err) && !answer {
			logger.Error("internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		}
		req, _ := c.Get(recordKey).(*hooks.Request)
		var sender hooks.Sender
		if req != nil {
			sender = req.Sender
		}
		resp := ErrorResponseFor(sender, err)
		if resp.Status == http.StatusTooManyRequests && c.Response().Header().Get("Retry-After") == "" {
			c.Response().Header().Set("Retry-After", "1")
		}
		if req != nil && record != nil {
			resp = recordAnswer(c, req, resp, record, logger)
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(resp.Status)
		} else {
			err = c.JSONBlob(resp.Status, resp.Body)
		}
		if err != nil {
			logger.Error("write error answer", "err", err)
		}
	}
}

// answerOf returns the answer an error carries to be sent as it is: an
// injected fault's, or an unsettled answer's.
func answerOf(err error) (hooks.Response, bool) {
	if resp, ok := injectedResponse(err); ok {
		return resp, true
	}
	var un *hooks.UnsettledError
	if errors.As(err, &un) {
		return un.Response, true
	}
	return hooks.Response{}, false
}

func isEchoError(err error) bool {
	var he *echo.HTTPError
	return errors.As(err, &he)
}
