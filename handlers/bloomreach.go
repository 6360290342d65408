package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
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

// TokenStore checks OAuth 2.0 access tokens that hookbay issued.
type TokenStore interface {
	SaveToken(ctx context.Context, hash []byte, clientID string, scopes []string, expires, now time.Time) error
	TokenClient(ctx context.Context, hash []byte, now time.Time) (string, []string, error)
}

// WebhookAuth is a webhook's authentication: every configured scheme must
// pass. Secrets are compared in constant time.
type WebhookAuth struct {
	Basic        *[2]string        // user, password
	Headers      map[string]string // header name to exact value
	OAuth2       bool
	TokenIn      string // header | body | query
	TokenField   string
	Scopes       []string // the token must carry all of them
	MTLS         bool
	MTLSSubjects []string
}

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

// OAuthClient may obtain tokens with the client-credentials grant.
type OAuthClient struct {
	Secret string
	Scopes []string
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

// handleAuthTest answers Bloomreach's "Test settings": 200 when the
// credentials pass, 401 when not, whatever the method.
func (h *Bloomreach) handleAuthTest(c echo.Context) error {
	name := c.Param("name")
	rec := startRecord(c, hooks.SenderBloomreach, name+"/auth-test", h.now(), h.secrets...)
	wh, ok := h.Webhooks[name]
	if !ok {
		return hooks.Errorf(hooks.ENOTFOUND, "no Bloomreach webhook named %q", name)
	}
	if err := h.authenticate(c, wh, nil); err != nil {
		return err
	}
	rec.Status, rec.Response = http.StatusOK, []byte(`{"success":true,"result":{"status":"credentials accepted"}}`)
	if err := h.Guard.Record(c.Request().Context(), rec); err != nil {
		return err
	}
	return c.JSONBlob(rec.Status, rec.Response)
}

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

// authenticate checks every configured scheme; a failure sets the
// WWW-Authenticate challenge of the scheme that failed.
func (h *Bloomreach) authenticate(c echo.Context, wh *BloomreachWebhook, body []byte) error {
	r := c.Request()
	a := wh.Auth
	fail := func(challenge, format string, args ...any) error {
		if challenge != "" {
			c.Response().Header().Set("WWW-Authenticate", challenge)
		}
		return hooks.Errorf(hooks.EUNAUTHORIZED, format, args...)
	}
	if a.MTLS {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return fail("", "a client certificate that chains to the configured CA is required")
		}
		if len(a.MTLSSubjects) > 0 {
			leaf := r.TLS.VerifiedChains[0][0]
			names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
			if !slices.ContainsFunc(names, func(n string) bool { return slices.Contains(a.MTLSSubjects, n) }) {
				return fail("", "client certificate subject %q is not allowed", leaf.Subject.CommonName)
			}
		}
	}
	if a.Basic != nil {
		user, pass, ok := r.BasicAuth()
		userOK, passOK := hooks.SecretEqual(user, a.Basic[0]), hooks.SecretEqual(pass, a.Basic[1])
		if !ok || !(userOK && passOK) {
			return fail(`Basic realm="hookbay", charset="UTF-8"`, "Basic credentials are missing or wrong")
		}
	}
	for name, want := range a.Headers {
		if !hooks.SecretEqual(r.Header.Get(name), want) {
			return fail("", "header %s is missing or wrong", name)
		}
	}
	if a.OAuth2 {
		token := bearerOrField(r, a.TokenIn, a.TokenField, body)
		if token == "" {
			return fail(`Bearer realm="hookbay"`, "an OAuth 2.0 access token is required (%s)", a.TokenIn)
		}
		sum := sha256.Sum256([]byte(token))
		client, scopes, err := h.Tokens.TokenClient(r.Context(), sum[:], h.now())
		if err != nil {
			return err
		}
		if client == "" {
			return fail(`Bearer realm="hookbay", error="invalid_token"`, "the access token is unknown or expired")
		}
		for _, want := range a.Scopes {
			if !slices.Contains(scopes, want) {
				return fail(`Bearer realm="hookbay", error="insufficient_scope", scope="`+strings.Join(a.Scopes, " ")+`"`,
					"the access token lacks scope %s", want)
			}
		}
	}
	return nil
}

// bearerOrField finds the access token where the webhook says Bloomreach
// puts it.
func bearerOrField(r *http.Request, in, field string, body []byte) string {
	switch in {
	case "query":
		return r.URL.Query().Get(field)
	case "body":
		if raw, ok := hooks.RawPointer(body, "/"+field); ok {
			s, _ := hooks.ScalarString(raw)
			return s
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			// The body was read already: parse the bytes, not r.Body.
			if form, err := url.ParseQuery(string(body)); err == nil {
				return form.Get(field)
			}
		}
		return ""
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
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

// handleToken is the client-credentials token endpoint (RFC 6749 §4.4).
func (h *Bloomreach) handleToken(c echo.Context) error {
	r := c.Request()
	body, err := readBody(c, tokenBodyLimit)
	if err != nil {
		// OAuth clients read every error in RFC 6749's format; the status
		// is the one Bloomreach reads on its webhook routes (503, which it
		// retries, for a body that did not arrive in full).
		return tokenError(c, statusFor(hooks.SenderBloomreach, hooks.ErrorCode(err)), "invalid_request", hooks.ErrorMessage(err))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		return tokenError(c, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if u, err := url.QueryUnescape(secret); err == nil {
			secret = u
		}
	} else {
		// Credentials only from the body: never from the URL, which ends up
		// in access logs (RFC 6749 section 2.3.1).
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	client, known := h.Clients[id]
	if id == "" || !known || !hooks.SecretEqual(secret, client.Secret) {
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="hookbay"`)
		return tokenError(c, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		return tokenError(c, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
	}
	scopes := client.Scopes
	if s := r.Form.Get("scope"); s != "" {
		scopes = strings.Fields(s)
		for _, sc := range scopes {
			if !slices.Contains(client.Scopes, sc) {
				return tokenError(c, http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not granted to this client")
			}
		}
	}
	raw := make([]byte, 32)
	if _, err := randRead(raw); err != nil {
		return fmt.Errorf("generate access token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	now := h.now()
	if err := h.Tokens.SaveToken(r.Context(), sum[:], id, scopes, now.Add(h.TokenTTL), now); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return c.JSON(http.StatusOK, map[string]any{
		"access_token": token, "token_type": "Bearer", "expires_in": int(h.TokenTTL.Seconds()), "scope": strings.Join(scopes, " "),
	})
}

// tokenBodyLimit bounds a token request: a few form fields.
const tokenBodyLimit = 64 << 10

// tokenError answers in the token endpoint's own format (RFC 6749 §5.2),
// which OAuth 2.0 clients parse, rather than hookbay's error body.
func tokenError(c echo.Context, status int, code, desc string) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, map[string]string{"error": code, "error_description": desc})
}
