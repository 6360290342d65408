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
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hookbay/hookbay/hooks"
)

// bloomreachDeadline keeps every answer well under the 1 s Bloomreach
// expects (Bloomreach "Creating API endpoint for webhooks", "Response time").
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
	// ValidateBudget bounds how long a batch's customers are validated
	// against schema.item before the answer, 600 ms when zero; customers
	// left over fail with code 1007 rather than the answer being late.
	ValidateBudget time.Duration

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
	if err := h.authenticate(c, wh, body); err != nil {
		keepUnverified(rec, body)
		return err
	}
	rec.Body = body
	if wh.Throttle != nil {
		release, wait, ok := wh.Throttle.Acquire(h.now())
		if !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
			rec.Note(throttledNote)
			if wh.Throttle.Status == http.StatusServiceUnavailable {
				return hooks.Errorf(hooks.EUNAVAILABLE, "webhook %s is over its throughput policy; retry later", name)
			}
			return hooks.Errorf(hooks.ETHROTTLED, "webhook %s is over its throughput policy; retry later", name)
		}
		defer release()
	}
	ctx, cancel := withTimeout(c.Request().Context(), bloomreachDeadline)
	defer cancel()

	isJSON := isJSONRequest(c.Request(), wh)
	var doc any
	if isJSON {
		// One nesting limit for every sender, checked before decoding.
		if err := hooks.CheckDepth(body); err != nil {
			return err
		}
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return hooks.Errorf(hooks.EINVALID, "body is not valid JSON: %v", err)
		}
		if wh.IDPointer != "" {
			if id, ok := hooks.PointerID(doc, wh.IDPointer); ok {
				rec.RequestID = id
			}
		}
	} else {
		rec.Note("body is not JSON: stored and delivered as-is; schemas not applied")
	}
	header := wh.IDHeader
	if header == "" {
		header = "request ID (" + wh.IDPointer + ")"
	}
	// Request IDs and item IDs live in separate key spaces of the webhook.
	r := &hooks.Receipt{Request: rec, Scope: name + "/id:"}
	if wh.BatchItems != "" {
		if err := h.batch(wh, r, body, doc, isJSON); err != nil {
			return err
		}
	} else if err := h.perCustomer(wh, r, body, doc, isJSON); err != nil {
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
// success false when this customer's data cannot be read (unreadable) or
// fails the item schema; a body that fails the request schema is wrong
// for every customer (400).
func (h *Bloomreach) perCustomer(wh *BloomreachWebhook, r *hooks.Receipt, body []byte, doc any, isJSON bool) error {
	rec := r.Request
	rec.Status = http.StatusOK
	refuse := func(why hooks.BRError) error {
		rec.Response, _ = json.Marshal(hooks.BRReply{Errors: []hooks.BRError{why}})
		return nil
	}
	if isJSON {
		if why := unreadable(wh, body, doc); why != nil {
			rec.Note(fmt.Sprintf("customer refused (%d): %s", why.Code, why.Description))
			return refuse(*why)
		}
		if wh.Request != nil {
			if err := wh.Request.Validate(doc); err != nil {
				return hooks.Errorf(hooks.EINVALID, "body fails the request schema: %s", schemaProblem(err))
			}
		}
		if wh.Item != nil {
			if err := wh.Item.Validate(doc); err != nil {
				rec.Note("customer refused: schema.item")
				return refuse(hooks.BRError{Code: hooks.BRCodeSchema, Description: schemaProblem(err)})
			}
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
	// Delivered inline: the job is recorded done, for events show and replay.
	r.Job.Stored(h.now())
	// Bloomreach's shape has a member named exactly success, true or false
	// ({"SUCCESS":false} is some other object, sent as the result).
	if s := string(hooks.Member(out, "success")); (s == "true" || s == "false") && utf8.Valid(out) && len(out) <= hooks.BloomreachMaxReply {
		return hooks.Response{Status: http.StatusOK, Body: out}, nil
	}
	var result any = map[string]any{"code": 1, "status": "delivered"}
	if json.Valid(out) && utf8.Valid(out) && len(out) > 0 {
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
// result per item, in order. A customer whose data cannot be read fails on
// its own; when the batch's own fields cannot be, every customer fails,
// still in a 200: a 4xx would fail, or stop, the whole campaign.
func (h *Bloomreach) batch(wh *BloomreachWebhook, r *hooks.Receipt, body []byte, doc any, isJSON bool) error {
	rec := r.Request
	notArray := func() error {
		return hooks.Errorf(hooks.EINVALID, "batch.items %s does not point at an array of customers", wh.BatchItems)
	}
	// A JSON body was decoded into doc already; another is checked here,
	// so that its customers can be found by scanning the bytes, once.
	if !isJSON && !json.Valid(body) {
		return notArray()
	}
	items, at, ok := hooks.RawItems(body, wh.BatchItems)
	if !ok {
		return notArray()
	}
	if !isJSON {
		// Declared as some other type, a batch is still read as JSON for
		// its customers; the request schema applies to JSON requests only.
		if err := hooks.CheckDepth(body); err != nil {
			return err
		}
		var err error
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return hooks.Errorf(hooks.EINVALID, "body is not valid JSON: %v", err)
		}
	}
	if len(items) > wh.BatchMax {
		return hooks.Errorf(hooks.EINVALID, "batch has %d customers; at most %d are accepted", len(items), wh.BatchMax)
	}
	parsed, _ := hooks.PointerValue(doc, wh.BatchItems)
	docItems, _ := parsed.([]any)
	if len(docItems) != len(items) {
		// Both read the same bytes; only a bug gets here.
		return fmt.Errorf("batch items: %d raw, %d parsed", len(items), len(docItems))
	}
	// Bytes that are not UTF-8 are looked for once in the whole body; only
	// when there are some are the customers looked at one by one.
	bad := invalidBytes(body)
	refused := make([]*hooks.BRError, len(items))
	clean := make([]any, 0, len(items)) // the customers that can be read, for the request schema
	for i, item := range items {
		if bad > 0 {
			refused[i] = unreadable(wh, item, docItems[i])
		} else {
			refused[i] = unreadableNumbers(wh, docItems[i])
		}
		if refused[i] == nil {
			clean = append(clean, docItems[i])
		}
	}
	// The batch's own fields, outside the customers: the same screening.
	hooks.ReplacePointer(doc, wh.BatchItems, []any{})
	root := unreadableRoot(wh, bad, items, doc)
	if root == nil && wh.Request != nil && isJSON {
		hooks.ReplacePointer(doc, wh.BatchItems, clean)
		if err := wh.Request.Validate(doc); err != nil {
			return hooks.Errorf(hooks.EINVALID, "body fails the request schema: %s", schemaProblem(err))
		}
	}
	hooks.ReplacePointer(doc, wh.BatchItems, docItems)

	reply := hooks.BRBatchReply{Results: make([]hooks.BRItemResult, len(items))}
	receiptItems := make([]hooks.ReceiptItem, len(items)) // one allocation, not one per customer
	now := h.now()
	budget := time.Now().Add(h.validateBudget())
	late := 0
	for i, item := range items {
		res := &reply.Results[i]
		res.Index = i
		itemDoc := docItems[i]
		switch {
		case root != nil:
			res.Errors = []hooks.BRError{*root}
			continue
		case refused[i] != nil:
			res.Errors = []hooks.BRError{*refused[i]}
			continue
		}
		if _, isObj := itemDoc.(map[string]any); !isObj {
			res.Errors = []hooks.BRError{{Code: hooks.BRCodeNotObject, Description: "customer item is not a JSON object"}}
			continue
		}
		if wh.Item != nil {
			if time.Now().After(budget) {
				// The answer is due: this customer fails rather than the
				// whole batch being answered too late (and retried).
				late++
				res.Errors = []hooks.BRError{{Code: hooks.BRCodeDeadline, Description: "not validated before the answer was due; not queued"}}
				continue
			}
			if err := wh.Item.Validate(itemDoc); err != nil {
				res.Errors = []hooks.BRError{{Code: hooks.BRCodeSchema, Description: schemaProblem(err)}}
				continue
			}
		}
		it := &receiptItems[i]
		if wh.ItemID != "" {
			id, ok := hooks.PointerID(itemDoc, wh.ItemID)
			if !ok {
				res.Errors = []hooks.BRError{{Code: hooks.BRCodeNoItemID, Description: "customer item has no " + wh.ItemID}}
				continue
			}
			res.ItemID, it.Key = id, hooks.ItemKey(wh.Name, id)
		}
		res.Success = true
		if r.Items == nil {
			r.Items = make([]*hooks.ReceiptItem, 0, len(items))
		}
		it.Job = hooks.NewJob(rec, now)
		it.Job.Payload, it.InBody, it.At = item, true, at[i]
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
	if root != nil {
		rec.Note(fmt.Sprintf("every customer refused (%d): %s", root.Code, root.Description))
	}
	if late > 0 {
		rec.Note(fmt.Sprintf("%d customers not validated before the answer was due", late))
	}
	return nil
}

// validateBudget is how long a batch's customers may take to validate,
// leaving the rest of the answer's deadline to record and queue them.
func (h *Bloomreach) validateBudget() time.Duration {
	if h.ValidateBudget != 0 {
		return h.ValidateBudget
	}
	return bloomreachValidateBudget
}

// bloomreachValidateBudget leaves 300 ms of bloomreachDeadline to commit.
const bloomreachValidateBudget = 600 * time.Millisecond

// unreadable says why one customer's data cannot be taken as JSON text and
// validated in time, or nil: it is not UTF-8 (encoding/json would decode
// it as U+FFFD, another text than the one stored), or, when a schema will
// validate it, it holds a number whose exact reading costs more than its
// size (hooks.CheckNumbers).
func unreadable(wh *BloomreachWebhook, raw []byte, doc any) *hooks.BRError {
	if err := hooks.CheckText(raw); err != nil {
		return &hooks.BRError{Code: hooks.BRCodeText, Description: "customer data: " + hooks.ErrorMessage(err)}
	}
	return unreadableNumbers(wh, doc)
}

// unreadableNumbers is unreadable for a customer whose data is known to be
// UTF-8.
func unreadableNumbers(wh *BloomreachWebhook, doc any) *hooks.BRError {
	if wh.Request != nil || wh.Item != nil {
		if err := hooks.CheckNumbers(doc); err != nil {
			return &hooks.BRError{Code: hooks.BRCodeNumber, Description: "customer data: " + hooks.ErrorMessage(err)}
		}
	}
	return nil
}

// unreadableRoot is unreadable for a batch's own fields: rootDoc is the
// parsed body with the customers taken out; bad counts the raw body's
// bytes that are not UTF-8, and the body still holds the customers, so
// those bytes are the root's when the customers do not account for them
// all.
func unreadableRoot(wh *BloomreachWebhook, bad int, items []json.RawMessage, rootDoc any) *hooks.BRError {
	if bad > 0 {
		for _, it := range items {
			bad -= invalidBytes(it)
		}
	}
	if bad > 0 {
		return &hooks.BRError{Code: hooks.BRCodeText, Description: "the batch's own fields are not valid UTF-8: JSON text must be UTF-8 (RFC 8259, section 8.1)"}
	}
	if wh.Request != nil {
		if err := hooks.CheckNumbers(rootDoc); err != nil {
			return &hooks.BRError{Code: hooks.BRCodeNumber, Description: "the batch's own fields: " + hooks.ErrorMessage(err)}
		}
	}
	return nil
}

// invalidBytes counts the bytes of b that are not part of valid UTF-8.
func invalidBytes(b []byte) int {
	if utf8.Valid(b) {
		return 0
	}
	n := 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			n++
		}
		i += size
	}
	return n
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
