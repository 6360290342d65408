package cli

// Regressions that only the whole process shows: what reaches the store,
// and answers that depend on the store's commit fitting the deadline.

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hookbay/hookbay/config"
	"github.com/hookbay/hookbay/hooks"
)

const notUTF8 = "caf\xc3 \xff" // a cut-off é and a byte that is never UTF-8

// Bytes that are not UTF-8 reach no record from a request that was not
// authenticated, and no answer echoes them: an unsigned Svix request, an
// unauthenticated Bloomreach one, and an authenticated Bubblehouse hook
// (refused, 400) each leave records that decode as sent.
func TestRegression_NotUTF8NothingPlanted(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) {
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sms": {Auth: brBasic()}}
	})
	body := `{"type":"user.created","name":"` + notUTF8 + `"}`
	if a := sendSvix(t, m, "bloom", signed{id: "msg_plant", body: body, sig: "v1,AAAA"}); a.status != 401 {
		t.Fatalf("unsigned Svix: got %d %s, want 401", a.status, a.body)
	}
	if a := brSend(t, m, brReq{name: "sms", id: "br-plant", auth: "-", body: body}); a.status != 401 {
		t.Fatalf("unauthenticated Bloomreach: got %d %s, want 401", a.status, a.body)
	}
	// Signed, it is refused as bad input and the answer says why.
	if a := sendSvix(t, m, "bloom", signed{id: "msg_signed", body: body}); a.status != 400 || !utf8.Valid(a.body) || !strings.Contains(a.json(t)["error"].(string), "UTF-8") {
		t.Fatalf("signed Svix: got %d %q, want 400 saying UTF-8", a.status, a.body)
	}
	// It was accepted (202) and the code echoed raw, an answer that is not JSON.
	a := send(t, m, call{hook: "CreateDiscount4", body: `{"code":"` + notUTF8 + `"}`, urgency: "urgent", id: "bh-plant"})
	if a.status != 400 || !utf8.Valid(a.body) || !json.Valid(a.body) {
		t.Fatalf("Bubblehouse: got %d %q, want 400 with a JSON answer", a.status, a.body)
	}
	for _, id := range []string{"msg_plant", "br-plant"} {
		recs := requests(t, m, hooks.RequestFilter{RequestID: id})
		if len(recs) != 1 || recs[0].Status != 401 || !utf8.Valid(recs[0].Body) || len(recs[0].Body) != 0 {
			t.Fatalf("%s: records %d, body %q: want one 401 record keeping no body", id, len(recs), recs[0].Body)
		}
	}
	if js := jobs(t, m, hooks.JobFilter{}); len(js) != 0 {
		t.Fatalf("jobs=%d, want nothing queued", len(js))
	}
}

// What is accepted can be read back: a body nested past the one limit is
// refused at intake, by every sender, in its own terms.
func TestRegression_DeepBodyRefused(t *testing.T) {
	m := MustRunMain(t, func(c *config.Config) {
		c.Server.MaxBodyBytes = 1 << 20
		c.Svix.Endpoints = map[string]config.SvixEndpointConfig{"bloom": {Secrets: []string{svixSecret}}}
		c.Bloomreach.Webhooks = map[string]config.WebhookConfig{"sms": {Auth: brBasic()}}
	})
	deep := strings.Repeat("[", 9999) + strings.Repeat("]", 9999) // 10,000 levels with the object around it
	if a := send(t, m, call{hook: "CreateDiscount4", body: `{"a":` + deep + `}`, urgency: "urgent", id: "deep-bh"}); a.status != 400 {
		t.Fatalf("Bubblehouse: got %d %s, want 400", a.status, a.body)
	}
	if a := send(t, m, call{hook: "SendEvent1", body: `{"bhid":"e1","a":` + deep + `}`, urgency: "regular", id: "deep-ev"}); a.status != 200 || a.json(t)["outcome"] != "invalid_data" {
		t.Fatalf("SendEvent1: got %d %s, want 200 invalid_data", a.status, a.body)
	}
	if a := sendSvix(t, m, "bloom", signed{id: "msg_deep", body: `{"type":"user.created","a":` + deep + `}`}); a.status != 400 {
		t.Fatalf("Svix: got %d %s, want 400", a.status, a.body)
	}
	if a := brSend(t, m, brReq{name: "sms", id: "deep-br", body: `{"a":` + deep + `}`}); a.status != 400 {
		t.Fatalf("Bloomreach: got %d %s, want 400", a.status, a.body)
	}
	// Nothing was accepted: no job; SendEvent1's invalid_data is a refusal
	// in a 200.
	if js := jobs(t, m, hooks.JobFilter{}); len(js) != 0 {
		t.Fatalf("jobs=%d, want none", len(js))
	}
	for _, r := range requests(t, m, hooks.RequestFilter{Limit: 100}) {
		if r.Status < 300 && !bytes.Contains(r.Response, []byte("invalid_data")) {
			t.Fatalf("record %d (%s): a deep body was accepted (%d)", r.ID, r.Name, r.Status)
		}
	}
}

// Answer in time, whatever the body: a Bloomreach webhook with an item
// schema, sent a number of a million digits within the body limit, took
// seconds and sometimes answered 500 (the commit missed its deadline),
// which Bloomreach retries. It is that customer's failure, answered 200 in
// the contract's shape; the customers of a batch beside it are queued.
func TestBloomreach_MillionDigitNumber(t *testing.T) {
	item := map[string]any{"type": "object", "required": []any{"phone"},
		"properties": map[string]any{"phone": map[string]any{"type": "string"}, "n": map[string]any{"type": "integer", "maximum": 10}}}
	batch := brBatchHook(0)
	batch.Schema.Item = item
	m := brMain(t, map[string]config.WebhookConfig{
		"sms":   {Auth: brBasic(), Schema: config.SchemaConfig{Item: item}},
		"batch": batch,
	}, func(c *config.Config) { c.Server.MaxBodyBytes = 1 << 20 })
	million := strings.Repeat("7", 1_000_000)
	a := brSend(t, m, brReq{name: "sms", id: "mil-1", body: `{"phone":"+1","n":` + million + `}`})
	if r := a.brReply(t); a.status != 200 || r.Success || len(r.Errors) != 1 || r.Errors[0].Code != hooks.BRCodeNumber {
		t.Fatalf("got %d %.300s, want 200 success:false with code %d", a.status, a.body, hooks.BRCodeNumber)
	}
	// Settled: a retry gets the same answer from the store.
	if again := brSend(t, m, brReq{name: "sms", id: "mil-1", body: `{"phone":"+1","n":` + million + `}`}); again.status != 200 || !bytes.Equal(again.body, a.body) {
		t.Fatalf("retry: got %d %.200s", again.status, again.body)
	}
	body := `{"messages":[{"id":"a","phone":"+1"},{"id":"b","phone":"+1","n":` + million[:500_000] + `},{"id":"c","phone":"+1"}]}`
	a = brSend(t, m, brReq{name: "batch", id: "mil-batch", body: body})
	if r := a.brBatch(t); a.status != 200 || r.Accepted != 2 || r.Results[1].Success {
		t.Fatalf("batch: got %d %.300s, want 200 with customer b failed and a, c accepted", a.status, a.body)
	}
	if n := brJobs(t, m, brRecord(t, m, "mil-batch").ID); n != 2 {
		t.Fatalf("jobs=%d, want the 2 readable customers queued", n)
	}
}
