package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hookbay/hookbay/hooks"
)

// bloomreachDeadline keeps every answer well under the 1 s Bloomreach
// expects (bloomreach-endpoint-requirements.txt, "Response time").
const bloomreachDeadline = 900 * time.Millisecond

// BloomreachWebhook is one configured webhook.
type BloomreachWebhook struct {
	Name         string
	Methods      []string
	Auth         WebhookAuth
	BatchItems   string // JSON pointer to the customers; "" for a per-customer webhook
	BatchMax     int
	IDHeader     string
	IDPointer    string
	ItemID       string
	Request      *jsonschema.Schema
	Item         *jsonschema.Schema
	Throttle     *hooks.Throttle
	HasAction    bool
	InlineAction func(ctx context.Context, j *hooks.Job) ([]byte, error) // per-customer inline action
}

// Bloomreach serves Bloomreach Engagement webhooks at {path}/<name>, their
// auth-test routes, and hookbay's OAuth 2.0 token endpoint.
type Bloomreach struct {
	Webhooks     map[string]*BloomreachWebhook
	Guard        Guard
	Tokens       TokenStore
	Clients      map[string]OAuthClient
	TokenTTL     time.Duration
	MaxBodyBytes int64
	Now          func() time.Time

	secrets []string // every webhook's auth header names, gathered by Register
}

// Register mounts the routes. It gathers the webhooks' auth header names
// once, for the records of every Bloomreach route.
func (h *Bloomreach) Register(e *echo.Echo, prefix, tokenPath string) {
	h.secrets = nil
	for _, wh := range h.Webhooks {
		for k := range wh.Auth.Headers {
			h.secrets = append(h.secrets, k)
		}
	}
	e.Any(prefix+"/:name", h.handleWebhook)
	e.Any(prefix+"/:name/auth-test", h.handleAuthTest)
	e.POST(tokenPath, h.handleToken)
}

func (h *Bloomreach) now() time.Time { return clock(h.Now) }

// SecretHeaders names the headers that carry a configured webhook's
// credentials, redacted in every Bloomreach record: a request to a
// mistyped webhook name, or one answered by an injected fault, may carry
// any webhook's credentials.
func (h *Bloomreach) SecretHeaders() []string { return h.secrets }

// IDHeader names the header a webhook reads its request ID from.
func (h *Bloomreach) IDHeader(name string) string {
	if wh, ok := h.Webhooks[name]; ok && wh.IDHeader != "" {
		return wh.IDHeader
	}
	return "X-Request-ID"
}

func (h *Bloomreach) handleWebhook(c echo.Context) error {
	name := c.Param("name")
	rec := startRecord(c, hooks.SenderBloomreach, name, h.now(), h.secrets...)
	rec.Urgency = hooks.UrgencyRegular
	wh, ok := h.Webhooks[name]
	if !ok {
		rec.RequestID = c.Request().Header.Get("X-Request-ID")
		return hooks.Errorf(hooks.ENOTFOUND, "no Bloomreach webhook named %q", name)
	}
	// Set now so that refused requests can be found by their ID too; a
	// JSON pointer may replace it once the body is parsed.
	rec.RequestID = c.Request().Header.Get(wh.IDHeader)
	if !slices.Contains(wh.Methods, c.Request().Method) {
		c.Response().Header().Set("Allow", strings.Join(wh.Methods, ", "))
		return hooks.Errorf(hooks.EMETHOD, "method %s is not configured for webhook %s; use %s", c.Request().Method, name, strings.Join(wh.Methods, ", "))
	}
	body, err := readBody(c, h.MaxBodyBytes)
	if err != nil {
		return err
	}
	rec.Body = body
	if err := h.authenticate(c, wh, body); err != nil {
		return err
	}
	if wh.Throttle != nil {
		release, wait, ok := wh.Throttle.Acquire(h.now())
		if !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
			rec.Note("throttled")
			if wh.Throttle.Status == http.StatusServiceUnavailable {
				return hooks.Errorf(hooks.EUNAVAILABLE, "webhook %s is over its throughput policy; retry later", name)
			}
			return hooks.Errorf(hooks.ETHROTTLED, "webhook %s is over its throughput policy; retry later", name)
		}
		defer release()
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), bloomreachDeadline)
	defer cancel()

	isJSON := isJSONRequest(c.Request(), wh)
	var doc any
	if isJSON {
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return hooks.Errorf(hooks.EINVALID, "body is not valid JSON: %v", err)
		}
		if wh.Request != nil {
			if err := wh.Request.Validate(doc); err != nil {
				return hooks.Errorf(hooks.EINVALID, "body fails the request schema: %s", schemaProblem(err))
			}
		}
	} else {
		rec.Note("body is not JSON: stored and delivered as-is; schemas not applied")
	}
	if wh.IDPointer != "" && isJSON {
		if id, ok := hooks.PointerID(doc, wh.IDPointer); ok {
			rec.RequestID = id
		}
	}
	header := wh.IDHeader
	if header == "" {
		header = "request ID (" + wh.IDPointer + ")"
	}
	// Request IDs and item IDs live in separate key spaces of the webhook.
	r := &hooks.Receipt{Request: rec, Scope: name + "/id:"}
	if wh.BatchItems != "" {
		if err := h.batch(wh, r, body); err != nil {
			return err
		}
	} else if err := h.perCustomer(ctx, wh, r, doc, isJSON); err != nil {
		return err
	}
	var resp hooks.Response
	if wh.InlineAction != nil && wh.BatchItems == "" && rec.Status == http.StatusOK && r.Job != nil {
		resp, err = h.Guard.Run(ctx, r, header, func(ctx context.Context) (hooks.Response, error) {
			return h.runInline(ctx, wh, r)
		})
	} else {
		resp, err = h.Guard.Commit(ctx, r, header)
	}
	if err != nil {
		return err
	}
	return c.JSONBlob(resp.Status, resp.Body)
}

// perCustomer prepares a per-customer request: 200 success, or 200 with
// success false when this customer's data fails the item schema.
func (h *Bloomreach) perCustomer(ctx context.Context, wh *BloomreachWebhook, r *hooks.Receipt, doc any, isJSON bool) error {
	rec := r.Request
	rec.Status = http.StatusOK
	if isJSON && wh.Item != nil {
		if err := wh.Item.Validate(doc); err != nil {
			rec.Note("customer refused: schema.item")
			rec.Response, _ = json.Marshal(hooks.BRReply{Errors: []hooks.BRError{{Code: hooks.BRCodeSchema, Description: schemaProblem(err)}}})
			return nil
		}
	}
	rec.Response, _ = json.Marshal(hooks.BRReply{Success: true, Result: map[string]any{
		"code": 1, "status": "accepted", "message": "received and queued for delivery", "request_id": rec.RequestID}})
	r.Job = hooks.NewJob(rec, h.now())
	if !wh.HasAction {
		r.Job.Stored(r.Job.CreatedAt)
	}
	return nil
}

// runInline runs a per-customer action while Bloomreach waits. Its output
// is the reply when it has Bloomreach's shape (success true or false);
// any other output becomes the result. A failure asks for a retry (503).
func (h *Bloomreach) runInline(ctx context.Context, wh *BloomreachWebhook, r *hooks.Receipt) (hooks.Response, error) {
	j := r.Job
	j.Attempts, j.RequestID, j.Header, j.Body = 1, r.Request.RequestID, r.Request.Header, r.Request.Body
	out, err := wh.InlineAction(ctx, j)
	var tooLarge *hooks.OutputTooLargeError
	if errors.As(err, &tooLarge) {
		// Delivered; only its answer is too long, and the reply leaves it
		// out rather than have Bloomreach repeat the delivery.
		r.Request.Note("inline action's answer over the output limit, left out")
		out, err = nil, nil
	}
	if err != nil {
		r.Request.Note("inline action failed: " + err.Error())
		return hooks.Response{}, &hooks.Error{Code: hooks.EUNAVAILABLE, Message: "webhook " + wh.Name + " failed inline; retry later"}
	}
	var shaped struct {
		Success *bool `json:"success"`
	}
	// Delivered inline: the job is recorded done, for events show and replay.
	r.Job.Stored(h.now())
	if json.Unmarshal(out, &shaped) == nil && shaped.Success != nil && len(out) <= hooks.BloomreachMaxReply {
		return hooks.Response{Status: http.StatusOK, Body: out}, nil
	}
	var result any = map[string]any{"code": 1, "status": "delivered"}
	if json.Valid(out) && len(out) > 0 {
		result = json.RawMessage(out)
	}
	body, _ := json.Marshal(hooks.BRReply{Success: true, Result: result})
	if len(body) > hooks.BloomreachMaxReply {
		body, _ = json.Marshal(hooks.BRReply{Success: true, Result: map[string]any{"code": 1, "status": "delivered", "note": "output over 64 KB left out"}})
	}
	return hooks.Response{Status: http.StatusOK, Body: body}, nil
}

// batch prepares a batch: each item is checked on its own; those that pass
// are queued, each de-duplicated on its item_id, and the reply has one
// result per item, in order.
func (h *Bloomreach) batch(wh *BloomreachWebhook, r *hooks.Receipt, body []byte) error {
	rec := r.Request
	raw, ok := hooks.RawPointer(body, wh.BatchItems)
	var items []json.RawMessage
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) || json.Unmarshal(raw, &items) != nil {
		return hooks.Errorf(hooks.EINVALID, "batch.items %s does not point at an array of customers", wh.BatchItems)
	}
	if len(items) > wh.BatchMax {
		return hooks.Errorf(hooks.EINVALID, "batch has %d customers; at most %d are accepted", len(items), wh.BatchMax)
	}
	reply := hooks.BRBatchReply{Results: make([]hooks.BRItemResult, len(items))}
	now := h.now()
	for i, item := range items {
		res := &reply.Results[i]
		res.Index = i
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(item))
		if _, isObj := doc.(map[string]any); err != nil || !isObj {
			res.Errors = []hooks.BRError{{Code: hooks.BRCodeNotObject, Description: "customer item is not a JSON object"}}
			continue
		}
		if wh.Item != nil {
			if err := wh.Item.Validate(doc); err != nil {
				res.Errors = []hooks.BRError{{Code: hooks.BRCodeSchema, Description: schemaProblem(err)}}
				continue
			}
		}
		it := &hooks.ReceiptItem{}
		if wh.ItemID != "" {
			id, ok := hooks.PointerID(doc, wh.ItemID)
			if !ok {
				res.Errors = []hooks.BRError{{Code: hooks.BRCodeNoItemID, Description: "customer item has no " + wh.ItemID}}
				continue
			}
			res.ItemID, it.Key = id, wh.Name+"/item:"+id
		}
		res.Success = true
		it.Job = hooks.NewJob(rec, now)
		it.Job.Payload = item
		if !wh.HasAction {
			it.Job.Stored(now)
		}
		r.Items = append(r.Items, it)
	}
	reply.Accepted = len(r.Items)
	reply.Failed = len(items) - reply.Accepted
	reply.Success = reply.Failed == 0
	rec.Status, rec.Response = http.StatusOK, reply.Encode()
	rec.Note(fmt.Sprintf("batch of %d: %d accepted, %d refused", len(items), reply.Accepted, reply.Failed))
	return nil
}

// isJSONRequest decides whether the body is JSON: its Content-Type says so,
// or the webhook needs JSON (batch, JSON request ID, schemas) and no other
// type is declared.
func isJSONRequest(r *http.Request, wh *BloomreachWebhook) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return wh.BatchItems != "" || wh.IDPointer != "" || wh.Request != nil || wh.Item != nil
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// schemaProblem is a JSON Schema error as one short line: where and what.
func schemaProblem(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	if len(lines) > 1 {
		lines = lines[1:] // the first names the schema's URL
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "- ")
	}
	msg := strings.Join(lines, "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
