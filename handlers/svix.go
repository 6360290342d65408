package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hookbay/hookbay/hooks"
)

// svixWait bounds how long a redelivery waits for the first delivery of
// the same message, well inside Svix's response timeout.
const svixWait = 10 * time.Second

// SvixEndpoint is one endpoint that receives Svix-signed events.
type SvixEndpoint struct {
	Verifier *hooks.SvixVerifier
	Routes   *hooks.EventRoutes
}

// Svix serves Svix-signed events (Bloom Enablement webhooks): POST
// {path}/:endpoint, verified on the exact bytes, de-duplicated on the
// message id, committed and queued, then answered 200.
type Svix struct {
	Endpoints    map[string]*SvixEndpoint
	Guard        Guard
	MaxBodyBytes int64
	// HasAction reports whether a job has an action to run (config routes
	// or a Go action); nil means routes only.
	HasAction func(*hooks.Job) bool
	Now       func() time.Time
}

// Register mounts the endpoint route under prefix (svix.path).
func (h *Svix) Register(e *echo.Echo, prefix string) {
	postOnly(e, prefix+"/:endpoint", hooks.SenderSvix, "endpoint", h.handleEvent, h.Now)
}

func (h *Svix) now() time.Time { return clock(h.Now) }

// svixAnswer is the body of an accepted event.
type svixAnswer struct {
	Accepted  bool   `json:"accepted"`
	ID        string `json:"id"`
	Type      string `json:"type,omitempty"`
	KnownType bool   `json:"known_type"`
}

func (h *Svix) handleEvent(c echo.Context) error {
	name := c.Param("endpoint")
	rec := startRecord(c, hooks.SenderSvix, name, h.now())
	ep, ok := h.Endpoints[name]
	if !ok {
		return hooks.Errorf(hooks.ENOTFOUND, "no Svix endpoint named %q", name)
	}
	body, err := readBody(c, h.MaxBodyBytes)
	if err != nil {
		return err
	}
	sh, err := ep.Verifier.Verify(body, c.Request().Header)
	rec.RequestID = sh.ID
	if err != nil {
		var se *hooks.SvixError
		if errors.As(err, &se) {
			rec.Note("refused: " + se.Reason)
		}
		keepUnverified(rec, body)
		return err
	}
	rec.Body = body
	// Bloom's events are JSON objects; a signed body that is not one was
	// built wrong at the source, and nothing downstream could read it.
	if err := hooks.CheckObject(body); err != nil {
		rec.Note("refused: payload is not a JSON object")
		return err
	}

	eventType := hooks.SvixEventTypeOf(body) // CheckObject validated it
	known := hooks.BloomEventTypes[eventType]
	switch {
	case eventType == "":
		rec.Note("no event type in the payload (a top-level \"type\" field is expected)")
	case !known:
		rec.Note("unknown event type " + eventType + ": accepted and stored")
	}
	action, routed := ep.Routes.Match(eventType)
	if !routed {
		rec.Note("no route for event type " + describeType(eventType) + ": stored only")
	}
	answer, err := json.Marshal(svixAnswer{Accepted: true, ID: sh.ID, Type: eventType, KnownType: known})
	if err != nil {
		return err
	}
	rec.Urgency = hooks.UrgencyRegular
	rec.Status, rec.Response = http.StatusOK, answer
	job := hooks.NewJob(rec, h.now())
	job.Name = eventType
	if job.Name == "" {
		job.Name = "unknown"
	}
	hasAction := action != nil
	if h.HasAction != nil {
		hasAction = h.HasAction(job)
	}
	if !hasAction {
		job.Stored(job.CreatedAt)
	}
	ctx, cancel := withTimeout(c.Request().Context(), svixWait)
	defer cancel()
	// Svix delivers a message with the same id to each subscribed endpoint:
	// de-duplicate per endpoint.
	r := &hooks.Receipt{Request: rec, Job: job, Scope: name + "/"}
	resp, err := h.Guard.Commit(ctx, r, sh.Prefix+"-id")
	if err != nil {
		return err
	}
	return c.JSONBlob(resp.Status, resp.Body)
}

func describeType(t string) string {
	if t == "" {
		return "(none)"
	}
	return t
}
