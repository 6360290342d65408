package handlers_test

// Bloomreach Engagement's webhook contract, one layer deep: the handler
// with the real error handler and a fake guard. Bloomreach's public
// "Creating API endpoint for webhooks": HTTP 200 for success or for one
// customer's processing failure ({"success":false,"errors":[...]}), 400
// for an invalid request, 429 and 5xx are retried, and 400, 404, 410, 412,
// 413 and 418 stop the webhook for every chunk of the campaign; so a
// problem with one customer is never a 4xx. "Webhooks": any HTTP method,
// JSON, TEXT or XML payloads, batches of up to 1000 customers, replies
// read up to 64 KB, throughput policies shared by webhooks.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

const (
	brUser = "bloomreach"
	brPass = "br-Pa55-S3cret-value"
	brPath = "/bloomreach"
	// brMaxBody is server.max_body_bytes in these tests.
	brMaxBody = 4096
)

// brBasic is HTTP Basic, the scheme Bloomreach supports natively.
func brBasic() handlers.WebhookAuth {
	return handlers.WebhookAuth{Basic: &[2]string{brUser, brPass}}
}

// brHook is a webhook as config fills it in: POST, X-Request-ID.
func brHook(name string, auth handlers.WebhookAuth) *handlers.BloomreachWebhook {
	return &handlers.BloomreachWebhook{Name: name, Methods: []string{http.MethodPost}, Auth: auth, IDHeader: "X-Request-ID", BatchMax: hooks.BloomreachMaxBatch}
}

// brBatchHook is a batch webhook of the CM Telecom example: customers at
// /messages, de-duplicated on /id, each needing a phone.
func brBatchHook(t *testing.T, name string, max int) *handlers.BloomreachWebhook {
	wh := brHook(name, brBasic())
	wh.BatchItems, wh.BatchMax, wh.ItemID = "/messages", max, "/id"
	wh.Item = brSchema(t, brPhoneSchema)
	return wh
}

const brPhoneSchema = `{"type":"object","required":["phone"],"properties":{"phone":{"type":"string"}}}`

// brSchema compiles a JSON Schema as config does.
func brSchema(t testing.TB, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("hookbay:///test.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("hookbay:///test.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newBloomreach serves these webhooks through the real error handler.
func newBloomreach(g *Guard, webhooks ...*handlers.BloomreachWebhook) (*echo.Echo, *handlers.Bloomreach) {
	h := &handlers.Bloomreach{Webhooks: map[string]*handlers.BloomreachWebhook{}, Guard: g, MaxBodyBytes: brMaxBody,
		TokenTTL: time.Hour}
	for _, wh := range webhooks {
		h.Webhooks[wh.Name] = wh
	}
	e := newEcho(g)
	h.Register(e, brPath, "/oauth/token")
	return e, h
}

// brReq is one request as Bloomreach's webhook node sends it.
type brReq struct {
	method string
	name   string // webhook name, or name + "/auth-test"
	query  string
	body   string
	ctype  string // "" sends application/json; "-" sends none
	id     string // X-Request-ID
	auth   string // "" sends brUser:brPass as Basic; "-" sends nothing; else the Authorization value
	header map[string]string
}

func (r brReq) request() *http.Request {
	if r.method == "" {
		r.method = http.MethodPost
	}
	u := brPath + "/" + r.name
	if r.query != "" {
		u += "?" + r.query
	}
	req := httptest.NewRequest(r.method, u, strings.NewReader(r.body))
	switch r.ctype {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", r.ctype)
	}
	switch r.auth {
	case "":
		req.SetBasicAuth(brUser, brPass)
	case "-":
	default:
		req.Header.Set("Authorization", r.auth)
	}
	if r.id != "" {
		req.Header.Set("X-Request-ID", r.id)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return req
}

// brReply is a per-customer reply, in the contract's shape.
type brReply struct {
	Success bool           `json:"success"`
	Result  map[string]any `json:"result"`
	Errors  []brError      `json:"errors"`
}

type brError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// brBatchReply is a batch reply: one result per customer, in order.
type brBatchReply struct {
	Success  bool   `json:"success"`
	Accepted int    `json:"accepted"`
	Failed   int    `json:"failed"`
	Note     string `json:"note"`
	Results  []struct {
		Index   int       `json:"index"`
		ItemID  string    `json:"item_id"`
		Success bool      `json:"success"`
		Errors  []brError `json:"errors"`
	} `json:"results"`
}

func (a answer) brReply(t *testing.T) brReply {
	t.Helper()
	var r brReply
	if err := json.Unmarshal(a.body, &r); err != nil || !validJSON(a.body) {
		t.Fatalf("answer %d is not a Bloomreach reply: %q", a.status, a.body)
	}
	return r
}

func (a answer) brBatch(t *testing.T) brBatchReply {
	t.Helper()
	var r brBatchReply
	if err := json.Unmarshal(a.body, &r); err != nil || !validJSON(a.body) {
		t.Fatalf("answer %d (%d bytes) is not a batch reply: %.300q", a.status, len(a.body), a.body)
	}
	return r
}

// brBatchBody renders a batch as Bloomreach's Root template would, with the
// customers' items at /messages.
func brBatchBody(n int, item func(i int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = item(i)
	}
	return `{"campaign":"spring","messages":[` + strings.Join(items, ",") + `]}`
}

// brSMS is the batch item of the CM Telecom example: every 7th customer
// lacks a phone (1001), every 13th an id (1003).
func brSMS(i int) string {
	var f []string
	if i%13 != 0 {
		f = append(f, fmt.Sprintf(`"id":%d`, i))
	}
	if i%7 != 0 {
		f = append(f, fmt.Sprintf(`"phone":"+42077%07d"`, i))
	}
	f = append(f, `"text":"Spring sale"`)
	return "{" + strings.Join(f, ",") + "}"
}

// brSMSWant is the outcome brSMS's item i must get.
func brSMSWant(i int) (ok bool, code int) {
	switch {
	case i%7 == 0:
		return false, hooks.BRCodeSchema
	case i%13 == 0:
		return false, hooks.BRCodeNoItemID
	}
	return true, 0
}

// Per-customer webhooks: everything about the one customer is answered
// 200 (success true or false); only a request that is wrong for every
// customer gets a 4xx, which stops the campaign.
func TestBloomreach_PerCustomer(t *testing.T) {
	sms := brHook("sms", brBasic())
	sms.Request = brSchema(t, `{"type":"object","required":["campaign"]}`)
	sms.Item = brSchema(t, brPhoneSchema)
	putDelete := brHook("put-delete", brBasic())
	putDelete.Methods = []string{http.MethodPut, http.MethodDelete}
	raw := brHook("raw", brBasic())
	raw.HasAction = true
	g := &Guard{}
	e, _ := newBloomreach(g, sms, putDelete, raw)

	t.Run("Success", func(t *testing.T) {
		a := serve(e, brReq{name: "sms", id: "pc-ok", body: `{"campaign":"c","phone":"+420777000111","text":"hi"}`}.request())
		r := a.brReply(t)
		if a.status != 200 || !r.Success || r.Result["request_id"] != "pc-ok" || len(r.Errors) != 0 {
			t.Fatalf("got %d %s, want 200 {success:true,result:{...request_id}}", a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type=%q: the contract asks for JSON replies", ct)
		}
		// The store action: the receipt is the delivery, its job done at once.
		if r := g.lastReceipt(); r.Job == nil || r.Job.State != hooks.JobDone || g.headers[len(g.headers)-1] != "X-Request-ID" {
			t.Fatalf("receipt job %+v, want one done job, keyed on X-Request-ID", r.Job)
		}
	})
	// "If request processing fails due to input specific to a single
	// request, return HTTP 200 with an error message."
	t.Run("ItemSchemaIs200NotSuccess", func(t *testing.T) {
		a := serve(e, brReq{name: "sms", id: "pc-nophone", body: `{"campaign":"c","text":"hi"}`}.request())
		r := a.brReply(t)
		if a.status != 200 || r.Success || len(r.Errors) != 1 || r.Errors[0].Code != hooks.BRCodeSchema || !strings.Contains(r.Errors[0].Description, "phone") {
			t.Fatalf("got %d %s, want 200 success:false with one 1001 error naming phone", a.status, a.body)
		}
		if rc := g.lastReceipt(); rc.Request.RequestID != "pc-nophone" || rc.Job != nil || !hasNote(rc.Request, "customer refused: schema.item") {
			t.Fatalf("receipt job %v notes %q, want no job for a refused customer", rc.Job, rc.Request.Notes)
		}
	})
	for _, tt := range []struct {
		name string
		r    brReq
		want int
		code string
	}{
		// 400 "the request generated by Bloomreach is invalid due to an
		// incorrect webhook definition": it stops the campaign.
		{"ErrMalformedJSON", brReq{name: "sms", body: `{"campaign":`}, 400, hooks.EINVALID},
		{"ErrTrailingGarbage", brReq{name: "sms", body: `{"campaign":"c","phone":"1"} x`}, 400, hooks.EINVALID},
		{"ErrRequestSchema", brReq{name: "sms", body: `{"phone":"+1"}`}, 400, hooks.EINVALID},
		{"ErrRequestSchemaArray", brReq{name: "sms", body: `[{"campaign":"c"}]`}, 400, hooks.EINVALID},
		// 413 also stops the campaign: the body is over server.max_body_bytes.
		{"ErrTooLarge", brReq{name: "sms", body: `{"campaign":"c","phone":"1","text":"` + strings.Repeat("x", brMaxBody) + `"}`}, 413, hooks.ETOOLARGE},
		// 404 stops the campaign: no such webhook.
		{"ErrUnknownWebhook", brReq{name: "nope", body: `{}`}, 404, hooks.ENOTFOUND},
		{"ErrUnknownWebhookCase", brReq{name: "SMS", body: `{}`}, 404, hooks.ENOTFOUND},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.id = "pc-" + tt.name
			a := serve(e, tt.r.request())
			if a.status != tt.want || a.code(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.want, tt.code)
			}
			// Refused requests are recorded, with the request ID they carried.
			rec := g.last(t)
			if rec.Status != tt.want || rec.RequestID != tt.r.id || (tt.want == 400 && string(rec.Body) != tt.r.body) {
				t.Fatalf("record: status %d id %q body %.80q, want %d %q and the body", rec.Status, rec.RequestID, rec.Body, tt.want, tt.r.id)
			}
		})
	}
	t.Run("ErrMethodNotConfigured", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			a := serve(e, brReq{method: method, name: "sms", id: "pc-m", body: `{"campaign":"c","phone":"1"}`}.request())
			if a.status != 405 || a.header.Get("Allow") != "POST" || a.code(t) != hooks.EMETHOD {
				t.Fatalf("%s: got %d Allow=%q %s, want 405 Allow=POST", method, a.status, a.header.Get("Allow"), a.body)
			}
			if rec := g.last(t); rec.Status != 405 || rec.RequestID != "pc-m" {
				t.Fatalf("record %d %q, want 405 with the request ID", rec.Status, rec.RequestID)
			}
		}
	})
	// "select the appropriate HTTP method (GET, POST, PUT, PATCH, or DELETE)".
	t.Run("ConfiguredMethods", func(t *testing.T) {
		for _, method := range []string{http.MethodPut, http.MethodDelete} {
			a := serve(e, brReq{method: method, name: "put-delete", id: "pd-" + method, body: `{"customer":"c1"}`}.request())
			if a.status != 200 || !a.brReply(t).Success || g.lastReceipt().Request.Method != method {
				t.Fatalf("%s: got %d %s, want 200 success recorded as %s", method, a.status, a.body, method)
			}
		}
		a := serve(e, brReq{name: "put-delete", body: `{}`}.request())
		if a.status != 405 || a.header.Get("Allow") != "PUT, DELETE" {
			t.Fatalf("POST: got %d Allow=%q, want 405 Allow=%q", a.status, a.header.Get("Allow"), "PUT, DELETE")
		}
	})
	// JSON, TEXT or XML payloads; "Bloomreach supports any content type in requests".
	for _, tt := range []struct{ name, ctype, body string }{
		{"PlainText", "text/plain; charset=utf-8", "Hello {{ customer.first_name }}, your code is 42.\n"},
		{"XML", "application/xml", `<?xml version="1.0"?><sms><to>+420777</to><text>hi &amp; bye</text></sms>`},
		{"TextLooksLikeBrokenJSON", "text/plain", `{"not":"json"`},
	} {
		t.Run("NotJSON"+tt.name, func(t *testing.T) {
			a := serve(e, brReq{name: "raw", ctype: tt.ctype, id: "raw-" + tt.name, body: tt.body}.request())
			if a.status != 200 || !a.brReply(t).Success {
				t.Fatalf("got %d %s, want 200 success", a.status, a.body)
			}
			r := g.lastReceipt()
			if string(r.Request.Body) != tt.body || !hasNote(r.Request, "body is not JSON: stored and delivered as-is; schemas not applied") {
				t.Fatalf("stored body %q notes %q, want the bytes as sent and a note", r.Request.Body, r.Request.Notes)
			}
			if r.Job == nil || r.Job.State != hooks.JobAvailable {
				t.Fatalf("job %+v, want one queued for the webhook's action", r.Job)
			}
		})
	}
}

// Batch webhooks: up to 1000 customers. A 4xx fails every customer of the
// batch, so a bad customer is reported in its own result and the others
// are queued.
func TestBloomreach_Batch(t *testing.T) {
	g := &Guard{}
	e, h := newBloomreach(g, brBatchHook(t, "batch", hooks.BloomreachMaxBatch), brBatchHook(t, "small", 10))
	h.MaxBodyBytes = 1 << 20

	t.Run("Thousand", func(t *testing.T) {
		a := serve(e, brReq{name: "batch", id: "b-1000", body: brBatchBody(1000, brSMS)}.request())
		if a.status != 200 || len(a.body) > hooks.BloomreachMaxReply {
			t.Fatalf("got %d (%d bytes), want 200 under 64 KB", a.status, len(a.body))
		}
		r := a.brBatch(t)
		if r.Note != "" || len(r.Results) != 1000 {
			t.Fatalf("note %q results %d: this reply fits in 64 KB and keeps every error", r.Note, len(r.Results))
		}
		accepted := 0
		for i, res := range r.Results {
			ok, code := brSMSWant(i)
			if res.Index != i || res.Success != ok {
				t.Fatalf("results[%d]={index %d success %v}, want {index %d success %v}", i, res.Index, res.Success, i, ok)
			}
			if ok {
				accepted++
				if res.ItemID != strconv.Itoa(i) || len(res.Errors) != 0 {
					t.Fatalf("results[%d]=%+v, want item_id %d and no errors", i, res, i)
				}
				continue
			}
			if len(res.Errors) != 1 || res.Errors[0].Code != code || res.Errors[0].Description == "" {
				t.Fatalf("results[%d].errors=%+v, want one error with code %d", i, res.Errors, code)
			}
		}
		if accepted != 791 || r.Accepted != accepted || r.Failed != 1000-accepted || r.Success {
			t.Fatalf("accepted=%d failed=%d success=%v, want %d, %d, false", r.Accepted, r.Failed, r.Success, accepted, 1000-accepted)
		}
		// Exactly the valid customers are queued, each with its own key and bytes.
		items := g.lastReceipt().Items
		if len(items) != accepted || items[0].Key != "batch/item:1" || string(items[0].Job.Payload) != brSMS(1) {
			t.Fatalf("receipt items=%d first %+v, want %d keyed on item_id", len(items), items[0], accepted)
		}
	})
	t.Run("ItemNotObject", func(t *testing.T) {
		a := serve(e, brReq{name: "batch", id: "b-notobj", body: `{"messages":[{"id":"o1","phone":"+1"},"text",42,null,[]]}`}.request())
		r := a.brBatch(t)
		if a.status != 200 || r.Accepted != 1 || r.Failed != 4 || len(r.Results) != 5 {
			t.Fatalf("got %d %s", a.status, a.body)
		}
		for _, res := range r.Results[1:] {
			if res.Success || len(res.Errors) != 1 || res.Errors[0].Code != hooks.BRCodeNotObject {
				t.Fatalf("result %+v, want code 1002", res)
			}
		}
	})
	// A batch is JSON whatever its Content-Type says: its items are read;
	// the request schema applies to JSON requests only.
	t.Run("DeclaredText", func(t *testing.T) {
		a := serve(e, brReq{name: "batch", id: "b-text", ctype: "text/plain", body: `{"messages":[{"id":"t1","phone":"+1"},{"id":"t2"}]}`}.request())
		if r := a.brBatch(t); a.status != 200 || r.Accepted != 1 || r.Failed != 1 {
			t.Fatalf("got %d %s, want 200 with one customer accepted", a.status, a.body)
		}
	})
	t.Run("MaxExactly", func(t *testing.T) {
		body := brBatchBody(10, func(i int) string { return fmt.Sprintf(`{"id":"s%d","phone":"+1"}`, i) })
		if a := serve(e, brReq{name: "small", id: "b-small10", body: body}.request()); a.status != 200 || a.brBatch(t).Accepted != 10 {
			t.Fatalf("10 items on max 10: got %d %s", a.status, a.body)
		}
	})
	for _, tt := range []struct {
		name, hook string
		body       string
	}{
		{"Err1001Items", "batch", brBatchBody(1001, func(i int) string { return "{}" })},
		{"ErrOverMax", "small", brBatchBody(11, brSMS)},
		{"ErrItemsObject", "batch", `{"messages":{"0":{"id":1,"phone":"+1"}}}`},
		{"ErrItemsString", "batch", `{"messages":"[]"}`},
		{"ErrItemsNull", "batch", `{"messages":null}`},
		{"ErrItemsMissing", "batch", `{"customers":[{"id":1,"phone":"+1"}]}`},
		{"ErrRootArray", "batch", `[{"id":1,"phone":"+1"}]`},
		{"ErrNotJSON", "batch", `{"messages":[`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := g.counts()
			a := serve(e, brReq{name: tt.hook, id: "b-" + tt.name, body: tt.body}.request())
			if a.status != 400 || a.code(t) != hooks.EINVALID {
				t.Fatalf("got %d %.300s, want 400 invalid", a.status, a.body)
			}
			if after, _ := g.counts(); after != before || g.last(t).Status != 400 {
				t.Fatalf("a refused batch wrote a receipt, or was not recorded")
			}
		})
	}
	t.Run("ErrWrongCredentials", func(t *testing.T) {
		body := brBatchBody(2, func(i int) string { return fmt.Sprintf(`{"id":"c%d","phone":"+1"}`, i) })
		if a := serve(e, brReq{name: "batch", auth: "Basic Ym9ndXM6Ym9ndXM=", body: body}.request()); a.status != 401 || a.code(t) != hooks.EUNAUTHORIZED {
			t.Fatalf("got %d %s, want 401", a.status, a.body)
		}
	})
}

// "Webhook can process the responses up to 64KB of raw unparsed data":
// whatever the batch, the reply fits.
func TestBloomreach_ReplySize(t *testing.T) {
	var alts []string
	for i := range 40 {
		alts = append(alts, fmt.Sprintf("%03d", 100+i*7))
	}
	long := brBatchHook(t, "long", hooks.BloomreachMaxBatch)
	long.Item = brSchema(t, `{"type":"object","properties":{"phone":{"type":"string","pattern":"^\\+(`+strings.Join(alts, "|")+`)[0-9]{6,12}$"}}}`)
	plain := brBatchHook(t, "plain", hooks.BloomreachMaxBatch)
	plain.Item = nil
	g := &Guard{}
	e, h := newBloomreach(g, long, plain)
	h.MaxBodyBytes = 1 << 20
	check := func(t *testing.T, a answer, accepted int) brBatchReply {
		t.Helper()
		if a.status != 200 || len(a.body) > hooks.BloomreachMaxReply {
			t.Fatalf("got %d with %d bytes, want 200 within the %d Bloomreach reads", a.status, len(a.body), hooks.BloomreachMaxReply)
		}
		r := a.brBatch(t)
		if len(r.Results) != 1000 || r.Accepted != accepted || r.Failed != 1000-accepted {
			t.Fatalf("results=%d accepted=%d failed=%d, want 1000, %d, %d", len(r.Results), r.Accepted, r.Failed, accepted, 1000-accepted)
		}
		for i, res := range r.Results {
			if res.Index != i || res.Success != (accepted > 0) {
				t.Fatalf("results[%d]=%+v", i, res)
			}
		}
		return r
	}
	t.Run("EveryItemFailsLong", func(t *testing.T) {
		body := brBatchBody(1000, func(i int) string { return fmt.Sprintf(`{"id":"x%d","phone":"+999%08d"}`, i, i) })
		r := check(t, serve(e, brReq{name: "long", id: "size-long", body: body}.request()), 0)
		if !strings.Contains(r.Note, "error details left out") {
			t.Fatalf("note=%q, want it to say error details were left out", r.Note)
		}
		// The first customers keep their details; the cut ones keep their flag.
		if e := r.Results[0].Errors; len(e) != 1 || e[0].Code != hooks.BRCodeSchema || !strings.Contains(e[0].Description, "pattern") {
			t.Fatalf("results[0].errors=%+v, want the schema error", e)
		}
		if len(r.Results[999].Errors) != 0 {
			t.Fatalf("results[999] kept its errors in a reply that had to be cut")
		}
		if rec := g.lastReceipt().Request; string(rec.Body) != body {
			t.Fatalf("the record does not keep the request as sent")
		}
	})
	// Item IDs are echoed in each result; long ones must not push the reply
	// over what Bloomreach reads either.
	t.Run("LongItemIDs", func(t *testing.T) {
		body := brBatchBody(1000, func(i int) string {
			return fmt.Sprintf(`{"id":"customer-%04d-%s","phone":"+1"}`, i, strings.Repeat("z", 90))
		})
		check(t, serve(e, brReq{name: "plain", id: "size-ids", body: body}.request()), 1000)
	})
}

// Throughput policies: past the limit a request gets 429 or 503, both
// retried by Bloomreach ("you can use HTTP 500 or connection reject to
// throttle concurrent requests"), with Retry-After; shared by the
// webhooks that name the same policy.
func TestBloomreach_Throttle(t *testing.T) {
	rate := brHook("rate", brBasic())
	rate.Throttle = hooks.NewThrottle(1, 1, 0, 0)
	shared := hooks.NewThrottle(1, 1, 0, 0)
	a, b := brHook("a", brBasic()), brHook("b", brBasic())
	a.Throttle, b.Throttle = shared, shared
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := brHook("slow", brBasic())
	slow.Throttle = hooks.NewThrottle(0, 0, 1, http.StatusServiceUnavailable)
	slow.HasAction = true
	slow.InlineAction = func(ctx context.Context, j *hooks.Job) ([]byte, error) {
		arrived <- struct{}{}
		<-release
		return []byte(`{"ok":true}`), nil
	}
	g := &Guard{}
	e, _ := newBloomreach(g, rate, a, b, slow)
	retryAfter := func(t *testing.T, x answer) {
		t.Helper()
		if n, err := strconv.Atoi(x.header.Get("Retry-After")); err != nil || n < 1 {
			t.Fatalf("Retry-After=%q, want a whole number of seconds >= 1", x.header.Get("Retry-After"))
		}
	}
	t.Run("Rate", func(t *testing.T) {
		if x := serve(e, brReq{name: "rate", id: "th-1", body: `{}`}.request()); x.status != 200 {
			t.Fatalf("first: %d %s", x.status, x.body)
		}
		x := serve(e, brReq{name: "rate", id: "th-2", body: `{}`}.request())
		if x.status != 429 || x.code(t) != hooks.ETHROTTLED {
			t.Fatalf("second at once: %d %s, want 429", x.status, x.body)
		}
		retryAfter(t, x)
		if rec := g.last(t); rec.Status != 429 || !hasNote(rec, "throttled") {
			t.Fatalf("throttled request recorded with status %d, notes %q", rec.Status, rec.Notes)
		}
	})
	t.Run("SharedPolicy", func(t *testing.T) {
		if x := serve(e, brReq{name: "a", body: `{}`}.request()); x.status != 200 {
			t.Fatalf("a: %d %s", x.status, x.body)
		}
		x := serve(e, brReq{name: "b", body: `{}`}.request())
		if x.status != 429 {
			t.Fatalf("b right after a on a shared 1/s policy: %d %s, want 429", x.status, x.body)
		}
		retryAfter(t, x)
	})
	t.Run("MaxInFlight", func(t *testing.T) {
		var wg sync.WaitGroup
		var first answer
		wg.Add(1)
		go func() {
			defer wg.Done()
			first = serve(e, brReq{name: "slow", id: "fl-1", body: `{"phone":"+1"}`}.request())
		}()
		<-arrived
		x := serve(e, brReq{name: "slow", id: "fl-2", body: `{"phone":"+2"}`}.request())
		close(release)
		wg.Wait()
		if x.status != 503 || x.code(t) != hooks.EUNAVAILABLE {
			t.Fatalf("second while the first is in flight: %d %s, want 503", x.status, x.body)
		}
		retryAfter(t, x)
		if first.status != 200 {
			t.Fatalf("first: %d %s, want 200", first.status, first.body)
		}
		// The slot is free again.
		go func() { <-arrived }()
		if x := serve(e, brReq{name: "slow", id: "fl-3", body: `{"phone":"+3"}`}.request()); x.status != 200 {
			t.Fatalf("after the first finished: %d %s, want 200", x.status, x.body)
		}
	})
}

// An inline per-customer webhook answers with the integrator's reply when
// it has Bloomreach's shape, wraps any other output as the result, and
// asks for a retry (503) when the action fails.
func TestBloomreach_InlineReply(t *testing.T) {
	for _, tt := range []struct {
		name   string
		out    string
		err    error
		status int
		want   string // the whole reply; "" checks the wrapped result
	}{
		{"Shaped", `{"success":false,"errors":[{"code":7,"description":"no such phone"}]}`, nil, 200, `{"success":false,"errors":[{"code":7,"description":"no such phone"}]}`},
		{"ShapedTrue", `{"success":true,"result":{"status":"sent"}}`, nil, 200, `{"success":true,"result":{"status":"sent"}}`},
		{"OtherJSON", `{"sent":1}`, nil, 200, `{"success":true,"result":{"sent":1}}`},
		{"NotJSON", `sent`, nil, 200, `{"success":true,"result":{"code":1,"status":"delivered"}}`},
		{"Failed", ``, fmt.Errorf("downstream 500"), 503, ""},
		{"TooLong", ``, &hooks.OutputTooLargeError{Max: 10}, 200, `{"success":true,"result":{"code":1,"status":"delivered"}}`},
		// The reply is JSON text whatever the action answered.
		{"NotUTF8", "{\"success\":true,\"m\":\"\xff\"}", nil, 200, `{"success":true,"result":{"code":1,"status":"delivered"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wh := brHook("inline", brBasic())
			wh.HasAction = true
			wh.InlineAction = func(context.Context, *hooks.Job) ([]byte, error) { return []byte(tt.out), tt.err }
			g := &Guard{}
			e, _ := newBloomreach(g, wh)
			a := serve(e, brReq{name: "inline", id: "in-" + tt.name, body: `{"phone":"+1"}`}.request())
			if a.status != tt.status || (tt.want != "" && string(a.body) != tt.want) {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.status, tt.want)
			}
			if tt.status == 503 && a.code(t) != hooks.EUNAVAILABLE {
				t.Fatalf("answer %s, want code unavailable", a.body)
			}
			if g.runs != 1 {
				t.Fatalf("runs=%d, want the action run inline once", g.runs)
			}
			if r := g.lastReceipt(); tt.status == 200 && (r.Job == nil || r.Job.State != hooks.JobDone) {
				t.Fatalf("job %+v, want the inline delivery recorded done", r.Job)
			}
		})
	}
}

// The guard's classes reach Bloomreach as statuses it reads right: a twin
// still being processed is 429 (retried; 409 would fail the campaign
// event), a body cut off on the way 503.
func TestBloomreach_GuardErrors(t *testing.T) {
	g := &Guard{CommitFn: func(context.Context, *hooks.Receipt, string) (hooks.Response, error) {
		return hooks.Response{}, hooks.Errorf(hooks.ECONFLICT, "a request with this ID is still being processed")
	}}
	e, _ := newBloomreach(g, brHook("sms", brBasic()))
	a := serve(e, brReq{name: "sms", id: "twin", body: `{}`}.request())
	if a.status != 429 || a.code(t) != hooks.ECONFLICT || a.header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s Retry-After=%q, want 429 conflict with Retry-After", a.status, a.body, a.header.Get("Retry-After"))
	}
	req := brReq{name: "sms", id: "cut"}.request()
	req.Body = &cutBody{data: []byte(`{"phone":`)}
	req.ContentLength = -1
	if a := serve(e, req); a.status != 503 || a.code(t) != hooks.EINCOMPLETE {
		t.Fatalf("cut-off body: got %d %s, want 503 incomplete", a.status, a.body)
	}
}

// cutBody returns its data, then fails as a connection that ended early.
type cutBody struct{ data []byte }

func (b *cutBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func (b *cutBody) Close() error { return nil }

// "The test endpoint must accept an empty request body, validate the
// credentials, and must respond with HTTP 200 Success", whatever the
// method.
func TestBloomreach_AuthTest(t *testing.T) {
	wh := brHook("sms", brBasic())
	wh.Methods = []string{http.MethodPut}
	g := &Guard{}
	e, _ := newBloomreach(g, wh)
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		a := serve(e, brReq{method: method, name: "sms/auth-test", ctype: "-"}.request())
		if a.status != 200 || !a.brReply(t).Success {
			t.Fatalf("%s with credentials: %d %s, want 200 success", method, a.status, a.body)
		}
		for _, auth := range []string{"-", "Basic " + base64.StdEncoding.EncodeToString([]byte(brUser+":wrong"))} {
			a := serve(e, brReq{method: method, name: "sms/auth-test", ctype: "-", auth: auth}.request())
			if a.status != 401 || a.code(t) != hooks.EUNAUTHORIZED || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("%s with %q: %d %s, want 401 with a Basic challenge", method, auth, a.status, a.body)
			}
		}
	}
	if a := serve(e, brReq{name: "nope/auth-test", ctype: "-"}.request()); a.status != 404 {
		t.Fatalf("auth-test of an unknown webhook: %d, want 404", a.status)
	}
	if receipts, records := g.counts(); receipts != 0 || records != 13 {
		t.Fatalf("receipts=%d records=%d: auth tests queue nothing and are all recorded", receipts, records)
	}
	if rec := g.last(t); rec.Name != "nope/auth-test" || !bytes.Equal(rec.Body, nil) {
		t.Fatalf("newest record %q body %q", rec.Name, rec.Body)
	}
}
