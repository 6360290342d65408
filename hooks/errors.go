package hooks

import (
	"errors"
	"fmt"
)

// Error codes classify application errors. Each sender's HTTP layer maps
// them to the status code that sender's contract prescribes, in one place.
const (
	ECONFLICT     = "conflict"     // a request with the same ID is still being processed
	EINTERNAL     = "internal"     // a fault of ours; details are logged, never sent
	EINCOMPLETE   = "incomplete"   // the body did not arrive in full: read timed out or cut off
	EINVALID      = "invalid"      // the request is malformed or fails validation
	ENOTFOUND     = "not_found"    // unknown hook, webhook or endpoint
	ETOOLARGE     = "too_large"    // the body is over the configured limit
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	EUNAVAILABLE  = "unavailable"  // try again later: shutting down, inline work failed or timed out
	EMETHOD       = "method"       // the HTTP method is not served on this route
	ETHROTTLED    = "throttled"    // over a throughput policy: retry later
)

// Error is an application error: a machine-readable code and a message that
// is safe to show to the sender.
type Error struct {
	Code    string
	Message string
	// Hint is an optional suggestion for the sender's operator, for example
	// how a common misconfiguration looks.
	Hint string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("hookbay error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the application error in err's chain, or
// EINTERNAL for any other non-nil error, or "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the application error in err's chain.
// Other errors give "internal error" so that internals never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorHint returns the hint of the application error in err's chain, if any.
func ErrorHint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}

// UnsettledError is an answer sent as it is without settling the request:
// the sender reads it as a temporary failure and retries, so the request
// ID keeps no answer and the retry runs again. SendEvent1's outcome failure
// is one: a 200 that Bubblehouse retries while holding its queue.
type UnsettledError struct {
	Response Response
	Reason   string
}

// Error implements the error interface.
func (e *UnsettledError) Error() string { return "answer not settled: " + e.Reason }
