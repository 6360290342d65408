package cli

// End-to-end tests of the Bloomreach Engagement receiver, through a real
// listening server. The contracts are in /work/shared/contracts:
//
//   - bloomreach-endpoint-requirements.txt ("Creating API endpoint for
//     webhooks"): HTTP 200 for success or a processing failure of one
//     customer ({"success":false,"errors":[...]}), 400 for an invalid
//     request, 500+ and 429 are retried, and the 4xx codes 400, 404, 410,
//     412, 413 and 418 stop the webhook for all chunks of the campaign. So a
//     problem with one customer must never be a 4xx. It also asks for at
//     least 200 concurrent requests, answers under 1 s and idempotency on a
//     unique request identifier.
//   - bloomreach-webhooks.txt: any HTTP method (GET, POST, PUT, PATCH,
//     DELETE), JSON, TEXT or XML payloads, batches of up to 1000 customers,
//     replies read up to 64 KB, throughput policies shared by webhooks, and
//     the authentication test ("must accept an empty request body ...
//     respond with HTTP 200").

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
	"github.com/hookbay/hookbay/store/sqlite"
)

const (
	brUser = "bloomreach"
	brPass = "br-Pa55-S3cret-value"
	// brPath is bloomreach.path's default.
	brPath = "/bloomreach"
	// brMaxReply is what Bloomreach reads of a reply (bloomreach-webhooks.txt,
	// "Webhook can process the responses up to 64KB of raw unparsed data").
	brMaxReply = 64 << 10
)

// brBasic is HTTP Basic authentication, the scheme Bloomreach supports
// natively (bloomreach-endpoint-requirements.txt, "Authentication").
func brBasic() config.WebhookAuth {
	return config.WebhookAuth{Basic: &config.BasicAuth{Username: brUser, Password: brPass}}
}

// brMain runs hookbay with these Bloomreach webhooks.
func brMain(t *testing.T, webhooks map[string]config.WebhookConfig, mutate func(*config.Config)) *Main {
	t.Helper()
	return MustRunMain(t, func(c *config.Config) {
		c.Bloomreach.Webhooks = webhooks
		if mutate != nil {
			mutate(c)
		}
	})
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

// brClient keeps enough connections open for the concurrency test.
var brClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}

func brDo(client *http.Client, base string, r brReq) (answer, error) {
	if r.method == "" {
		r.method = http.MethodPost
	}
	u := base + brPath + "/" + r.name
	if r.query != "" {
		u += "?" + r.query
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, u, body)
	if err != nil {
		return answer{}, err
	}
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
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, resp.Header, b}, nil
}

func brSend(t testing.TB, m *Main, r brReq) answer {
	t.Helper()
	a, err := brDo(brClient, "http://"+m.Addr(), r)
	if err != nil {
		t.Fatal(err)
	}
	return a
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
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("answer %d is not a Bloomreach reply: %q", a.status, a.body)
	}
	return r
}

func (a answer) brBatch(t *testing.T) brBatchReply {
	t.Helper()
	var r brBatchReply
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("answer %d (%d bytes) is not a batch reply: %.300q", a.status, len(a.body), a.body)
	}
	return r
}

// brBatchBody renders a batch as Bloomreach's Root template would, with the
// customers' items (the Customer template's output) at /messages.
func brBatchBody(n int, item func(i int) string) (string, []string) {
	items := make([]string, n)
	for i := range items {
		items[i] = item(i)
	}
	return `{"campaign":"spring","messages":[` + strings.Join(items, ",") + `]}`, items
}

// brRecord returns the single original record of a request ID.
func brRecord(t *testing.T, m *Main, id string) *hooks.Request {
	t.Helper()
	var out []*hooks.Request
	for _, r := range requests(t, m, sqlite.RequestFilter{Sender: hooks.SenderBloomreach, RequestID: id}) {
		if r.DuplicateOf == 0 {
			out = append(out, r)
		}
	}
	if len(out) != 1 {
		t.Fatalf("original records of %q = %d, want 1", id, len(out))
	}
	return out[0]
}

// brLatest returns the newest record of a webhook (or webhook/auth-test).
func brLatest(t *testing.T, m *Main, name string) *hooks.Request {
	t.Helper()
	recs := requests(t, m, sqlite.RequestFilter{Sender: hooks.SenderBloomreach, Name: name, Limit: 1})
	if len(recs) != 1 {
		t.Fatalf("no record of %s", name)
	}
	return recs[0]
}

// brJobs counts the jobs a request record queued.
func brJobs(t *testing.T, m *Main, ref int64) int {
	t.Helper()
	return len(jobs(t, m, sqlite.JobFilter{RequestRef: ref, Limit: 5000}))
}

func brPhoneSchema() map[string]any {
	return map[string]any{"type": "object", "required": []any{"phone"},
		"properties": map[string]any{"phone": map[string]any{"type": "string"}}}
}

// Per-customer webhooks: one customer per request. Everything about that
// customer is answered 200 (success true or false); only a request that is
// wrong for every customer gets a 4xx, which stops the campaign.
func TestBloomreach_PerCustomer(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{
		"sms": {Auth: brBasic(), Schema: config.SchemaConfig{
			Request: map[string]any{"type": "object", "required": []any{"campaign"}},
			Item:    brPhoneSchema(),
		}},
		"put-delete": {Auth: brBasic(), Methods: []string{"put", "DELETE"}},
		"raw":        {Auth: brBasic()},
	}, func(c *config.Config) { c.Server.MaxBodyBytes = 2048 })

	t.Run("Success", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "sms", id: "pc-ok", body: `{"campaign":"c","phone":"+420777000111","text":"hi"}`})
		r := a.brReply(t)
		if a.status != 200 || !r.Success || r.Result == nil || len(r.Errors) != 0 {
			t.Fatalf("got %d %s, want 200 {success:true,result:{...}}", a.status, a.body)
		}
		if r.Result["request_id"] != "pc-ok" {
			t.Errorf("result=%v, want it to name the request ID", r.Result)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type=%q: the contract asks for JSON replies", ct)
		}
		if n := brJobs(t, m, brRecord(t, m, "pc-ok").ID); n != 1 {
			t.Fatalf("jobs=%d, want 1", n)
		}
	})
	// "If request processing fails due to input specific to a single
	// request, return HTTP 200 with an error message."
	t.Run("ItemSchemaIs200NotSuccess", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "sms", id: "pc-nophone", body: `{"campaign":"c","text":"hi"}`})
		r := a.brReply(t)
		if a.status != 200 || r.Success || len(r.Errors) != 1 || r.Errors[0].Code != hooks.BRCodeSchema || r.Errors[0].Description == "" {
			t.Fatalf("got %d %s, want 200 success:false with one error code 1001", a.status, a.body)
		}
		if !strings.Contains(r.Errors[0].Description, "phone") {
			t.Errorf("description %q does not say what is wrong", r.Errors[0].Description)
		}
		if n := brJobs(t, m, brRecord(t, m, "pc-nophone").ID); n != 0 {
			t.Fatalf("jobs=%d, want none for a refused customer", n)
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
		{"ErrMalformedJSON", brReq{name: "sms", body: `{"campaign":`}, 400, "invalid"},
		{"ErrTrailingGarbage", brReq{name: "sms", body: `{"campaign":"c","phone":"1"} x`}, 400, "invalid"},
		{"ErrRequestSchema", brReq{name: "sms", body: `{"phone":"+1"}`}, 400, "invalid"},
		{"ErrRequestSchemaArray", brReq{name: "sms", body: `[{"campaign":"c"}]`}, 400, "invalid"},
		// 413 also stops the campaign: the body is over server.max_body_bytes.
		{"ErrTooLarge", brReq{name: "sms", body: `{"campaign":"c","phone":"1","text":"` + strings.Repeat("x", 4000) + `"}`}, 413, "too_large"},
		// 404 stops the campaign: no such webhook.
		{"ErrUnknownWebhook", brReq{name: "nope", body: `{}`}, 404, "not_found"},
		{"ErrUnknownWebhookCase", brReq{name: "SMS", body: `{}`}, 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.id = "pc-" + tt.name
			a := brSend(t, m, tt.r)
			if obj := a.json(t); a.status != tt.want || obj["code"] != tt.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tt.want, tt.code)
			}
			// Refused requests are recorded too: QA reads what the sender did.
			if rec := brLatest(t, m, tt.r.name); rec.Status != tt.want || tt.want == 400 && !bytes.Equal(rec.Body, []byte(tt.r.body)) {
				t.Fatalf("newest record of %s: status %d body %.100q, want %d and the body", tt.r.name, rec.Status, rec.Body, tt.want)
			}
		})
	}
	t.Run("ErrMethodNotConfigured", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			a := brSend(t, m, brReq{method: method, name: "sms", body: `{"campaign":"c","phone":"1"}`})
			if a.status != 405 || a.header.Get("Allow") != "POST" || a.json(t)["code"] != "method" {
				t.Fatalf("%s: got %d Allow=%q %s, want 405 Allow=POST", method, a.status, a.header.Get("Allow"), a.body)
			}
		}
	})
	// bloomreach-webhooks.txt: "select the appropriate HTTP method (GET,
	// POST, PUT, PATCH, or DELETE)".
	t.Run("ConfiguredMethods", func(t *testing.T) {
		for _, method := range []string{http.MethodPut, http.MethodDelete} {
			a := brSend(t, m, brReq{method: method, name: "put-delete", id: "pd-" + method, body: `{"customer":"c1"}`})
			if a.status != 200 || !a.brReply(t).Success {
				t.Fatalf("%s: got %d %s, want 200 success", method, a.status, a.body)
			}
			if rec := brRecord(t, m, "pd-"+method); rec.Method != method {
				t.Fatalf("recorded method=%s, want %s", rec.Method, method)
			}
		}
		a := brSend(t, m, brReq{name: "put-delete", body: `{}`})
		if a.status != 405 || a.header.Get("Allow") != "PUT, DELETE" {
			t.Fatalf("POST: got %d Allow=%q, want 405 Allow=%q", a.status, a.header.Get("Allow"), "PUT, DELETE")
		}
	})
	// bloomreach-webhooks.txt: the payload format is JSON, TEXT or XML;
	// bloomreach-endpoint-requirements.txt: "Bloomreach supports any content
	// type in requests".
	for _, tt := range []struct{ name, ctype, body string }{
		{"PlainText", "text/plain; charset=utf-8", "Hello {{ customer.first_name }}, your code is 42.\n"},
		{"XML", "application/xml", `<?xml version="1.0"?><sms><to>+420777</to><text>hi &amp; bye</text></sms>`},
		{"TextLooksLikeBrokenJSON", "text/plain", `{"not":"json"`},
	} {
		t.Run("NotJSON"+tt.name, func(t *testing.T) {
			id := "raw-" + tt.name
			a := brSend(t, m, brReq{name: "raw", ctype: tt.ctype, id: id, body: tt.body})
			if a.status != 200 || !a.brReply(t).Success {
				t.Fatalf("got %d %s, want 200 success", a.status, a.body)
			}
			rec := brRecord(t, m, id)
			if !bytes.Equal(rec.Body, []byte(tt.body)) {
				t.Fatalf("stored body=%q, want the bytes as sent %q", rec.Body, tt.body)
			}
			if !contains(rec.Notes, "body is not JSON: stored and delivered as-is; schemas not applied") {
				t.Fatalf("notes=%q, want one saying the body is not JSON", rec.Notes)
			}
			if n := brJobs(t, m, rec.ID); n != 1 {
				t.Fatalf("jobs=%d, want 1", n)
			}
		})
	}
}

// brSMS is the batch item of the CM Telecom example
// (bloomreach-webhooks.txt, "Sending SMS in batches"): every 7th customer
// lacks a phone (schema.item, 1001), every 13th an id (item_id, 1003).
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

func brBatchHook(max int) config.WebhookConfig {
	return config.WebhookConfig{Auth: brBasic(), Batch: &config.BatchConfig{Items: "/messages", Max: max},
		RequestID: config.RequestIDConfig{ItemID: "/id"}, Schema: config.SchemaConfig{Item: brPhoneSchema()}}
}

// Batch webhooks: up to 1000 customers (bloomreach-webhooks.txt, "The
// resulting batch request may contain up to 1000 customers"). A 4xx fails
// every customer of the batch (bloomreach-endpoint-requirements.txt), so a
// bad customer is reported in its own result and the others are queued.
func TestBloomreach_Batch(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{
		"batch": brBatchHook(0),
		"small": brBatchHook(10),
	}, nil)

	t.Run("Thousand", func(t *testing.T) {
		body, _ := brBatchBody(1000, brSMS)
		a := brSend(t, m, brReq{name: "batch", id: "b-1000", body: body})
		if a.status != 200 {
			t.Fatalf("status=%d %.300s, want 200", a.status, a.body)
		}
		if len(a.body) > brMaxReply {
			t.Fatalf("reply is %d bytes, over Bloomreach's 64 KB", len(a.body))
		}
		r := a.brBatch(t)
		if r.Note != "" {
			t.Fatalf("note=%q: this reply fits in 64 KB and should keep every error (%d bytes)", r.Note, len(a.body))
		}
		if len(r.Results) != 1000 {
			t.Fatalf("results=%d, want 1000", len(r.Results))
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
		// Exactly the valid customers are queued, one job each.
		if n := brJobs(t, m, brRecord(t, m, "b-1000").ID); n != accepted {
			t.Fatalf("jobs=%d, want %d", n, accepted)
		}
	})
	t.Run("AllValid", func(t *testing.T) {
		body, _ := brBatchBody(3, func(i int) string { return fmt.Sprintf(`{"id":"v%d","phone":"+1"}`, i) })
		a := brSend(t, m, brReq{name: "batch", id: "b-valid", body: body})
		if r := a.brBatch(t); a.status != 200 || !r.Success || r.Accepted != 3 || r.Failed != 0 {
			t.Fatalf("got %d %s, want 200 success with 3 accepted", a.status, a.body)
		}
	})
	t.Run("ItemNotObject", func(t *testing.T) {
		a := brSend(t, m, brReq{name: "batch", id: "b-notobj", body: `{"messages":[{"id":"o1","phone":"+1"},"text",42,null,[]]}`})
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
	before := len(jobs(t, m, sqlite.JobFilter{Name: "batch", Limit: 5000}))
	for _, tt := range []struct {
		name, hook string
		body       string
	}{
		{"Err1001Items", "batch", func() string { b, _ := brBatchBody(1001, brSMS); return b }()},
		{"ErrOverMax", "small", func() string { b, _ := brBatchBody(11, brSMS); return b }()},
		{"ErrItemsObject", "batch", `{"messages":{"0":{"id":1,"phone":"+1"}}}`},
		{"ErrItemsString", "batch", `{"messages":"[]"}`},
		{"ErrItemsNull", "batch", `{"messages":null}`},
		{"ErrItemsMissing", "batch", `{"customers":[{"id":1,"phone":"+1"}]}`},
		{"ErrRootArray", "batch", `[{"id":1,"phone":"+1"}]`},
		{"ErrNotJSON", "batch", `{"messages":[`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "b-" + tt.name
			a := brSend(t, m, brReq{name: tt.hook, id: id, body: tt.body})
			if a.status != 400 || a.json(t)["code"] != "invalid" {
				t.Fatalf("got %d %.300s, want 400 invalid", a.status, a.body)
			}
			if rec := brLatest(t, m, tt.hook); rec.Status != 400 || brJobs(t, m, rec.ID) != 0 {
				t.Fatalf("newest record: status %d with %d jobs, want 400 and nothing queued from a refused batch", rec.Status, brJobs(t, m, rec.ID))
			}
		})
	}
	// A batch over server.max_body_bytes gets 413 (it stops the campaign:
	// the batch size must come down), and one with wrong credentials 401.
	big, _ := brBatchBody(1000, func(i int) string {
		return fmt.Sprintf(`{"id":"big%d","phone":"+1","text":%q}`, i, strings.Repeat("x", 1100))
	})
	valid, _ := brBatchBody(2, func(i int) string { return fmt.Sprintf(`{"id":"c%d","phone":"+1"}`, i) })
	for _, tt := range []struct {
		name string
		r    brReq
		want int
		code string
	}{
		{"ErrTooLarge", brReq{name: "batch", id: "b-big", body: big}, 413, "too_large"},
		{"ErrWrongCredentials", brReq{name: "batch", id: "b-creds", auth: "Basic Ym9ndXM6Ym9ndXM=", body: valid}, 401, "unauthorized"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if a := brSend(t, m, tt.r); a.status != tt.want || a.json(t)["code"] != tt.code {
				t.Fatalf("got %d %.300s, want %d %s", a.status, a.body, tt.want, tt.code)
			}
		})
	}
	if after := len(jobs(t, m, sqlite.JobFilter{Name: "batch", Limit: 5000})); after != before {
		t.Fatalf("jobs of batch went from %d to %d on refused batches", before, after)
	}
	t.Run("MaxExactly", func(t *testing.T) {
		body, _ := brBatchBody(10, func(i int) string { return fmt.Sprintf(`{"id":"s%d","phone":"+1"}`, i) })
		if a := brSend(t, m, brReq{name: "small", id: "b-small10", body: body}); a.status != 200 || a.brBatch(t).Accepted != 10 {
			t.Fatalf("10 items on max 10: got %d %s", a.status, a.body)
		}
	})
}

// Each accepted customer is delivered on its own, as the exact bytes
// Bloomreach's Customer template rendered.
func TestBloomreach_BatchDelivery(t *testing.T) {
	d := newDownstream(t)
	hook := brBatchHook(0)
	hook.Action = forwardTo(d.URL)
	m := brMain(t, map[string]config.WebhookConfig{"batch": hook}, nil)
	body, items := brBatchBody(20, func(i int) string {
		if i == 5 {
			return `{"id":"d5"}` // no phone: refused
		}
		return fmt.Sprintf("{ \"id\" : \"d%d\",\n  \"phone\":\"+1%03d\", \"text\":\"caf\\u00e9 \\/ %d\" }", i, i, i)
	})
	a := brSend(t, m, brReq{name: "batch", id: "bd-1", body: body})
	if r := a.brBatch(t); a.status != 200 || r.Accepted != 19 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	waitUntil(t, 5*time.Second, "19 deliveries", func() bool { return len(d.deliveries()) >= 19 })
	want := map[string]bool{}
	for i, it := range items {
		if i != 5 {
			want[it] = true
		}
	}
	keys := map[string]bool{}
	for _, g := range d.deliveries() {
		if !want[string(g.body)] {
			t.Fatalf("delivered %q, which is not one of the valid items byte for byte (or was delivered twice)", g.body)
		}
		delete(want, string(g.body))
		if g.header.Get("X-Request-Id") != "bd-1" || g.header.Get("X-Hookbay-Sender") != "bloomreach" || g.header.Get("X-Hookbay-Name") != "batch" {
			t.Fatalf("delivery headers %v", g.header)
		}
		// Each customer is a delivery of its own, with its own key.
		key := g.header.Get("Idempotency-Key")
		if !strings.HasPrefix(key, "bd-1/") || keys[key] {
			t.Fatalf("Idempotency-Key %q: want one per customer, under the request ID", key)
		}
		keys[key] = true
	}
	if len(want) != 0 {
		t.Fatalf("%d items never delivered", len(want))
	}
	// The queue's workers are woken when jobs are committed ("new jobs wake
	// the pool through Notify", hooks/queue.go), not at the next poll: a
	// batch queued right after the pool went idle is delivered at once.
	body, _ = brBatchBody(3, func(i int) string { return fmt.Sprintf(`{"id":"e%d","phone":"+1"}`, i) })
	start := time.Now()
	if a := brSend(t, m, brReq{name: "batch", id: "bd-2", body: body}); a.status != 200 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	waitUntil(t, 5*time.Second, "3 more deliveries", func() bool { return len(d.deliveries()) == 22 })
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("batch items were delivered %s after being accepted: the workers were not notified (waited for the poll)", took.Round(time.Millisecond))
	}
}

// Bloomreach retries on 5xx, 429 and connection problems; "It's
// recommended to build your API to be idempotent, using a unique request
// identifier". A retried batch answers the same and queues nothing twice,
// even under a new request ID (items are de-duplicated on item_id).
func TestBloomreach_BatchRetry(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{"batch": brBatchHook(0)}, nil)
	item := func(i int) string { return fmt.Sprintf(`{"id":"r%d","phone":"+1"}`, i) }
	items := make([]string, 16)
	for i := range items {
		items[i] = item(i)
	}
	batch := func(from, to int) string {
		return `{"messages":[` + strings.Join(items[from:to], ",") + `]}`
	}
	first := brSend(t, m, brReq{name: "batch", id: "rt-1", body: batch(1, 11)})
	if first.status != 200 || first.brBatch(t).Accepted != 10 {
		t.Fatalf("got %d %s", first.status, first.body)
	}
	total := func() int { return len(jobs(t, m, sqlite.JobFilter{Name: "batch", Limit: 5000})) }
	if n := total(); n != 10 {
		t.Fatalf("jobs=%d, want 10", n)
	}
	t.Run("SameRequestID", func(t *testing.T) {
		again := brSend(t, m, brReq{name: "batch", id: "rt-1", body: batch(1, 11)})
		if again.status != first.status || !bytes.Equal(again.body, first.body) {
			t.Fatalf("retry answered %d %s\nfirst %d %s", again.status, again.body, first.status, first.body)
		}
		if n := total(); n != 10 {
			t.Fatalf("jobs=%d after a retry, want still 10", n)
		}
		recs := requests(t, m, sqlite.RequestFilter{RequestID: "rt-1"})
		if len(recs) != 2 || recs[0].DuplicateOf != recs[1].ID {
			t.Fatalf("retry not recorded as a duplicate: %d records", len(recs))
		}
	})
	t.Run("NewRequestIDOverlapping", func(t *testing.T) {
		// Items r6..r10 were accepted under rt-1; r11..r15 are new.
		a := brSend(t, m, brReq{name: "batch", id: "rt-2", body: batch(6, 16)})
		r := a.brBatch(t)
		if a.status != 200 || len(r.Results) != 10 || r.Failed != 0 {
			t.Fatalf("got %d %s", a.status, a.body)
		}
		if n := brJobs(t, m, brRecord(t, m, "rt-2").ID); n != 5 {
			t.Fatalf("jobs for rt-2=%d, want 5 (only the new items)", n)
		}
		if n := total(); n != 15 {
			t.Fatalf("jobs=%d, want 15", n)
		}
	})
}

// A refused request is recorded with the request ID it carried, as
// Bubblehouse's are, so that "events list" finds a request Bloomreach
// reports as failed by its ID.
func TestBloomreach_RefusedRecordKeepsRequestID(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{"sms": {Auth: brBasic()}}, nil)
	for _, r := range []brReq{
		{name: "sms", id: "ref-invalid", body: `{"phone":`},
		{name: "sms", id: "ref-unauthorized", body: `{}`, auth: "-"},
		{name: "sms", id: "ref-method", body: `{}`, method: http.MethodPut},
		{name: "nope", id: "ref-notfound", body: `{}`},
	} {
		a := brSend(t, m, r)
		if a.status/100 != 4 {
			t.Fatalf("%s: status %d, want a 4xx", r.id, a.status)
		}
		if recs := requests(t, m, sqlite.RequestFilter{RequestID: r.id}); len(recs) != 1 || recs[0].Status != a.status {
			t.Errorf("records with request ID %q: %d, want the refused request (status %d)", r.id, len(recs), a.status)
		}
	}
}

// The batch's request ID and its items' IDs are separate namespaces: a
// request ID that happens to read like an item's key is a new request.
func TestBloomreach_BatchRequestIDNotItemKey(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{"batch": brBatchHook(0)}, nil)
	if a := brSend(t, m, brReq{name: "batch", id: "ns-1", body: `{"messages":[{"id":"5","phone":"+1"}]}`}); a.status != 200 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	a := brSend(t, m, brReq{name: "batch", id: "item:5", body: `{"messages":[{"id":"6","phone":"+1"}]}`})
	var r brBatchReply
	if err := json.Unmarshal(a.body, &r); a.status != 200 || err != nil || r.Accepted != 1 || len(r.Results) != 1 {
		t.Fatalf("request ID %q answered %d %q, want a fresh 200 batch reply accepting item 6", "item:5", a.status, a.body)
	}
	if n := len(jobs(t, m, sqlite.JobFilter{Name: "batch"})); n != 2 {
		t.Fatalf("jobs=%d, want 2: item 6 must be queued", n)
	}
}

// Per-customer idempotency on X-Request-ID or on a JSON pointer into the
// body (request_id: {json: /request_id}).
func TestBloomreach_Idempotency(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{
		"hdr": {Auth: brBasic()},
		"ptr": {Auth: brBasic(), RequestID: config.RequestIDConfig{JSON: "/request_id"}},
	}, nil)
	t.Run("Header", func(t *testing.T) {
		first := brSend(t, m, brReq{name: "hdr", id: "idem-1", body: `{"phone":"+1","text":"first"}`})
		again := brSend(t, m, brReq{name: "hdr", id: "idem-1", body: `{"phone":"+1","text":"second"}`})
		if first.status != 200 || again.status != 200 || !bytes.Equal(first.body, again.body) {
			t.Fatalf("repeat answered %d %s, first %d %s", again.status, again.body, first.status, first.body)
		}
		recs := requests(t, m, sqlite.RequestFilter{RequestID: "idem-1"})
		if len(recs) != 2 || recs[0].DuplicateOf != recs[1].ID {
			t.Fatalf("records=%d, want the repeat recorded as a duplicate", len(recs))
		}
		if n := countJobs(t, m, recs); n != 1 {
			t.Fatalf("jobs=%d, want 1", n)
		}
	})
	t.Run("JSONPointer", func(t *testing.T) {
		first := brSend(t, m, brReq{name: "ptr", body: `{"request_id":"p-1","phone":"+1","text":"first"}`})
		again := brSend(t, m, brReq{name: "ptr", body: `{"text":"second","request_id":"p-1"}`})
		other := brSend(t, m, brReq{name: "ptr", body: `{"request_id":"p-2"}`})
		if first.status != 200 || !bytes.Equal(first.body, again.body) {
			t.Fatalf("repeat answered %d %s, first %d %s", again.status, again.body, first.status, first.body)
		}
		if other.status != 200 || bytes.Equal(other.body, first.body) {
			t.Fatalf("another request_id answered %d %s like the first", other.status, other.body)
		}
		recs := requests(t, m, sqlite.RequestFilter{RequestID: "p-1"})
		if len(recs) != 2 || countJobs(t, m, recs) != 1 {
			t.Fatalf("records=%d jobs=%d, want 2 records and 1 job", len(recs), countJobs(t, m, recs))
		}
		if n := brJobs(t, m, brRecord(t, m, "p-2").ID); n != 1 {
			t.Fatalf("jobs for p-2=%d, want 1", n)
		}
	})
}

// "Webhook can process the responses up to 64KB of raw unparsed data"
// (bloomreach-webhooks.txt): whatever the batch, the reply fits.
func TestBloomreach_ReplySize(t *testing.T) {
	// A pattern long enough that every error description is ~300 bytes.
	var alts []string
	for i := range 40 {
		alts = append(alts, fmt.Sprintf("%03d", 100+i*7))
	}
	pattern := `^\+(` + strings.Join(alts, "|") + `)[0-9]{6,12}$`
	long := brBatchHook(0)
	long.Schema.Item = map[string]any{"type": "object", "properties": map[string]any{
		"phone": map[string]any{"type": "string", "pattern": pattern}}}
	plain := brBatchHook(0)
	plain.Schema = config.SchemaConfig{}
	m := brMain(t, map[string]config.WebhookConfig{"long": long, "plain": plain}, nil)

	check := func(t *testing.T, a answer, accepted int) brBatchReply {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("status=%d %.300s", a.status, a.body)
		}
		if len(a.body) > brMaxReply {
			t.Fatalf("reply is %d bytes, over the %d Bloomreach reads", len(a.body), brMaxReply)
		}
		if !json.Valid(a.body) {
			t.Fatalf("reply is not valid JSON")
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
		body, _ := brBatchBody(1000, func(i int) string { return fmt.Sprintf(`{"id":"x%d","phone":"+999%08d"}`, i, i) })
		r := check(t, brSend(t, m, brReq{name: "long", id: "size-long", body: body}), 0)
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
		// The full details are kept in the record for "events show".
		if rec := brRecord(t, m, "size-long"); !bytes.Equal(rec.Body, []byte(body)) {
			t.Fatalf("record body differs from the request")
		}
	})
	// Item IDs are echoed in each result; long ones must not push the reply
	// over what Bloomreach reads either.
	t.Run("LongItemIDs", func(t *testing.T) {
		body, _ := brBatchBody(1000, func(i int) string {
			return fmt.Sprintf(`{"id":"customer-%04d-%s","phone":"+1"}`, i, strings.Repeat("z", 90))
		})
		check(t, brSend(t, m, brReq{name: "plain", id: "size-ids", body: body}), 1000)
	})
}

// Throughput policies (bloomreach-webhooks.txt, "Throughput policy"): past
// the limit a request gets 429 or 503, both of which Bloomreach retries
// (bloomreach-endpoint-requirements.txt, "Retry policy"; "you can use HTTP
// 500 or connection reject to throttle concurrent requests").
func TestBloomreach_Throttle(t *testing.T) {
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	defer slow.Close()
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	m := brMain(t, map[string]config.WebhookConfig{
		"rate": {Auth: brBasic(), Throttle: &config.ThrottleRef{Inline: &config.ThrottleConfig{Rate: 1, Burst: 1}}},
		"slow": {Auth: brBasic(), Inline: true, Action: forwardTo(slow.URL),
			Throttle: &config.ThrottleRef{Inline: &config.ThrottleConfig{MaxInFlight: 1, Status: 503}}},
		"a": {Auth: brBasic(), Throttle: &config.ThrottleRef{Name: "shared"}},
		"b": {Auth: brBasic(), Throttle: &config.ThrottleRef{Name: "shared"}},
	}, func(c *config.Config) {
		c.Bloomreach.Throttles = map[string]config.ThrottleConfig{"shared": {Rate: 1, Burst: 1}}
	})
	retryAfter := func(t *testing.T, a answer) {
		t.Helper()
		n, err := strconv.Atoi(a.header.Get("Retry-After"))
		if err != nil || n < 1 {
			t.Fatalf("Retry-After=%q, want a whole number of seconds >= 1", a.header.Get("Retry-After"))
		}
	}
	t.Run("Rate", func(t *testing.T) {
		if a := brSend(t, m, brReq{name: "rate", id: "th-1", body: `{}`}); a.status != 200 {
			t.Fatalf("first: %d %s", a.status, a.body)
		}
		a := brSend(t, m, brReq{name: "rate", id: "th-2", body: `{}`})
		if a.status != 429 || a.json(t)["code"] != "throttled" {
			t.Fatalf("second at once: %d %s, want 429", a.status, a.body)
		}
		retryAfter(t, a)
		if rec := brLatest(t, m, "rate"); rec.Status != 429 || brJobs(t, m, rec.ID) != 0 || !contains(rec.Notes, "throttled") {
			t.Fatalf("throttled request recorded with status %d, notes %q, %d jobs", rec.Status, rec.Notes, brJobs(t, m, rec.ID))
		}
	})
	t.Run("MaxInFlight", func(t *testing.T) {
		firstDone := make(chan answer, 1)
		go func() {
			a, _ := brDo(brClient, "http://"+m.Addr(), brReq{name: "slow", id: "fl-1", body: `{"phone":"+1"}`})
			firstDone <- a
		}()
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the first request never reached its inline action")
		}
		a := brSend(t, m, brReq{name: "slow", id: "fl-2", body: `{"phone":"+2"}`})
		releaseOnce.Do(func() { close(release) })
		if a.status != 503 {
			t.Fatalf("second while the first is in flight: %d %s, want 503", a.status, a.body)
		}
		retryAfter(t, a)
		if first := <-firstDone; first.status != 200 {
			t.Fatalf("first: %d %s, want 200", first.status, first.body)
		}
		// The slot is free again.
		if a := brSend(t, m, brReq{name: "slow", id: "fl-3", body: `{"phone":"+3"}`}); a.status != 200 {
			t.Fatalf("after the first finished: %d %s, want 200", a.status, a.body)
		}
	})
	t.Run("SharedPolicy", func(t *testing.T) {
		if a := brSend(t, m, brReq{name: "a", id: "sh-a", body: `{}`}); a.status != 200 {
			t.Fatalf("a: %d %s", a.status, a.body)
		}
		a := brSend(t, m, brReq{name: "b", id: "sh-b", body: `{}`})
		if a.status != 429 {
			t.Fatalf("b right after a on a shared 1/s policy: %d %s, want 429", a.status, a.body)
		}
		retryAfter(t, a)
	})
}

// "Your API should be able to handle at least 200 concurrent HTTP
// requests" and "Aim to keep response times below 1 second"
// (bloomreach-endpoint-requirements.txt, "Performance requirements"). A
// functional check with a generous bound, not a benchmark.
func TestBloomreach_Concurrency(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{"sms": {Auth: brBasic()}}, nil)
	const n = 200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	type result struct {
		a       answer
		err     error
		latency time.Duration
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			a, err := brDo(client, "http://"+m.Addr(), brReq{name: "sms", id: fmt.Sprintf("conc-%d", i),
				body: fmt.Sprintf(`{"phone":"+1%06d","text":"hi"}`, i)})
			results[i] = result{a, err, time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()
	var slowest time.Duration
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		var rep brReply
		if json.Unmarshal(r.a.body, &rep); r.a.status != 200 || !rep.Success {
			t.Fatalf("request %d: %d %s, want 200 success", i, r.a.status, r.a.body)
		}
		slowest = max(slowest, r.latency)
	}
	t.Logf("slowest of %d concurrent requests: %s", n, slowest)
	if slowest >= time.Second {
		t.Fatalf("slowest answer took %s, want under 1 s", slowest)
	}
	if got := len(requests(t, m, sqlite.RequestFilter{Name: "sms", Limit: 1000})); got != n {
		t.Fatalf("records=%d, want %d", got, n)
	}
}

// An inline per-customer webhook answers with the integrator's reply when
// it has Bloomreach's shape; a failure is a 503, which Bloomreach retries,
// and the retry executes again.
func TestBloomreach_Inline(t *testing.T) {
	d := newDownstream(t)
	m := brMain(t, map[string]config.WebhookConfig{"inline": {Auth: brBasic(), Inline: true, Action: forwardTo(d.URL)}}, nil)
	body := `{"phone":"+420777000999","text":"hi"}`

	notSent := `{"success":false,"errors":[{"code":7,"description":"no such phone"}]}`
	d.set(func(d *downstream) { d.status, d.answer = 200, notSent })
	a := brSend(t, m, brReq{name: "inline", id: "in-1", body: body})
	if a.status != 200 || string(a.body) != notSent {
		t.Fatalf("got %d %s, want 200 %s", a.status, a.body, notSent)
	}
	if got := d.deliveries(); len(got) != 1 || string(got[0].body) != body || got[0].header.Get("X-Request-Id") != "in-1" {
		t.Fatalf("deliveries=%d, want the body once with its request ID", len(got))
	}

	d.set(func(d *downstream) { d.status, d.answer = 500, `{"error":"db down"}` })
	a = brSend(t, m, brReq{name: "inline", id: "in-2", body: body})
	if a.status != 503 {
		t.Fatalf("downstream 500: got %d %s, want 503 so that Bloomreach retries", a.status, a.body)
	}
	a.json(t)
	sent := `{"success":true,"result":{"code":1,"status":"sent","message":"SMS message sent successfully"}}`
	d.set(func(d *downstream) { d.status, d.answer = 200, sent })
	a = brSend(t, m, brReq{name: "inline", id: "in-2", body: body})
	if a.status != 200 || string(a.body) != sent {
		t.Fatalf("retry: got %d %s, want 200 %s", a.status, a.body, sent)
	}
	if n := len(d.deliveries()); n != 3 {
		t.Fatalf("deliveries=%d, want 3: the retry runs the action again", n)
	}
	// Once answered, a repeat replays without running the action.
	if again := brSend(t, m, brReq{name: "inline", id: "in-2", body: body}); again.status != 200 || !bytes.Equal(again.body, a.body) {
		t.Fatalf("repeat after success: %d %s", again.status, again.body)
	}
	if n := len(d.deliveries()); n != 3 {
		t.Fatalf("deliveries=%d after a repeat, want still 3", n)
	}
	// The failed attempt and the retry are both on record; nothing is
	// queued: an inline webhook is done when answered (its job is recorded
	// done, for events show and replay).
	for _, id := range []string{"in-1", "in-2"} {
		for _, r := range requests(t, m, sqlite.RequestFilter{RequestID: id}) {
			for _, j := range jobs(t, m, sqlite.JobFilter{RequestRef: r.ID}) {
				if j.State != hooks.JobDone {
					t.Fatalf("%s has job %d %s, want only done jobs", id, j.ID, j.State)
				}
			}
		}
	}
	if recs := requests(t, m, sqlite.RequestFilter{RequestID: "in-2"}); len(recs) != 3 || recs[2].Status != 503 || recs[1].Status != 200 || recs[0].DuplicateOf != recs[1].ID {
		t.Fatalf("records of in-2: %d, want the 503, the retry's 200 and a duplicate", len(recs))
	}
	// Delivered, with an answer over the output cap: the reply leaves the
	// answer out rather than have Bloomreach repeat the delivery.
	d.set(func(d *downstream) {
		d.status, d.answer = 200, `{"pad":"`+strings.Repeat("x", hooks.DefaultMaxOutput)+`"}`
	})
	a = brSend(t, m, brReq{name: "inline", id: "in-big", body: body})
	if r := a.brReply(t); a.status != 200 || !r.Success {
		t.Fatalf("oversized answer: got %d %.200s, want 200 success", a.status, a.body)
	}
}

// bloomreach-webhooks.txt, "Test settings": "The test endpoint must accept
// an empty request body, validate the credentials, and must respond with
// HTTP 200 Success".
func TestBloomreach_AuthTest(t *testing.T) {
	m := brMain(t, map[string]config.WebhookConfig{"sms": {Auth: brBasic(), Methods: []string{"PUT"}}}, nil)
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		a := brSend(t, m, brReq{method: method, name: "sms/auth-test", ctype: "-"})
		if a.status != 200 || !a.brReply(t).Success {
			t.Fatalf("%s with credentials: %d %s, want 200 success", method, a.status, a.body)
		}
		for _, auth := range []string{"-", "Basic " + "YnJvb21yZWFjaDp3cm9uZw=="} {
			a := brSend(t, m, brReq{method: method, name: "sms/auth-test", ctype: "-", auth: auth})
			if a.status != 401 || a.json(t)["code"] != "unauthorized" {
				t.Fatalf("%s with %q: %d %s, want 401", method, auth, a.status, a.body)
			}
		}
	}
	if a := brSend(t, m, brReq{name: "nope/auth-test", ctype: "-"}); a.status != 404 {
		t.Fatalf("auth-test of an unknown webhook: %d, want 404", a.status)
	}
	if js := jobs(t, m, sqlite.JobFilter{}); len(js) != 0 {
		t.Fatalf("auth tests queued %d jobs", len(js))
	}
}

// fuzzSeq makes fuzzed request IDs unique.
var fuzzSeq atomic.Int64

// FuzzBloomreachBatch sends arbitrary bodies to a batch webhook through the
// whole Echo app: every answer is a JSON object under Bloomreach's 64 KB; a
// 200 holds one result per item of /messages, in order, and says success
// only when every item passed; anything else is 400 or 413, never a 5xx.
func FuzzBloomreachBatch(f *testing.F) {
	m := MustRunMain(f, func(c *config.Config) {
		c.Server.MaxBodyBytes = 8192
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"batch": brBatchHook(0)}
	})
	good, _ := brBatchBody(3, func(i int) string { return fmt.Sprintf(`{"id":"f%d","phone":"+1"}`, i) })
	f.Add("f-1", []byte(good))
	f.Add("f-2", []byte(`{"messages":[{"id":1,"phone":"+1"},"x",null,{"id":{"a":1}},{}]}`))
	f.Add("f-3", []byte(`{"messages":{"0":{}}}`))
	f.Add("", []byte(`[{"id":1}]`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/bloomreach/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(brUser+":"+brPass)))
		if id != "" {
			// A repeated ID replays its first answer, made for another body.
			id += "-" + strconv.FormatInt(fuzzSeq.Add(1), 10)
		}
		req.Header.Set("X-Request-ID", id)
		rec := httptest.NewRecorder()
		m.Echo.ServeHTTP(rec, req)
		var obj map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil || rec.Body.Len() > brMaxReply {
			t.Fatalf("%d answer is not a JSON object under 64 KB (%d bytes): %.200q", rec.Code, rec.Body.Len(), rec.Body.Bytes())
		}
		switch rec.Code {
		case 200:
		case 400, 413:
			return
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		var in struct{ Messages []json.RawMessage }
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("200 for a body encoding/json refuses (%v): %q", err, body)
		}
		var r brBatchReply
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatalf("200 answer is not a batch reply: %s", rec.Body.Bytes())
		}
		if r.Note != "" {
			return // details cut to fit 64 KB
		}
		all := true
		for i, res := range r.Results {
			all = all && res.Success
			if res.Index != i {
				t.Fatalf("results[%d].index=%d", i, res.Index)
			}
		}
		if len(r.Results) != len(in.Messages) || r.Success != all || r.Accepted+r.Failed != len(in.Messages) {
			t.Fatalf("reply %s for %d items", rec.Body.Bytes(), len(in.Messages))
		}
	})
}
