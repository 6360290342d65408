package cli

// End-to-end tests of the Bloomreach Engagement receiver, through a real
// listening server and store: what only the whole process shows (batches
// delivered item by item, retries and idempotency across the store, 200
// concurrent requests under 1 s, inline actions and their retries). The
// contract's status tables are tested at the handlers' layer
// (handlers/bloomreach_test.go). The contract is Bloomreach Engagement's
// public "Creating API endpoint for webhooks" and "Webhooks".

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
)

const (
	brUser = "bloomreach"
	brPass = "br-Pa55-S3cret-value"
	// brPath is bloomreach.path's default.
	brPath = "/bloomreach"
	// brMaxReply is what Bloomreach reads of a reply (Bloomreach "Webhooks",
	// "Webhook can process the responses up to 64KB of raw unparsed data").
	brMaxReply = 64 << 10
)

// brBasic is HTTP Basic authentication, the scheme Bloomreach supports
// natively (Bloomreach "Creating API endpoint for webhooks", "Authentication").
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
	for _, r := range requests(t, m, hooks.RequestFilter{Sender: hooks.SenderBloomreach, RequestID: id}) {
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
	recs := requests(t, m, hooks.RequestFilter{Sender: hooks.SenderBloomreach, Name: name, Limit: 1})
	if len(recs) != 1 {
		t.Fatalf("no record of %s", name)
	}
	return recs[0]
}

// brJobs counts the jobs a request record queued.
func brJobs(t *testing.T, m *Main, ref int64) int {
	t.Helper()
	return len(jobs(t, m, hooks.JobFilter{RequestRef: ref, Limit: 5000}))
}

func brPhoneSchema() map[string]any {
	return map[string]any{"type": "object", "required": []any{"phone"},
		"properties": map[string]any{"phone": map[string]any{"type": "string"}}}
}

func brBatchHook(max int) config.WebhookConfig {
	return config.WebhookConfig{Auth: brBasic(), Batch: &config.BatchConfig{Items: "/messages", Max: max},
		RequestID: config.RequestIDConfig{ItemID: "/id"}, Schema: config.SchemaConfig{Item: brPhoneSchema()}}
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
	total := func() int { return len(jobs(t, m, hooks.JobFilter{Name: "batch", Limit: 5000})) }
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
		recs := requests(t, m, hooks.RequestFilter{RequestID: "rt-1"})
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
	if n := len(jobs(t, m, hooks.JobFilter{Name: "batch"})); n != 2 {
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
		recs := requests(t, m, hooks.RequestFilter{RequestID: "idem-1"})
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
		recs := requests(t, m, hooks.RequestFilter{RequestID: "p-1"})
		if len(recs) != 2 || countJobs(t, m, recs) != 1 {
			t.Fatalf("records=%d jobs=%d, want 2 records and 1 job", len(recs), countJobs(t, m, recs))
		}
		if n := brJobs(t, m, brRecord(t, m, "p-2").ID); n != 1 {
			t.Fatalf("jobs for p-2=%d, want 1", n)
		}
	})
}

// "Your API should be able to handle at least 200 concurrent HTTP
// requests" and "Aim to keep response times below 1 second"
// (Bloomreach "Creating API endpoint for webhooks", "Performance requirements"). A
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
	if got := len(requests(t, m, hooks.RequestFilter{Name: "sms", Limit: 1000})); got != n {
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
		for _, r := range requests(t, m, hooks.RequestFilter{RequestID: id}) {
			for _, j := range jobs(t, m, hooks.JobFilter{RequestRef: r.ID}) {
				if j.State != hooks.JobDone {
					t.Fatalf("%s has job %d %s, want only done jobs", id, j.ID, j.State)
				}
			}
		}
	}
	if recs := requests(t, m, hooks.RequestFilter{RequestID: "in-2"}); len(recs) != 3 || recs[2].Status != 503 || recs[1].Status != 200 || recs[0].DuplicateOf != recs[1].ID {
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
