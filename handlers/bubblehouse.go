package handlers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// Bubblehouse header names (Bubblehouse "Hooks API", "Hook requests").
const (
	HeaderRequestID = "X-Request-ID"
	HeaderUrgency   = "X-BH-Urgency"
)

// Guard is the idempotency guard as the handlers use it.
type Guard interface {
	// Commit writes an accepted request whose answer is known, or replays
	// the first answer to a repeat.
	Commit(ctx context.Context, r *hooks.Receipt, header string) (hooks.Response, error)
	// Run executes a request inline under its idempotency keys.
	Run(ctx context.Context, r *hooks.Receipt, header string, fn func(context.Context) (hooks.Response, error)) (hooks.Response, error)
	// Record writes the record of a request answered without a receipt.
	Record(ctx context.Context, req *hooks.Request) error
}

// InlineFunc runs a hook's action while the sender waits and returns its
// output: a JSON object. An error asks the sender to retry.
type InlineFunc func(ctx context.Context, j *hooks.Job) ([]byte, error)

// Bubblehouse serves the Bubblehouse Hooks API: one POST route whose last
// segment is the hook name.
type Bubblehouse struct {
	Hooks        *hooks.BubblehouseHooks
	Auth         *hooks.BubblehouseAuth
	Guard        Guard
	MaxBodyBytes int64
	// Inline runs a hook's action inline; nil answers with the hook's
	// default output (the request record is the delivery).
	Inline InlineFunc
	// HasAction reports whether a hook has an action for the workers; nil
	// or false means the store action, whose job is done once committed.
	HasAction func(hook string) bool
	Now       func() time.Time
}

// Register mounts the hook route under prefix (bubblehouse.path).
func (h *Bubblehouse) Register(e *echo.Echo, prefix string) {
	postOnly(e, prefix+"/:name", hooks.SenderBubblehouse, "name", h.handleHook, h.Now)
}

func (h *Bubblehouse) now() time.Time { return clock(h.Now) }

// handleHook serves POST {path}/:name.
func (h *Bubblehouse) handleHook(c echo.Context) error {
	name := c.Param("name")
	rec := startRecord(c, hooks.SenderBubblehouse, name, h.now())
	hdr := c.Request().Header
	rec.RequestID = hdr.Get(HeaderRequestID)
	urgency, ok := hooks.ParseUrgency(hdr.Get(HeaderUrgency))
	rec.Urgency = urgency
	if !ok {
		rec.Note("X-BH-Urgency " + describeValue(hdr.Get(HeaderUrgency)) + ": handled as regular")
	}

	if err := h.Auth.Check(hdr.Get(echo.HeaderAuthorization)); err != nil {
		rec.Note("body not read: the request was not authenticated")
		return err
	}
	if name == hooks.Hello1 {
		return h.hello1(c, rec)
	}
	hook, ok := h.Hooks.Lookup(name)
	if !ok {
		if hooks.IsHello(name) {
			return hooks.Errorf(hooks.ENOTFOUND, "hook %q is not served: Hello1 is the only Hello hook here", name)
		}
		return hooks.Errorf(hooks.ENOTFOUND, "hook %q is not subscribed", name)
	}

	body, err := readBody(c, h.MaxBodyBytes)
	if err != nil && hooks.ErrorCode(err) != hooks.ETOOLARGE {
		// A body that did not arrive as sent (cut off, stalled, garbled
		// chunking) is not bad data, even for SendEvent1: answering
		// invalid_data would settle the request ID and lose the event
		// that Bubblehouse's retry would have delivered.
		return err
	}
	if err == nil {
		rec.Body = body
		err = hooks.CheckObject(body)
	}
	var keys []string
	if err == nil {
		var k string
		if k, err = hook.DedupKey(body); k != "" {
			keys = []string{k}
		}
	}
	if err != nil {
		if !hook.Outcomes {
			return err
		}
		// An HTTP error would hold Bubblehouse's whole queue for this one
		// event: answer 200 with outcome invalid_data instead.
		rec.Note("refused with outcome invalid_data: " + hooks.ErrorMessage(err))
		rec.Status, rec.Response = http.StatusOK, hooks.InvalidOutcome(hooks.ErrorMessage(err))
		return h.commit(c, &hooks.Receipt{Request: rec}, hooks.InlineDeadline)
	}

	r := &hooks.Receipt{Request: rec, Keys: keys}
	if d, inline := hook.InlineDeadline(urgency); inline {
		ctx, cancel := withTimeout(c.Request().Context(), d)
		defer cancel()
		resp, err := h.Guard.Run(ctx, r, HeaderRequestID, func(ctx context.Context) (hooks.Response, error) {
			return h.runInline(ctx, hook, r)
		})
		if err != nil {
			return err
		}
		return c.JSONBlob(resp.Status, resp.Body)
	}
	rec.Status, rec.Response = http.StatusAccepted, hook.DefaultOutput(body)
	r.Job = hooks.NewJob(rec, h.now())
	if h.HasAction == nil || !h.HasAction(hook.Name) {
		r.Job.Stored(r.Job.CreatedAt)
	}
	return h.commit(c, r, hooks.InlineDeadline)
}

// commit writes a receipt whose answer is known and sends that answer.
func (h *Bubblehouse) commit(c echo.Context, r *hooks.Receipt, wait time.Duration) error {
	ctx, cancel := withTimeout(c.Request().Context(), wait)
	defer cancel()
	resp, err := h.Guard.Commit(ctx, r, HeaderRequestID)
	if err != nil {
		return err
	}
	return c.JSONBlob(resp.Status, resp.Body)
}

// hello1 answers the handshake inline: the magic back and the subscribed
// hooks. It is recorded and de-duplicated like any hook.
func (h *Bubblehouse) hello1(c echo.Context, rec *hooks.Request) error {
	body, err := readBody(c, h.MaxBodyBytes)
	if err != nil {
		return err
	}
	rec.Body = body
	if err := hooks.CheckObject(body); err != nil {
		return err
	}
	ctx, cancel := withTimeout(c.Request().Context(), hooks.RealtimeDeadline)
	defer cancel()
	resp, err := h.Guard.Run(ctx, &hooks.Receipt{Request: rec}, HeaderRequestID, func(context.Context) (hooks.Response, error) {
		out, err := h.Hooks.Hello1Answer(body)
		return hooks.Response{Status: http.StatusOK, Body: out}, err
	})
	if err != nil {
		return err
	}
	return c.JSONBlob(resp.Status, resp.Body)
}

// runInline runs a hook's action while Bubblehouse waits. Its output,
// checked against the hook's output shape, is the answer; a failure, a
// missed deadline or a malformed output asks Bubblehouse to retry (503),
// never a fake success. An output that does not settle the request
// (SendEvent1's failure) is sent as it is, and the retry runs again.
func (h *Bubblehouse) runInline(ctx context.Context, hook *hooks.BubblehouseHook, receipt *hooks.Receipt) (hooks.Response, error) {
	rec := receipt.Request
	j := hooks.NewJob(rec, h.now())
	j.Attempts, j.RequestID, j.Header, j.Body = 1, rec.RequestID, rec.Header, rec.Body
	if h.Inline == nil || h.HasAction == nil || !h.HasAction(hook.Name) {
		// The store action: the record is the delivery, the answer the default.
		return hooks.Response{Status: http.StatusOK, Body: hook.DefaultOutput(rec.Body)}, nil
	}
	out, err := h.Inline(ctx, j)
	if err != nil {
		rec.Note("inline action failed: " + err.Error())
		return hooks.Response{}, &hooks.Error{Code: hooks.EUNAVAILABLE, Message: "hook " + hook.Name + " failed inline; retry later"}
	}
	out, err = hook.Output(out, rec.Body)
	if err != nil {
		rec.Note("inline action output refused: " + hooks.ErrorMessage(err))
		return hooks.Response{}, &hooks.Error{Code: hooks.EUNAVAILABLE, Message: "hook " + hook.Name + " produced invalid output; retry later"}
	}
	if !hook.Settles(out) {
		rec.Note("outcome failure: a temporary failure, not settled; the retry runs the action again")
		return hooks.Response{}, &hooks.UnsettledError{Response: hooks.Response{Status: http.StatusOK, Body: out}, Reason: hook.Name + " outcome failure"}
	}
	// Delivered inline: the job is recorded done, for events show and replay.
	j.Stored(h.now())
	receipt.Job = j
	return hooks.Response{Status: http.StatusOK, Body: out}, nil
}

func describeValue(v string) string {
	if v == "" {
		return "missing"
	}
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return fmt.Sprintf("has unknown value %q", v) // quoted: any bytes read as text
}
