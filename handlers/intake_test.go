package handlers_test

// What every sender's intake does with bodies that are not really JSON
// (RFC 8259: UTF-8, section 8.1) or are built to be expensive: each is
// refused as bad input in the sender's own terms, answered in time, and
// nothing that is not UTF-8 text is echoed or planted by an
// unauthenticated client.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hookbay/hookbay/handlers"
	"github.com/hookbay/hookbay/hooks"
)

// deep is a JSON object nested n levels deep.
func deep(n int) string {
	return strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1)
}

const badUTF8 = "caf\xc3 \xff" // a cut-off é and a byte that is never UTF-8

func TestBubblehouse_NotReallyJSON(t *testing.T) {
	for _, tt := range []struct {
		name, hook, body string
		status           int
		says             string
	}{
		// It was accepted (202) and the code echoed back raw: an answer that is not JSON.
		{"CreateDiscountInvalidUTF8", "CreateDiscount4", `{"code":"` + badUTF8 + `","title":"t"}`, 400, "UTF-8"},
		{"Hello1InvalidUTF8", "Hello1", `{"magic":"` + badUTF8 + `"}`, 400, "UTF-8"},
		{"InvalidUTF8InKey", "CreateDiscount4", "{\"\xff\":1}", 400, "UTF-8"},
		{"Deep10000", "CreateDiscount4", deep(10000), 400, "levels deep"},
		{"DeepOverLimit", "CreateDiscount4", deep(hooks.MaxJSONDepth + 1), 400, "levels deep"},
		{"DeepAtLimit", "CreateDiscount4", deep(hooks.MaxJSONDepth), 202, ""},
		// SendEvent1's bad input is its invalid_data answer, never an HTTP error.
		{"SendEventInvalidUTF8", "SendEvent1", `{"bhid":"evt-1","name":"` + badUTF8 + `"}`, 200, "UTF-8"},
		{"SendEventDeep", "SendEvent1", `{"bhid":"evt-1","x":` + deep(10000) + `}`, 200, "levels deep"},
		{"SendEventUTF8", "SendEvent1", `{"bhid":"evt-1","name":"café ☕"}`, 202, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			e := newBubblehouse(t, g, func(h *handlers.Bubblehouse) { h.MaxBodyBytes = 1 << 20 })
			urgency := "urgent"
			if tt.hook == "Hello1" {
				urgency = "real-time"
			}
			a := serve(e, bhCall{hook: tt.hook, body: tt.body, urgency: urgency, id: "nj-" + tt.name}.request())
			if a.status != tt.status || !validJSON(a.body) {
				t.Fatalf("got %d %q, want %d with a valid JSON answer", a.status, a.body, tt.status)
			}
			obj := a.json(t)
			switch {
			case tt.status == 400:
				if obj["code"] != hooks.EINVALID || !strings.Contains(obj["error"].(string), tt.says) {
					t.Fatalf("answer %s, want code invalid saying %q", a.body, tt.says)
				}
			case tt.says != "":
				if obj["outcome"] != "invalid_data" || !strings.Contains(obj["error"].(string), tt.says) {
					t.Fatalf("answer %s, want outcome invalid_data saying %q", a.body, tt.says)
				}
				if r := g.lastReceipt(); r == nil || r.Job != nil {
					t.Fatalf("receipt %+v, want the event settled with nothing queued", r)
				}
			}
		})
	}
}

func TestSvix_NotReallyJSON(t *testing.T) {
	for _, tt := range []struct {
		name   string
		s      signed
		status int
		says   string
	}{
		{"InvalidUTF8", signed{id: "msg_u", body: `{"type":"user.created","name":"` + badUTF8 + `"}`}, 400, "UTF-8"},
		{"Deep", signed{id: "msg_d", body: `{"type":"user.created","data":` + deep(600) + `}`}, 400, "levels deep"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			a := svixServe(newSvix(t, g), g, "bloom", tt.s)
			if a.status != tt.status || a.code(t) != hooks.EINVALID || !strings.Contains(a.json(t)["error"].(string), tt.says) || !validJSON(a.body) {
				t.Fatalf("got %d %s, want %d invalid saying %q", a.status, a.body, tt.status, tt.says)
			}
			if receipts, _ := g.counts(); receipts != 0 {
				t.Fatal("a refused event was committed")
			}
		})
	}
	// An unauthenticated request cannot plant bytes that are not UTF-8 in
	// the records: its body is kept only when it is text.
	for _, tt := range []struct {
		name string
		s    signed
		keep bool
	}{
		{"BadSignatureInvalidUTF8", signed{id: "msg_p", body: `{"type":"x","p":"` + badUTF8 + `"}`, sig: "v1,AAAA"}, false},
		{"StaleInvalidUTF8", signed{id: "msg_s", body: `{"p":"` + badUTF8 + `"}`, ts: svixNow.AddDate(0, 0, -1)}, false},
		{"NoHeadersInvalidUTF8", signed{id: "msg_h", body: "\xff\xfe\xfd", omit: "svix-signature"}, false},
		{"BadSignatureText", signed{id: "msg_t", body: `{"type":"user.created"}`, sig: "v1,AAAA"}, true},
		// Cut to what is kept of a refused body, on a character's boundary.
		{"BadSignatureLongText", signed{id: "msg_l", body: `{"p":"x` + strings.Repeat("é", 3000) + `"}`, sig: "v1,AAAA"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Guard{}
			h := newSvix(t, g)
			h.MaxBodyBytes = 1 << 20
			a := svixServe(h, g, "bloom", tt.s)
			if a.status/100 != 4 {
				t.Fatalf("got %d %s, want a refusal", a.status, a.body)
			}
			rec := g.last(t)
			if !utf8.Valid(rec.Body) {
				t.Fatalf("recorded body %q: not UTF-8, planted by an unauthenticated request", rec.Body)
			}
			if kept := len(rec.Body) > 0; kept != tt.keep {
				t.Fatalf("recorded body %.60q, want kept=%v", rec.Body, tt.keep)
			}
			if !tt.keep && !hasNote(rec, "not UTF-8") {
				t.Fatalf("notes %q, want one saying why the body was not kept", rec.Notes)
			}
		})
	}
}

// Bloomreach: invalid UTF-8 in a customer's data is that customer's
// failure (200, success false), never a 4xx that would fail or stop the
// campaign; in a batch, only the customers it is in fail.
func TestBloomreach_NotReallyJSON(t *testing.T) {
	sms := brHook("sms", brBasic())
	sms.Item = brSchema(t, brPhoneSchema)
	plain := brHook("plain", brBasic())
	batch := brBatchHook(t, "batch", hooks.BloomreachMaxBatch)
	g := &Guard{}
	e, h := newBloomreach(g, sms, plain, batch)
	h.MaxBodyBytes = 1 << 20

	for _, tt := range []struct{ name, hook, body string }{
		{"PerCustomer", "sms", `{"phone":"+1","text":"` + badUTF8 + `"}`},
		{"PerCustomerNoSchema", "plain", `{"text":"` + badUTF8 + `"}`},
		{"PerCustomerKey", "plain", "{\"\xff\":1}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, brReq{name: tt.hook, id: "nj-" + tt.name, body: tt.body}.request())
			r := a.brReply(t)
			if a.status != 200 || r.Success || len(r.Errors) != 1 || r.Errors[0].Code != hooks.BRCodeText || !strings.Contains(r.Errors[0].Description, "UTF-8") {
				t.Fatalf("got %d %s, want 200 success:false with one %d error", a.status, a.body, hooks.BRCodeText)
			}
			if rc := g.lastReceipt(); rc == nil || rc.Job != nil || rc.Request.RequestID != "nj-"+tt.name {
				t.Fatalf("receipt %+v, want the answer settled under its ID and nothing queued", rc)
			}
		})
	}
	t.Run("BatchItems", func(t *testing.T) {
		body := `{"campaign":"c","messages":[{"id":"1","phone":"+1"},{"id":"2","phone":"+1","text":"` + badUTF8 + `"},{"id":"3","phone":"+1"}]}`
		a := serve(e, brReq{name: "batch", id: "nj-batch", body: body}.request())
		r := a.brBatch(t)
		if a.status != 200 || r.Accepted != 2 || r.Failed != 1 || r.Results[1].Success || r.Results[1].Errors[0].Code != hooks.BRCodeText {
			t.Fatalf("got %d %s, want the second customer failed with %d, the others accepted", a.status, a.body, hooks.BRCodeText)
		}
		if items := g.lastReceipt().Items; len(items) != 2 {
			t.Fatalf("queued %d customers, want 2", len(items))
		}
	})
	t.Run("BatchRoot", func(t *testing.T) {
		body := `{"campaign":"` + badUTF8 + `","messages":[{"id":"1","phone":"+1"},{"id":"2","phone":"+1"}]}`
		a := serve(e, brReq{name: "batch", id: "nj-root", body: body}.request())
		r := a.brBatch(t)
		if a.status != 200 || r.Accepted != 0 || r.Failed != 2 || r.Results[0].Errors[0].Code != hooks.BRCodeText {
			t.Fatalf("got %d %s, want every customer failed with %d: the batch's own fields are not text", a.status, a.body, hooks.BRCodeText)
		}
	})
	// Nesting past the one limit is a request wrong for every customer.
	t.Run("Deep", func(t *testing.T) {
		a := serve(e, brReq{name: "plain", id: "nj-deep", body: deep(10000)}.request())
		if a.status != 400 || a.code(t) != hooks.EINVALID || !strings.Contains(a.json(t)["error"].(string), "levels deep") {
			t.Fatalf("got %d %s, want 400 saying how deep", a.status, a.body)
		}
	})
	// An unauthenticated request keeps no body that is not text.
	t.Run("Unauthenticated", func(t *testing.T) {
		a := serve(e, brReq{name: "plain", id: "nj-auth", auth: "-", body: `{"text":"` + badUTF8 + `"}`}.request())
		if rec := g.last(t); a.status != 401 || len(rec.Body) != 0 || !hasNote(rec, "not UTF-8") {
			t.Fatalf("got %d, record body %q notes %q: want 401 and no body kept", a.status, rec.Body, rec.Notes)
		}
		a = serve(e, brReq{name: "plain", id: "nj-auth2", auth: "-", body: `{"text":"café"}`}.request())
		if rec := g.last(t); a.status != 401 || string(rec.Body) != `{"text":"café"}` {
			t.Fatalf("got %d, record body %q: want 401 with the text kept", a.status, rec.Body)
		}
	})
}

// Answer in time, whatever the body: a number of a million digits made
// schema validation take seconds (and answer 500 when the commit then
// missed its deadline). Numbers a validator cannot read cheaply are the
// customer's failure, in the contract's shape; never a 5xx.
func TestBloomreach_HostileNumbers(t *testing.T) {
	million := strings.Repeat("7", 1_000_000)
	schema := `{"type":"object","required":["phone"],"properties":{"phone":{"type":"string"},` +
		`"n":{"type":"integer","maximum":10},"m":{"multipleOf":0.01}}}`
	sms := brHook("sms", brBasic())
	sms.Item = brSchema(t, schema)
	req := brHook("req", brBasic())
	req.Request = brSchema(t, `{"type":"object","properties":{"n":{"type":"integer"}}}`)
	batch := brBatchHook(t, "batch", hooks.BloomreachMaxBatch)
	batch.Item = brSchema(t, schema)
	g := &Guard{}
	e, h := newBloomreach(g, sms, req, batch)
	h.MaxBodyBytes = 2 << 20
	for _, tt := range []struct{ name, hook, body string }{
		{"MillionDigits", "sms", `{"phone":"+1","n":` + million + `}`},
		{"MillionDigitsUnderRequestSchema", "req", `{"n":` + million + `}`},
		{"MillionDigitsNotInSchema", "sms", `{"phone":"+1","other":` + million + `}`},
		{"HugeExponent", "sms", `{"phone":"+1","n":1e999999}`},
		// big.Rat cannot even parse it: the validator panicked (500).
		{"ExponentPanic", "sms", `{"phone":"+1","m":1e-1000000000}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, brReq{name: tt.hook, id: "hn-" + tt.name, body: tt.body}.request())
			r := a.brReply(t)
			if a.status != 200 || r.Success || len(r.Errors) != 1 || r.Errors[0].Code != hooks.BRCodeNumber {
				t.Fatalf("got %d %.300s, want 200 success:false with one %d error", a.status, a.body, hooks.BRCodeNumber)
			}
			if g.lastReceipt().Job != nil {
				t.Fatal("a refused customer was queued")
			}
		})
	}
	t.Run("Batch", func(t *testing.T) {
		items := []string{`{"id":"1","phone":"+1","n":1}`, `{"id":"2","phone":"+1","n":` + million + `}`, `{"id":"3","phone":"+1","m":1e-1000000000}`, `{"id":"4","phone":"+1"}`}
		a := serve(e, brReq{name: "batch", id: "hn-batch", body: `{"messages":[` + strings.Join(items, ",") + `]}`}.request())
		r := a.brBatch(t)
		if a.status != 200 || r.Accepted != 2 || r.Failed != 2 || r.Results[1].Errors[0].Code != hooks.BRCodeNumber || r.Results[2].Errors[0].Code != hooks.BRCodeNumber {
			t.Fatalf("got %d %.400s, want customers 2 and 3 failed with %d", a.status, a.body, hooks.BRCodeNumber)
		}
	})
	// Numbers within the bounds are validated as before.
	t.Run("Ordinary", func(t *testing.T) {
		a := serve(e, brReq{name: "sms", id: "hn-ok", body: fmt.Sprintf(`{"phone":"+1","n":%s}`, "12")}.request())
		if r := a.brReply(t); a.status != 200 || r.Success || r.Errors[0].Code != hooks.BRCodeSchema {
			t.Fatalf("n=12 over maximum 10: got %d %s, want the schema's own 1001", a.status, a.body)
		}
	})
}

// A batch's customers are validated within a budget that leaves the
// answer's deadline room to record them: those left when it is spent fail
// on their own (1007), and the batch is answered on time, never 5xx.
func TestBloomreach_ValidateBudget(t *testing.T) {
	batch := brBatchHook(t, "batch", hooks.BloomreachMaxBatch)
	g := &Guard{}
	e, h := newBloomreach(g, batch)
	h.ValidateBudget = -1 // spent before the first customer
	a := serve(e, brReq{name: "batch", id: "budget", body: `{"messages":[{"id":"1","phone":"+1"},{"id":"2"},"x"]}`}.request())
	r := a.brBatch(t)
	if a.status != 200 || r.Accepted != 0 || r.Results[0].Errors[0].Code != hooks.BRCodeDeadline || r.Results[1].Errors[0].Code != hooks.BRCodeDeadline ||
		r.Results[2].Errors[0].Code != hooks.BRCodeNotObject {
		t.Fatalf("got %d %s, want 200 with the customers left unvalidated failed with %d", a.status, a.body, hooks.BRCodeDeadline)
	}
	if rec := g.lastReceipt().Request; !hasNote(rec, "2 customers not validated before the answer was due") {
		t.Fatalf("notes %q, want one saying how many were not validated", rec.Notes)
	}
}

// The token endpoint reads a form (RFC 6749 section 4.4.2): a JSON body
// is an invalid request saying so, not an unsupported grant type.
func TestOAuth2_TokenContentType(t *testing.T) {
	e, saved := tokenServer(t)
	for _, tt := range []struct{ name, ctype, body string }{
		{"JSON", "application/json", `{"grant_type":"client_credentials"}`},
		{"JSONWithCredentials", "application/json", `{"grant_type":"client_credentials","client_id":"bloomreach","client_secret":"s3cret"}`},
		{"None", "", "grant_type=client_credentials"},
		{"Text", "text/plain", "grant_type=client_credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(e, tokenRequest("", tt.ctype, tt.body, "bloomreach", "s3cret"))
			var got struct {
				Error string `json:"error"`
				Desc  string `json:"error_description"`
			}
			json.Unmarshal(a.body, &got)
			if a.status != http.StatusBadRequest || got.Error != "invalid_request" || !strings.Contains(got.Desc, "application/x-www-form-urlencoded") {
				t.Fatalf("got %d %s, want 400 invalid_request naming application/x-www-form-urlencoded", a.status, a.body)
			}
		})
	}
	if len(*saved) != 0 {
		t.Fatalf("saved %d tokens", len(*saved))
	}
}

// An inline action's reply is Bloomreach's shape only with a member named
// exactly success: {"SUCCESS":false} would otherwise be sent as the reply,
// and Bloomreach, which reads success, would find none.
func TestBloomreach_InlineReplyExactSuccess(t *testing.T) {
	wh := brHook("inline", brBasic())
	wh.HasAction = true
	wh.InlineAction = func(context.Context, *hooks.Job) ([]byte, error) { return []byte(`{"SUCCESS":false}`), nil }
	g := &Guard{}
	e, _ := newBloomreach(g, wh)
	a := serve(e, brReq{name: "inline", id: "in-case", body: `{}`}.request())
	if want := `{"success":true,"result":{"SUCCESS":false}}`; a.status != 200 || string(a.body) != want {
		t.Fatalf("got %d %s, want %s", a.status, a.body, want)
	}
}

// A refusal's record is text too: the URL's name, the request ID and
// header values of a request nobody authenticated may carry any bytes, and
// are recorded with those that are not UTF-8 replaced (U+FFFD).
func TestRefusedRecordIsText(t *testing.T) {
	g := &Guard{}
	e := newEcho(g)
	newSvix(t, g).Register(e, "/svix")
	set, _ := hooks.NewBubblehouseHooks(nil)
	(&handlers.Bubblehouse{Hooks: set, Auth: &hooks.BubblehouseAuth{Authorization: bhAuth}, Guard: g, MaxBodyBytes: 4096}).Register(e, bhPath)
	for _, req := range []*http.Request{
		signed{id: "msg_\xff", body: `{}`, sig: "v1,AAAA"}.request("bloom"),
		signed{id: "msg_x", body: `{}`}.request("%FF%FE"),
		bhCall{hook: "Hello1", body: `{}`, auth: "-", urgency: "real-\xfftime", id: "id-\xc3"}.request(),
		bhCall{hook: "%C3", body: `{}`, urgency: "urgent"}.request(),
	} {
		req.Header.Set("X-Note", "caf\xe9")
		a := serve(e, req)
		rec := g.last(t)
		fields := append([]string{rec.Name, rec.Path, rec.RequestID, rec.Header.Get("X-Note")}, rec.Notes...)
		for _, f := range fields {
			if !utf8.ValidString(f) {
				t.Fatalf("%s %s answered %d: recorded %q, not UTF-8", req.Method, req.URL.Path, a.status, f)
			}
		}
		if !validJSON(a.body) {
			t.Fatalf("answer %q is not JSON text", a.body)
		}
	}
}
